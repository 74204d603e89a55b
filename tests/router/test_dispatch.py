"""Dispatch through litellm's real client path against the simulated provider on loopback.

Faults come from the simulator (``x-sim-fault`` on one request, or scheduled with
``POST /sim/faults``); decisions come from the shipped default policy.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from rlm_router.rlm_core import Budget, RetryPolicy
from rlm_router.rlm_core.errors import ProviderTimeout, ProviderUnavailable
from rlm_router.router.dispatch import (
    INNER_METADATA_KEY,
    Dispatcher,
    EscalationFailed,
    RoutedStream,
)
from rlm_router.router.dispatch_settings import DispatchSettings, LatencySettings
from rlm_router.router.request import InvalidRequest
from rlm_router.router.responses import route_of
from rlm_router.sim import SimServer
from rlm_router.sim.tasks import Task, generate

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.05, timeout_s=30)


@pytest.fixture
def sim(sim_server: SimServer, sim_faults: str, sim_models: None) -> SimServer:
    """The session's simulated provider, with no faults left over from other tests."""
    return sim_server


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The shipped policy, except that budgets from 200 ms may go to the RLM route (the
    shipped 8 s minimum would make the deadline tests slow)."""
    from rlm_router.policies.loader import DEFAULT_POLICY_PATH
    from rlm_router.router import Router

    policy = yaml.safe_load(Path(DEFAULT_POLICY_PATH).read_text())
    policy["latency"]["rlm_min_ms"] = 200
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return Router.from_config(path)


def settings_for(router: Any, sim: SimServer, **changes: Any) -> DispatchSettings:
    settings = DispatchSettings.from_policy(router.policy)
    models = settings.models

    def at_sim(spec: Any) -> Any:
        return dataclasses.replace(spec, api_base=sim.base_url, api_key="sk-sim")

    settings = dataclasses.replace(
        settings,
        models=dataclasses.replace(
            models,
            direct=at_sim(models.direct),
            rlm_root=at_sim(models.rlm_root),
            rlm_sub=at_sim(models.rlm_sub),
        ),
        retry=FAST_RETRY,
        keepalive_s=0.05,
    )
    return dataclasses.replace(settings, **changes)


class Recording:
    """Every provider call's keyword arguments, then litellm.acompletion itself."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, **kwargs: Any) -> Any:
        import litellm

        self.calls.append(kwargs)
        return await litellm.acompletion(**kwargs)


@pytest.fixture
def recording() -> Recording:
    return Recording()


def make(
    router: Any, sim: SimServer, recording: Recording | None = None, **changes: Any
) -> Dispatcher:
    return Dispatcher(
        decide=router.decide, settings=settings_for(router, sim, **changes), completion=recording
    )


async def schedule_fault(sim: SimServer, model: str, fault: str, count: int) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{sim.url}/sim/faults", json={"model": model, "fault": fault, "count": count}
        )
        response.raise_for_status()


def long_compositional(n_tokens: int = 32_000, seed: int = 1) -> Task:
    return generate("oolong", n_tokens=n_tokens, seed=seed, kind="count")


def text_of(response: Any) -> str:
    return str(response.choices[0].message.content or "")


async def collect(stream: RoutedStream) -> tuple[list[Any], str]:
    chunks = [chunk async for chunk in stream]
    text = "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)
    return chunks, text


# ── routes ──


async def test_short_request_is_served_direct(router: Any, sim: SimServer) -> None:
    task = generate("qa", seed=3)
    response = await make(router, sim).acompletion(model="auto", messages=task.messages())
    info = route_of(response)
    assert info is not None
    assert info["route"] == "llm" and info["decided"] == "llm" and info["fallback"] == "none"
    assert info["decision_id"] and info["reason"]
    assert task.score(text_of(response)) == 1.0
    assert response._hidden_params["response_cost"] > 0


