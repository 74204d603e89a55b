"""The simulated provider through litellm's real client path, and its HTTP error bodies."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from rlm_router.rlm_core.tokens import count_tokens
from rlm_router.sim import SIM_MODELS, SimServer
from rlm_router.sim.server import prompt_token_count
from rlm_router.sim.tasks import generate

pytestmark = pytest.mark.usefixtures("sim_models")


async def _complete(sim: SimServer, messages: list[dict[str, str]], **kw: Any) -> Any:
    import litellm

    return await litellm.acompletion(
        model=kw.pop("model", "openai/sim-large"), api_base=sim.base_url, api_key="sk-sim",
        messages=messages, num_retries=0, **kw,
    )  # fmt: skip


def test_exported_names() -> None:
    import rlm_router.sim as sim

    assert set(sim.__all__) == {
        "FAULTS", "FAULT_HEADER", "SIM_MODELS", "SimConfig", "SimModel", "SimServer",
        "register_sim_models",
    }  # fmt: skip


async def test_same_request_same_answer_across_servers(sim_server: SimServer) -> None:
    from rlm_router.sim import SimConfig

    task = generate("oolong", n_tokens=150_000, seed=9, kind="count")
    first = await _complete(sim_server, task.messages())
    async with SimServer(SimConfig(seed=0, time_scale=0)) as other:
        again = await _complete(other, task.messages())
    assert first.choices[0].message.content == again.choices[0].message.content


async def test_non_streaming_answer_usage_and_cost(sim_server: SimServer) -> None:
    import litellm

    task = generate("chat", seed=3)
    response = await _complete(sim_server, task.messages())
    content = response.choices[0].message.content
    assert task.score(content) == 1.0
    assert response.choices[0].finish_reason == "stop"
    assert response.model == "sim-large"
    prompt = [(m["role"], m["content"]) for m in task.messages()]
    assert response.usage.prompt_tokens == prompt_token_count(prompt)
    # completion_tokens includes the hidden reasoning, as OpenAI reports it.
    reasoning = response.usage.completion_tokens_details.reasoning_tokens
    large = SIM_MODELS["sim-large"]
    assert reasoning == large.reasoning_tokens(response.usage.prompt_tokens, root_turn=False) > 0
    assert response.usage.completion_tokens == count_tokens(content) + reasoning
    expected = (
        response.usage.prompt_tokens * large.input_cost_per_token
        + response.usage.completion_tokens * large.output_cost_per_token
    )
    assert litellm.completion_cost(response) == pytest.approx(expected, rel=1e-9)


async def test_streaming_matches_non_streaming_and_reports_usage(sim_server: SimServer) -> None:
    task = generate("oolong", n_tokens=4000, seed=5)
    plain = await _complete(sim_server, task.messages(), model="openai/sim-mini")
    stream = await _complete(
        sim_server, task.messages(), model="openai/sim-mini", stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    pieces, usage, finish = [], None, None
    async for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        usage = getattr(chunk, "usage", None) or usage
    assert "".join(pieces) == plain.choices[0].message.content
    assert finish == "stop"
    assert usage is not None
    assert usage.prompt_tokens == plain.usage.prompt_tokens
    assert usage.completion_tokens == plain.usage.completion_tokens


async def test_sse_wire_format(sim_server: SimServer) -> None:
    body = {
        "model": "sim-large", "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "What is 12 times 12?"}],
    }  # fmt: skip
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{sim_server.base_url}/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line for line in response.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    import json

    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] >= 1
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert text == "144"


async def test_model_info_and_listing(sim_server: SimServer) -> None:
    import litellm

    info = litellm.get_model_info("openai/sim-large")
    assert info["max_input_tokens"] == 272_000
    assert info["input_cost_per_token"] == pytest.approx(1.25e-6)
    assert info["output_cost_per_token"] == pytest.approx(10e-6)
    async with httpx.AsyncClient() as client:
        listing = (await client.get(f"{sim_server.base_url}/models")).json()
        one = await client.get(f"{sim_server.base_url}/models/sim-mini")
        missing = await client.get(f"{sim_server.base_url}/models/gpt-9")
    assert listing["object"] == "list"
    assert {m["id"] for m in listing["data"]} == set(SIM_MODELS)
    assert one.json()["id"] == "sim-mini"
    assert missing.status_code == 404


async def test_max_tokens_truncates_with_length_finish(sim_server: SimServer) -> None:
    response = await _complete(
        sim_server, generate("oolong_pairs", n_tokens=4000, seed=1).messages(), max_tokens=5
    )
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 5


async def test_overflow_is_openais_context_length_error(sim_server: SimServer) -> None:
    import litellm

    task = generate("niah", n_tokens=40_000, seed=2)
    with pytest.raises(litellm.ContextWindowExceededError):
        await _complete(sim_server, task.messages(), model="openai/sim-small")
    async with httpx.AsyncClient() as client:
        raw = await client.post(
            f"{sim_server.base_url}/chat/completions",
            json={"model": "sim-small", "messages": task.messages()},
        )
    assert raw.status_code == 400
    error = raw.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("This model's maximum context length is 32000 tokens. ")
    assert "However, your messages resulted in " in error["message"]


async def test_multi_megabyte_body_far_over_the_window(sim_server: SimServer) -> None:
    import litellm

    task = generate("oolong", n_tokens=2_000_000, seed=0)  # ~6.6 MB of records
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(litellm.ContextWindowExceededError):
        await _complete(sim_server, task.messages())
    # Rejected without reading the records quadratically (that took minutes at 100K chars); the
    # bound is loose because the machine may be loaded: the linear reader takes well under 1 s.
    assert loop.time() - started < 60.0


async def test_many_concurrent_requests(sim_server: SimServer) -> None:
    tasks = [generate("qa", seed=s, kind="arithmetic") for s in range(256)]
    replies = await asyncio.gather(
        *(_complete(sim_server, t.messages(), model="openai/sim-mini") for t in tasks)
    )
    assert all(
        t.score(r.choices[0].message.content) == 1.0 for t, r in zip(tasks, replies, strict=True)
    )


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        (b"{not json", 400, None, None),
        (b'{"model": "sim-large"}', 400, "missing_required_parameter", "messages"),
        (b'{"model": "sim-large", "messages": []}', 400, "empty_array", "messages"),
        (b'{"model": "sim-large", "messages": "hi"}', 400, "invalid_type", "messages"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', 400,
         "missing_required_parameter", "model"),
        (b'{"model": "sim-large", "messages": [{"role": "robot", "content": "hi"}]}', 400,
         "invalid_value", "messages[0].role"),
        (b'{"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}', 404,
         "model_not_found", None),
    ],
)  # fmt: skip
def test_bad_input_gets_openai_shaped_errors(
    sim_server: SimServer, body: bytes, status: int, code: str | None, param: str | None
) -> None:
    response = httpx.post(
        f"{sim_server.base_url}/chat/completions", content=body,
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert (error["code"], error["param"]) == (code, param)
    assert error["message"]


async def test_unknown_model_through_litellm(sim_server: SimServer) -> None:
    import litellm

    with pytest.raises(litellm.NotFoundError):
        await _complete(sim_server, [{"role": "user", "content": "hi"}], model="openai/gpt-9")


async def test_in_process_server_and_latency_model() -> None:
    from rlm_router.sim import SimConfig

    async with SimServer(SimConfig(time_scale=0.05)) as sim:
        assert sim.base_url.startswith("http://127.0.0.1:")
        loop = asyncio.get_running_loop()
        started = loop.time()
        response = await _complete(sim, [{"role": "user", "content": "What is 3 plus 4?"}])
        elapsed = loop.time() - started
    large = SIM_MODELS["sim-large"]
    modelled = 0.05 * (
        large.ttft_s
        + response.usage.prompt_tokens * large.input_s_per_token
        + response.usage.completion_tokens * large.output_s_per_token
    )
    assert response.choices[0].message.content == "7"
    assert elapsed >= modelled


async def test_stats_count_requests_and_tokens(sim_server: SimServer) -> None:
    async with httpx.AsyncClient() as client:
        before = (await client.get(f"{sim_server.url}/sim/stats")).json()
        response = await _complete(
            sim_server, [{"role": "user", "content": "What is 5 plus 5?"}], model="openai/sim-small"
        )
        after = (await client.get(f"{sim_server.url}/sim/stats")).json()
    count = before["requests"].get("sim-small", 0)
    assert after["requests"]["sim-small"] == count + 1
    tokens = after["prompt_tokens"]["sim-small"] - before["prompt_tokens"].get("sim-small", 0)
    assert tokens == response.usage.prompt_tokens
