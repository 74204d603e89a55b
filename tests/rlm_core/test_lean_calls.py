"""The engine's lean call path: the same answers, tokens and cost as through litellm, at a
fraction of the CPU; litellm's path whenever a LiteLLM logger is registered.

Both paths run against the simulated provider on loopback; the run through litellm is the
reference (a registered CustomLogger sends the engine's calls through litellm, and sees them).
"""

from __future__ import annotations

from typing import Any

import pytest

from rlm_router.rlm_core import ModelSpec, RetryPolicy, RLMEngine, RLMResult, litellm_api
from rlm_router.sim import SimServer
from rlm_router.sim.tasks import generate


@pytest.fixture
def sim(sim_server: SimServer, sim_models: None, sim_faults: str) -> SimServer:
    return sim_server


def engine(sim: SimServer) -> RLMEngine:
    return RLMEngine(
        root=ModelSpec(model="openai/sim-large", api_base=sim.base_url, api_key="sim"),
        sub=ModelSpec(model="openai/sim-mini", api_base=sim.base_url, api_key="sim"),
        retry=RetryPolicy(initial_backoff_s=0.01, max_backoff_s=0.05, timeout_s=5.0),
    )


def summary(result: RLMResult) -> tuple[Any, ...]:
    calls = [(c.role, c.model, c.input_tokens, c.output_tokens) for c in result.trajectory.calls]
    return (result.answer, result.stopped_reason, result.usage.sub_calls, calls)


async def test_lean_path_answers_and_prices_as_litellm_does(sim: SimServer) -> None:
    import litellm

    class Counting(litellm_api.CustomLogger):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        async def async_log_success_event(self, *args: Any, **kwargs: Any) -> None:
            self.calls += 1

    task = generate("oolong", n_tokens=6_000, seed=4)
    lean = await engine(sim).acompletion(task.question, task.context)
    logger = Counting()
    litellm.callbacks = [logger]
    try:
        through_litellm = await engine(sim).acompletion(task.question, task.context)
    finally:
        litellm.callbacks = []
    assert lean.usage.sub_calls > 0
    assert summary(lean) == summary(through_litellm)
    assert lean.usage.cost_usd == pytest.approx(through_litellm.usage.cost_usd, rel=1e-9)
    assert lean.usage.cost_usd > 0
    # The logger a user registered saw every call of the run that went through litellm.
    assert logger.calls == len(through_litellm.trajectory.calls)


async def test_lean_path_errors_are_the_provider_errors_litellm_gives(sim: SimServer) -> None:
    from rlm_router.rlm_core.errors import ContextWindowExceeded

    spec = {"model": "openai/sim-mini", "api_base": sim.base_url, "api_key": "sim"}
    too_long = [{"role": "user", "content": "word " * 300_000}]
    async with litellm_api.engine_call_scope():
        with pytest.raises(Exception) as lean_error:
            await litellm_api.engine_acompletion(**spec, messages=too_long, timeout=30.0)
    with pytest.raises(Exception) as litellm_error:
        await litellm_api.acompletion(**spec, messages=too_long, timeout=30.0)
    for error in (lean_error.value, litellm_error.value):
        mapped = litellm_api.map_error(error, model="openai/sim-mini")
        assert isinstance(mapped, ContextWindowExceeded) and not mapped.retryable
        assert mapped.error_type == "ContextWindowExceededError"
