"""Sub-call CPU: every provider call of a run reuses its connections, even under a deadline.

litellm caches its OpenAI clients (each with its own connection pool) keyed by, among other
things, the request's timeout. A timeout derived from the time left would make every call a
cache miss: a new client, a new connection and several ms of CPU per sub-call (measured by
benchmarks/engine_bench.py's fan-out rows). The provider sees the difference: a reused client
opens at most as many connections as calls run at once, a rebuilt one opens one per call.
"""

from __future__ import annotations

import time

import pytest

from rlm_router.sim import SimConfig, SimServer
from rlm_router.sim.tasks import generate


@pytest.mark.usefixtures("sim_models")
async def test_a_run_with_a_deadline_reuses_its_connections() -> None:
    from rlm_router.rlm_core import Budget, ModelSpec, RLMEngine

    task = generate("oolong", n_tokens=32_000, seed=1)
    # A provider of its own: connections are counted from its first request.
    async with SimServer(SimConfig(seed=0, time_scale=0.0)) as sim:
        engine = RLMEngine(
            root=ModelSpec(model="openai/sim-large", api_base=sim.base_url, api_key="sk-sim"),
            sub=ModelSpec(model="openai/sim-mini", api_base=sim.base_url, api_key="sk-sim"),
            budget=Budget(max_wall_s=90.0),  # less than a call's own timeout: time left rules
            concurrency=4,
        )
        result = await engine.acompletion(
            task.question, task.context, deadline=time.monotonic() + 60.0
        )
        calls = sum(sim.stats["requests"].values())
        connections = sim.connections
    assert result.ok
    assert len(result.trajectory.calls) >= 5
    assert calls >= 2 * engine.concurrency
    assert 1 <= connections <= engine.concurrency, (connections, calls)
