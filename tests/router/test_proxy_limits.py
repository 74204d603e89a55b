"""Production limits of the proxy plugin, through the real LiteLLM proxy and the simulated
provider: input size limits and malformed parameters answered before any work, and a bounded
number of RLM runs.

One proxy serves the module, with a policy allowing one RLM run at a time and no queue.
"""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterator

import httpx
import pytest

from benchmarks.proxy_bench import ProxyProcess
from rlm_router.sim import SimServer
from rlm_router.sim.tasks import generate
from tests.router.proxy_harness import AUTH, ROUTE, plugin_proxy, policy_with, post_chat

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def proxy(
    sim_server: SimServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    directory = tmp_path_factory.mktemp("admission")
    policy = policy_with(
        directory,
        admission="  max_concurrent_rlm: 1\n  queue_ms: 0\n  when_full: reject\n",
    )
    with plugin_proxy(sim_server.base_url, directory / "traces.jsonl", policy=policy) as process:
        yield process


def _short(proxy: ProxyProcess) -> httpx.Response:
    return post_chat(proxy, {"model": "auto", "messages": [{"role": "user", "content": "Say hi."}]})


def test_a_50_mb_body_gets_a_413_that_says_why_and_the_proxy_keeps_serving(
    proxy: ProxyProcess,
) -> None:
    text = ("lorem ipsum dolor sit amet " * (50_000_000 // 27 + 1))[:50_000_000]
    body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": text}]}).encode()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        big = pool.submit(post_chat, proxy, body)
        shorts = [pool.submit(_short, proxy) for _ in range(3)]
        reply = big.result()
        assert all(s.result().status_code == 200 for s in shorts)
    assert reply.status_code == 413
    message = reply.json()["error"]["message"]
    assert "limits.max_request_bytes" in message
    assert f"{len(body)} bytes" in message
    assert _short(proxy).status_code == 200


def test_too_many_messages_and_too_many_tokens_get_a_400(proxy: ProxyProcess) -> None:
    many = [{"role": "user", "content": "hi"}] * 4097
    reply = post_chat(proxy, {"model": "auto", "messages": many})
    assert reply.status_code == 400
    assert "limits.max_messages" in reply.json()["error"]["message"]


def test_rlm_runs_beyond_the_admission_limit_get_a_clear_429(proxy: ProxyProcess) -> None:
    task = generate("oolong", n_tokens=32_000, seed=1, kind="count")
    body = {"model": "auto", "messages": task.messages()}
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        replies = list(pool.map(lambda _: post_chat(proxy, body), range(3)))
    statuses = sorted(r.status_code for r in replies)
    assert 200 in statuses, [r.text for r in replies]
    assert 429 in statuses, statuses
    for reply in replies:
        if reply.status_code == 429:
            assert "too many RLM runs in flight" in reply.json()["error"]["message"]
        else:
            assert reply.status_code == 200, reply.text
            assert reply.headers[ROUTE] == "rlm"
    # The slot is handed back when the run ends: the next escalation is admitted.
    again = post_chat(proxy, body)
    assert again.status_code == 200, again.text
    assert again.headers[ROUTE] == "rlm"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"metadata": "team-a"}, "'metadata' must be an object"),
        ({"metadata": ["a", "b"]}, "'metadata' must be an object"),
        ({"temperature": "hot"}, "'temperature' must be a number"),
        ({"temperature": 7}, "'temperature' must be between 0 and 2"),
        ({"n": 1000}, "'n' must be an integer between 1 and 128"),
        ({"stream": True, "stream_options": "x"}, "'stream_options' must be an object"),
        ({"stream_options": {"include_usage": True}}, "only allowed when 'stream' is true"),
        ({"max_tokens": 0}, "'max_tokens' must be an integer at least 1"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "at most 4"),
        ({"top_p": None, "tools": "search"}, "'tools' must be a list of objects"),
        # litellm 1.106 iterates a non-list ``tools`` before any hook runs (a 500 there).
        ({"tools": 5}, "'tools' must be a list of objects"),
    ],
)
def test_malformed_parameters_are_rejected_before_any_provider_call(
    proxy: ProxyProcess, sim_server: SimServer, extra: dict[str, object], message: str
) -> None:
    calls = sum(sim_server.stats["requests"].values())
    body = {"model": "auto", "messages": [{"role": "user", "content": "Say hi."}], **extra}
    reply = post_chat(proxy, body)
    assert reply.status_code == 400, reply.text
    assert message in reply.json()["error"]["message"]
    assert sum(sim_server.stats["requests"].values()) == calls


@pytest.mark.parametrize("fault", ["truncated_stream", "malformed_stream"])
def test_a_stream_that_breaks_before_its_first_content_is_retried(
    proxy: ProxyProcess, sim_server: SimServer, sim_faults: str, fault: str
) -> None:
    broken = sim_server.stats["faults"][fault]
    httpx.post(sim_faults, json={"fault": fault, "model": "sim-large", "count": 1})
    body = {
        "model": "auto",
        "stream": True,
        # A one-word answer: the fault cuts the stream after the role chunk, before content.
        "messages": [
            {"role": "user", "content": "Reply with just the word 'ok' in capital letters."}
        ],
    }
    with httpx.stream(
        "POST", f"{proxy.base_url}/v1/chat/completions", json=body, headers=AUTH, timeout=60
    ) as reply:
        lines = [line for line in reply.iter_lines() if line]
    assert sim_server.stats["faults"][fault] == broken + 1  # the first attempt did break
    assert lines[-1] == "data: [DONE]", lines
    assert not any('"error"' in line for line in lines), lines
    content = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in lines[:-1]
        if json.loads(line[6:])["choices"]
    )
    assert content == "OK"