async def test_long_compositional_request_is_served_by_rlm(
    router: Any, sim: SimServer, recording: Recording
) -> None:
    task = long_compositional()
    response = await make(router, sim, recording).acompletion(
        model="auto", messages=task.messages()
    )
    info = route_of(response)
    assert info is not None and info["route"] == "rlm" and info["fallback"] == "none"
    assert task.score(text_of(response)) == 1.0
    # Every engine call is marked inner, and the response's cost is their sum.
    assert recording.calls
    assert all(call["metadata"][INNER_METADATA_KEY] for call in recording.calls)
    assert response._hidden_params["response_cost"] > 0
    assert response.usage.prompt_tokens > 0


def _waiting_workers() -> int:
    """Pre-started sandbox workers of this process waiting for a context (their config has
    none yet); each counted once, by its process started from here."""
    import os

    found = 0
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        found += parent == os.getpid() and b'"context_kind": null' in cmdline
    return found


async def test_rlm_runs_take_prestarted_workers(router: Any, sim: SimServer) -> None:
    import asyncio

    from rlm_router.rlm_core.pool import close_shared

    dispatcher = make(router, sim, prestart_workers=1)
    try:
        for seed in (1, 2):  # the first run starts the pool, the second takes from it
            task = long_compositional(seed=seed)
            response = await dispatcher.acompletion(model="auto", messages=task.messages())
            assert route_of(response)["route"] == "rlm"  # type: ignore[index]
            assert task.score(text_of(response)) == 1.0
            for _ in range(600):  # a replacement is started in the background (up to 30 s)
                if _waiting_workers() >= 1:
                    break
                await asyncio.sleep(0.05)
            assert _waiting_workers() == 1  # one pre-started worker waits, never more
    finally:
        await close_shared()
    assert _waiting_workers() == 0


async def test_invalid_request_raises_invalid_request(router: Any, sim: SimServer) -> None:
    dispatcher = make(router, sim)
    with pytest.raises(InvalidRequest, match="messages"):
        await dispatcher.acompletion(model="auto", messages=[])
    with pytest.raises(InvalidRequest, match="latency"):
        await dispatcher.acompletion(
            model="auto",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-latency-budget-ms": "-5"},
        )


# ── streaming ──


async def test_direct_stream_passes_through(router: Any, sim: SimServer) -> None:
    task = generate("qa", seed=3)
    stream = await make(router, sim).acompletion(
        model="auto", messages=task.messages(), stream=True
    )
    assert isinstance(stream, RoutedStream)
    assert route_of(stream)["route"] == "llm"  # type: ignore[index]
    chunks, text = await collect(stream)
    assert len(chunks) > 1
    assert task.score(text) == 1.0
    assert stream.outcome is not None and stream.outcome.route.route == "llm"


