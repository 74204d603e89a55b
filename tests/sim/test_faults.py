"""Every injected fault surfaces through litellm as the exception a user would see."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from rlm_router.sim import FAULT_HEADER, SimServer

pytestmark = pytest.mark.usefixtures("sim_models")

MESSAGES = [
    {"role": "user", "content": "Please reply with just the word 'ready' in capital letters."}
]


async def _call(sim: SimServer, *, stream: bool, fault: str | None = None, **kw: Any) -> str:
    import litellm

    headers = {FAULT_HEADER: fault} if fault else {}
    response = await litellm.acompletion(
        model="openai/sim-large", api_base=sim.base_url, api_key="sk-sim", messages=MESSAGES,
        stream=stream, extra_headers=headers, num_retries=0, max_retries=0, **kw,
    )  # fmt: skip
    if not stream:
        return str(response.choices[0].message.content)
    parts = []
    async for chunk in response:
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
    return "".join(parts)


def _exception(name: str) -> type[BaseException]:
    import litellm

    return getattr(litellm, name)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("fault", "exception"),
    [
        ("context_length", "ContextWindowExceededError"),
        ("429", "RateLimitError"),
        ("500", "InternalServerError"),
        ("503", "ServiceUnavailableError"),
    ],
)
async def test_status_faults(
    sim_server: SimServer, fault: str, exception: str, stream: bool
) -> None:
    with pytest.raises(_exception(exception)):
        await _call(sim_server, stream=stream, fault=fault)


@pytest.mark.parametrize("stream", [False, True])
async def test_timeout_fault(sim_server: SimServer, stream: bool) -> None:
    import litellm

    with pytest.raises(litellm.Timeout):
        await _call(sim_server, stream=stream, fault="timeout", timeout=0.5)


@pytest.mark.parametrize("fault", ["malformed_stream", "truncated_stream"])
async def test_broken_streams(sim_server: SimServer, fault: str) -> None:
    import litellm

    # litellm reports a stream that breaks after it started as MidStreamFallbackError (a
    # ServiceUnavailableError) wrapping the connection error, so routers can fall back.
    with pytest.raises(litellm.ServiceUnavailableError) as caught:
        await _call(sim_server, stream=True, fault=fault)
    assert "APIConnectionError" in str(caught.value)


@pytest.mark.parametrize("fault", ["malformed_stream", "truncated_stream"])
async def test_broken_bodies_without_streaming(sim_server: SimServer, fault: str) -> None:
    import litellm

    with pytest.raises(litellm.InternalServerError):
        await _call(sim_server, stream=False, fault=fault)


def test_rate_limit_carries_retry_after(sim_server: SimServer) -> None:
    response = httpx.post(
        f"{sim_server.base_url}/chat/completions",
        json={"model": "sim-large", "messages": MESSAGES},
        headers={FAULT_HEADER: "429"},
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


async def test_scheduled_faults_are_consumed_then_cleared(
    sim_server: SimServer, sim_faults: str
) -> None:
    import litellm

    async with httpx.AsyncClient() as client:
        scheduled = await client.post(
            sim_faults, json={"model": "sim-large", "fault": "503", "count": 2}
        )
        assert scheduled.json()["scheduled"] == [{"fault": "503", "model": "sim-large", "count": 2}]
        for _ in range(2):
            with pytest.raises(litellm.ServiceUnavailableError):
                await _call(sim_server, stream=False)
        assert await _call(sim_server, stream=False) == "READY"
        await client.post(sim_faults, json={"fault": "429", "count": 5})
        await client.delete(sim_faults)
        assert (await client.get(sim_faults)).json() == {"scheduled": []}
        assert await _call(sim_server, stream=False) == "READY"


def test_scheduling_rejects_unknown_faults(sim_server: SimServer, sim_faults: str) -> None:
    bad = httpx.post(sim_faults, json={"fault": "meteor", "count": 1})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "fault"
    unknown_model = httpx.post(sim_faults, json={"fault": "429", "model": "gpt-9"})
    assert unknown_model.status_code == 404
