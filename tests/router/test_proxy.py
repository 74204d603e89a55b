"""The router as a LiteLLM proxy plugin: the real ``litellm`` proxy process, the simulated
provider on loopback, and the official ``openai`` client sending ``model="auto"``.

One proxy serves the whole module (startup takes ~9 s).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from benchmarks.proxy_bench import MASTER_KEY, ProxyProcess, plugin_config
from rlm_router.sim import SIM_MODELS, SimServer
from rlm_router.sim.tasks import generate
from tests.router.proxy_harness import (
    AUTH,
    ROUTE,
    plugin_proxy,
    record_spend,
    scheduled_fault,
    spans_of,
)


@pytest.fixture(scope="module")
def sim(sim_server: SimServer) -> SimServer:
    return sim_server


@pytest.fixture(scope="module")
def traces_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("proxy-traces") / "traces.jsonl"


@pytest.fixture(scope="module")
def spend_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What LiteLLM billed each call in the proxy (see ``tests/router/spend_log.py``)."""
    return tmp_path_factory.mktemp("proxy-spend") / "spend.jsonl"


@pytest.fixture(scope="module")
def proxy(sim: SimServer, traces_file: Path, spend_log: Path) -> Iterator[ProxyProcess]:
    config = plugin_config(sim.base_url)
    env = {
        "RLM_ROUTER_FEEDBACK_FILE": str(traces_file.with_name("feedback.jsonl")),
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        **record_spend(config, spend_log),
    }
    with plugin_proxy(sim.base_url, traces_file, config=config, env=env) as process:
        yield process