async def test_rlm_stream_sends_role_first_then_the_answer(router: Any, sim: SimServer) -> None:
    task = long_compositional()
    stream = await make(router, sim).acompletion(
        model="auto", messages=task.messages(), stream=True
    )
    assert isinstance(stream, RoutedStream)
    chunks, text = await collect(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert task.score(text) == 1.0
    assert stream.outcome is not None and stream.outcome.route.route == "rlm"
    assert route_of(stream)["route"] == "rlm"  # type: ignore[index]


# ── fallbacks ──


async def test_context_window_error_on_direct_falls_back_to_rlm(
    router: Any, sim: SimServer
) -> None:
    task = generate("niah", n_tokens=4_000, seed=5)
    response = await make(router, sim).acompletion(
        model="auto",
        messages=task.messages(),
        extra_headers={"x-sim-fault": "context_length"},
    )
    info = route_of(response)
    assert info is not None
    assert info["decided"] == "llm" and info["route"] == "rlm"
    assert info["fallback"] == "llm_to_rlm"
    assert task.score(text_of(response)) == 1.0


async def test_rlm_provider_failure_falls_back_to_direct(router: Any, sim: SimServer) -> None:
    task = long_compositional()
    # The root model fails every attempt the engine makes; the direct call then succeeds.
    await schedule_fault(sim, "sim-large", "500", FAST_RETRY.max_attempts)
    response = await make(router, sim).acompletion(model="auto", messages=task.messages())
    info = route_of(response)
    assert info is not None
    assert info["decided"] == "rlm" and info["route"] == "llm"
    assert text_of(response)


async def test_rlm_budget_exhaustion_falls_back_to_direct(router: Any, sim: SimServer) -> None:
    task = long_compositional()
    dispatcher = make(router, sim, budget=Budget(max_iterations=1))
    response = await dispatcher.acompletion(model="auto", messages=task.messages())
    info = route_of(response)
    assert info is not None and info["route"] == "llm" and info["fallback"] == "rlm_to_llm"
    assert text_of(response)


async def test_rlm_out_of_budget_beyond_the_window_returns_the_partial_answer(
    router: Any, sim: SimServer
) -> None:
    # Deliberately changed (issue 10): this used to raise EscalationFailed and lose the answer
    # the run had reached; now the partial answer comes back, marked degraded with the reason.
    task = generate("niah", n_tokens=300_000, seed=7)
    dispatcher = make(router, sim, budget=Budget(max_iterations=1))
    response = await dispatcher.acompletion(model="auto", messages=task.messages())
    info = route_of(response)
    assert info is not None and info["route"] == "rlm"
    assert info["degraded"] == "partial_at_budget"
    assert text_of(response) and response.choices[0].finish_reason == "length"


async def test_rlm_failure_beyond_the_window_without_an_answer_is_a_clear_error(
    router: Any, sim: SimServer
) -> None:
    task = generate("niah", n_tokens=300_000, seed=7)
    dispatcher = make(router, sim, budget=Budget(max_cost_usd=1e-9))
    with pytest.raises(EscalationFailed) as caught:
        await dispatcher.acompletion(model="auto", messages=task.messages())
    error = caught.value
    assert error.stopped_reason == "max_cost"
    assert "context window" in str(error)
    assert error.route is not None and error.route.route == "rlm"


async def test_provider_errors_are_retried_on_the_direct_route(
    router: Any, sim: SimServer, recording: Recording
) -> None:
    task = generate("qa", seed=3)
    await schedule_fault(sim, "sim-large", "429", 2)
    response = await make(router, sim, recording).acompletion(
        model="auto", messages=task.messages()
    )
    assert route_of(response)["route"] == "llm"  # type: ignore[index]
    assert len(recording.calls) == 3
    assert task.score(text_of(response)) == 1.0


async def test_provider_errors_beyond_the_retry_policy_surface(router: Any, sim: SimServer) -> None:
    import litellm

    task = generate("qa", seed=3)
    await schedule_fault(sim, "sim-large", "503", FAST_RETRY.max_attempts)
    # Mapped to our tree at the provider boundary, with the provider's own error as the cause.
    with pytest.raises(ProviderUnavailable) as caught:
        await make(router, sim).acompletion(model="auto", messages=task.messages())
    assert isinstance(caught.value.__cause__, litellm.ServiceUnavailableError)
    assert caught.value.error_type == "ServiceUnavailableError"


# ── latency budget ──


async def test_latency_budget_degrades_rlm_to_direct_at_the_deadline(
    router: Any, sim: SimServer
) -> None:
    task = long_compositional()
    budget_ms = 1500.0
    dispatcher = make(
        router,
        sim,
        latency=LatencySettings(on_deadline="direct", direct_reserve_ms=700.0),
    )
    # Each root call of the engine hangs past the budget; the direct call answers.
    await schedule_fault(sim, "sim-large", "timeout", 1)
    started = time.monotonic()
    response = await dispatcher.acompletion(
        model="auto",
        messages=task.messages(),
        metadata={"latency_budget_ms": budget_ms},
    )
    elapsed_ms = (time.monotonic() - started) * 1000
    info = route_of(response)
    assert info is not None and info["route"] == "llm"
    assert info["degraded"] == "direct_at_deadline"
    assert elapsed_ms < budget_ms + 600
    assert text_of(response)


async def test_latency_budget_returns_the_partial_answer_at_the_deadline(
    router: Any, sim: SimServer
) -> None:
    task = long_compositional()
    budget_ms = 800.0
    dispatcher = make(router, sim, latency=LatencySettings(on_deadline="partial"))
    await schedule_fault(sim, "sim-large", "timeout", 1)
    started = time.monotonic()
    response = await dispatcher.acompletion(
        model="auto",
        messages=task.messages(),
        metadata={"latency_budget_ms": budget_ms},
    )
    elapsed_ms = (time.monotonic() - started) * 1000
    info = route_of(response)
    assert info is not None and info["route"] == "rlm"
    assert info["degraded"] == "partial_at_deadline"
    assert response.choices[0].finish_reason == "length"
    assert elapsed_ms < budget_ms + 600


async def test_a_hanging_provider_under_a_budget_gets_the_partial_answer(
    router: Any, sim: SimServer
) -> None:
    """The engine's root call hangs, then so does the direct fallback: the caller gets the
    RLM route's partial answer at the deadline, not an error."""
    task = long_compositional()
    budget_ms = 1500.0
    dispatcher = make(
        router, sim, latency=LatencySettings(on_deadline="direct", direct_reserve_ms=700.0)
    )
    await schedule_fault(sim, "sim-large", "timeout", 2)  # the root call, then the direct one
    started = time.monotonic()
    response = await dispatcher.acompletion(
        model="auto", messages=task.messages(), metadata={"latency_budget_ms": budget_ms}
    )
    elapsed_ms = (time.monotonic() - started) * 1000
    info = route_of(response)
    assert info is not None and info["route"] == "rlm"
    assert info["degraded"] == "partial_at_deadline"
    assert response.choices[0].finish_reason == "length"
    assert elapsed_ms < budget_ms + 600
    async with httpx.AsyncClient() as client:
        pending = (await client.get(f"{sim.url}/sim/faults")).json()["scheduled"]
    assert pending == []  # both hangs were served: the direct fallback was tried


async def test_latency_budget_bounds_the_direct_route(router: Any, sim: SimServer) -> None:
    import litellm

    task = generate("qa", seed=3)
    started = time.monotonic()
    with pytest.raises((ProviderTimeout, ProviderUnavailable)) as caught:
        await make(router, sim).acompletion(
            model="auto",
            messages=task.messages(),
            extra_headers={"x-sim-fault": "timeout", "x-latency-budget-ms": "400"},
        )
    assert (time.monotonic() - started) * 1000 < 400 + 400
    cause = caught.value.__cause__  # our deadline (TimeoutError) or the provider's own
    assert isinstance(cause, litellm.Timeout | litellm.APIConnectionError | TimeoutError)


# ── the library entry point ──


@pytest.fixture
def library_router(sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A Router whose policy points every route at the simulator (key from the env)."""
    from rlm_router.policies.loader import DEFAULT_POLICY_PATH
    from rlm_router.router import Router

    policy = yaml.safe_load(Path(DEFAULT_POLICY_PATH).read_text())
    for role in ("direct", "rlm_root", "rlm_sub"):
        policy["models"][role].update(api_base=sim.base_url, api_key_env="RLM_ROUTER_TEST_KEY")
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    monkeypatch.setenv("RLM_ROUTER_TEST_KEY", "sk-sim")
    return Router.from_config(path)


async def test_router_acompletion_decides_and_dispatches(library_router: Any) -> None:
    short = generate("chat", seed=2)
    response = await library_router.acompletion(model="auto", messages=short.messages())
    assert route_of(response)["route"] == "llm"  # type: ignore[index]
    assert short.score(text_of(response)) == 1.0

    long = long_compositional(seed=4)
    response = await library_router.acompletion(model="auto", messages=long.messages())
    assert route_of(response)["route"] == "rlm"  # type: ignore[index]
    assert long.score(text_of(response)) == 1.0