def billed_by_litellm(spend_log: Path, decision_id: str, *, stream: bool) -> float:
    """LiteLLM's booked cost of the request served under ``decision_id`` (outer call only)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if spend_log.exists():
            for line in spend_log.read_text().splitlines():
                record = json.loads(line)
                if (
                    record["decision_id"] == decision_id
                    and not record["inner"]
                    and record["stream"] == stream
                ):
                    return float(record["response_cost"])
        time.sleep(0.1)
    raise AssertionError(f"LiteLLM logged no success event for {decision_id}")


@pytest.fixture
def client(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.base_url}/v1", api_key=MASTER_KEY, max_retries=0)


ROUTE_HEADERS = (ROUTE, "x-rlm-router-decision-id", "x-rlm-router-reason", "x-rlm-router-fallback")


def assert_route_headers(headers: Any, route: str) -> None:
    """The four x-rlm-router-* headers the README promises on every response."""
    missing = [name for name in ROUTE_HEADERS if not headers.get(name)]
    assert not missing, missing
    assert headers[ROUTE] == route


@pytest.mark.server
def test_short_request_is_served_direct(client: openai.OpenAI) -> None:
    task = generate("qa", seed=3)
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=task.messages(),  # type: ignore[arg-type]
    )
    assert_route_headers(raw.headers, "llm")
    assert raw.headers["x-rlm-router-fallback"] == "none"
    completion = raw.parse()
    assert task.score(completion.choices[0].message.content) == 1.0


@pytest.mark.server
def test_long_compositional_request_is_served_by_rlm_and_billed_in_full(
    client: openai.OpenAI, sim: SimServer, spend_log: Path
) -> None:
    task = generate("oolong", n_tokens=32_000, seed=1, kind="count")
    ledger_before = sim_spend(sim)
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=task.messages(),  # type: ignore[arg-type]
    )
    assert_route_headers(raw.headers, "rlm")
    completion = raw.parse()
    assert task.score(completion.choices[0].message.content) == 1.0
    # LiteLLM's spend for the request is the sum of what the engine's sub-calls cost.
    spent = sim_spend(sim) - ledger_before
    billed = float(raw.headers["x-litellm-response-cost"])
    booked = billed_by_litellm(spend_log, raw.headers["x-rlm-router-decision-id"], stream=False)
    assert billed > 0
    assert billed == pytest.approx(spent, rel=1e-6)
    assert booked == pytest.approx(spent, rel=1e-6)


@pytest.mark.server
def test_streaming_on_the_direct_route(client: openai.OpenAI) -> None:
    task = generate("qa", seed=3)
    with client.chat.completions.with_streaming_response.create(
        model="auto",
        messages=task.messages(),  # type: ignore[arg-type]
        stream=True,
    ) as response:
        assert_route_headers(response.headers, "llm")
        text = "".join(
            chunk.choices[0].delta.content or "" for chunk in response.parse() if chunk.choices
        )
    assert task.score(text) == 1.0


@pytest.mark.server
def test_streaming_on_the_rlm_route(client: openai.OpenAI, sim: SimServer, spend_log: Path) -> None:
    task = generate("oolong", n_tokens=32_000, seed=2, kind="count")
    ledger_before = sim_spend(sim)
    with client.chat.completions.with_streaming_response.create(
        model="auto",
        messages=task.messages(),  # type: ignore[arg-type]
        stream=True,
    ) as response:
        assert_route_headers(response.headers, "rlm")
        decision_id = response.headers["x-rlm-router-decision-id"]
        chunks = [chunk for chunk in response.parse() if chunk.choices]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert task.score(text) == 1.0
    # A streamed escalation is billed in full too.
    spent = sim_spend(sim) - ledger_before
    assert billed_by_litellm(spend_log, decision_id, stream=True) == pytest.approx(spent, rel=1e-6)


@pytest.mark.server
def test_context_window_error_on_the_direct_route_falls_back_to_rlm(
    client: openai.OpenAI, sim: SimServer
) -> None:
    task = generate("niah", n_tokens=4_000, seed=5)
    with scheduled_fault(sim, "context_length", model="sim-large", count=1):
        raw = client.chat.completions.with_raw_response.create(
            model="auto",
            messages=task.messages(),  # type: ignore[arg-type]
        )
    assert raw.headers[ROUTE] == "rlm"
    assert raw.headers["x-rlm-router-fallback"] == "llm_to_rlm"
    assert task.score(raw.parse().choices[0].message.content) == 1.0


@pytest.mark.server
def test_other_model_names_pass_through(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="sim-large", messages=[{"role": "user", "content": "Say hello."}]
    )
    assert ROUTE not in raw.headers
    assert raw.parse().choices[0].message.content


@pytest.mark.server
@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        ({"model": "auto"}, {}, "messages"),
        ({"model": "auto", "messages": "hello"}, {}, "messages"),
        ({"model": "auto", "messages": [{"role": "user", "content": 5}]}, {}, "content"),
        (
            {"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
            {"x-latency-budget-ms": "-10"},
            "x-latency-budget-ms",
        ),
        (
            {"model": "auto-nonexistent", "messages": [{"role": "user", "content": "hi"}]},
            {},
            "auto-nonexistent",
        ),
    ],
)
def test_malformed_requests_get_a_4xx_that_says_what_is_wrong(
    proxy: ProxyProcess,
    client: openai.OpenAI,
    body: dict[str, Any],
    headers: dict[str, str],
    message: str,
) -> None:
    response = httpx.post(
        f"{proxy.base_url}/v1/chat/completions",
        json=body,
        headers={**AUTH, **headers},
        timeout=30,
    )
    assert 400 <= response.status_code < 500
    assert message in response.json()["error"]["message"]
    # ... and the proxy keeps serving.
    assert proxy.alive()
    ok = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "What is 2 + 2?"}]
    )
    assert ok.choices[0].message.content


@pytest.mark.server
def test_each_routed_request_leaves_a_request_span_with_its_outcome(
    client: openai.OpenAI, traces_file: Path
) -> None:
    short = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=generate("qa", seed=4).messages(),  # type: ignore[arg-type]
    )
    task = generate("oolong", n_tokens=32_000, seed=1, kind="count")
    long = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=task.messages(),  # type: ignore[arg-type]
    )
    wanted = {
        short.headers["x-rlm-router-decision-id"]: ("llm", short),
        long.headers["x-rlm-router-decision-id"]: ("rlm", long),
    }
    spans = spans_of(
        traces_file,
        lambda span: (
            span.name == "rlm_router.request"
            and span.attributes.get("rlm_router.decision.id") in wanted
        ),
        enough=lambda spans: len({s.attributes["rlm_router.decision.id"] for s in spans}) == 2,
    )
    found = {str(span.attributes["rlm_router.decision.id"]): span for span in spans}
    assert set(found) == set(wanted)
    for decision_id, (route, raw) in wanted.items():
        span = found[decision_id]
        assert span.attributes["rlm_router.route.served"] == route
        billed = float(raw.headers["x-litellm-response-cost"])
        assert span.attributes["rlm_router.outcome.cost_usd"] == pytest.approx(billed)


def sim_spend(sim: SimServer) -> float:
    """What the simulated provider has served so far, priced at its models' prices (USD)."""
    total = 0.0
    for name, model in SIM_MODELS.items():
        total += sim.stats["prompt_tokens"][name] * model.input_cost_per_token
        total += sim.stats["completion_tokens"][name] * model.output_cost_per_token
    return total


@pytest.mark.server
def test_a_latency_budget_the_rlm_route_cannot_meet_stays_direct(client: openai.OpenAI) -> None:
    task = generate("oolong", n_tokens=32_000, seed=1, kind="count")
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=task.messages(),  # type: ignore[arg-type]
        extra_headers={"x-latency-budget-ms": "500"},
    )
    assert raw.headers[ROUTE] == "llm"
    assert "latency" in raw.headers["x-rlm-router-reason"]


@pytest.mark.server
def test_provider_errors_on_the_direct_route_are_retried(
    client: openai.OpenAI, sim: SimServer
) -> None:
    task = generate("qa", seed=3)
    with scheduled_fault(sim, "503", model="sim-large", count=2):
        raw = client.chat.completions.with_raw_response.create(
            model="auto",
            messages=task.messages(),  # type: ignore[arg-type]
        )
    assert raw.headers[ROUTE] == "llm"
    assert task.score(raw.parse().choices[0].message.content) == 1.0


@pytest.mark.server
def test_a_failed_request_leaves_a_request_span_with_its_error(
    client: openai.OpenAI, sim: SimServer, traces_file: Path
) -> None:
    with (
        scheduled_fault(sim, "500", model="sim-large", count=20),
        pytest.raises(openai.InternalServerError),
    ):
        client.chat.completions.create(
            model="auto",
            messages=generate("qa", seed=5).messages(),  # type: ignore[arg-type]
        )
    errors = spans_of(
        traces_file,
        lambda span: (
            span.name == "rlm_router.request"
            and bool(span.attributes.get("rlm_router.outcome.error_type"))
        ),
    )
    assert errors, "no request span recorded the failure"
    assert errors[-1].status_code == "ERROR"


@pytest.mark.server
def test_feedback_endpoint_records_quality_for_a_decision(
    client: openai.OpenAI, proxy: ProxyProcess, traces_file: Path
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=generate("qa", seed=5).messages(),  # type: ignore[arg-type]
    )
    decision_id = raw.headers["x-rlm-router-decision-id"]
    url = f"{proxy.base_url}/rlm-router/feedback"
    ok = httpx.post(url, json={"decision_id": decision_id, "quality": 0.25}, headers=AUTH)
    assert ok.status_code == 200, ok.text
    bad = httpx.post(url, json={"decision_id": decision_id, "quality": 7}, headers=AUTH)
    assert bad.status_code == 400 and "quality" in bad.json()["error"]["message"]
    # The report is a span in the proxy's traces, joined to the request by decision id.
    spans = spans_of(
        traces_file,
        lambda span: (
            span.name == "rlm_router.feedback"
            and span.attributes.get("rlm_router.decision.id") == decision_id
        ),
    )
    assert spans and spans[0].attributes["rlm_router.outcome.quality"] == 0.25
    (line,) = traces_file.with_name("feedback.jsonl").read_text().splitlines()
    assert json.loads(line)["decision_id"] == decision_id
