"""Sub-call CPU: every provider call of a run reuses one litellm client, even under a deadline.

litellm caches its OpenAI clients (each with its own connection pool) keyed by, among other
things, the request's timeout. A timeout derived from the time left would make every call a
cache miss: a new client, a new connection and several ms of CPU per sub-call (measured by
benchmarks/engine_bench.py's fan-out rows).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from sim import SimServer
from sim.tasks import generate


def _async_clients_for(api_base: str) -> list[str]:
    import litellm

    loop = str(id(asyncio.get_running_loop()))
    return [
        key
        for key in list(litellm.in_memory_llm_clients_cache.cache_dict)
        if f"api_base={api_base}" in key and "is_async=True" in key and key.endswith(loop)
    ]


@pytest.mark.usefixtures("sim_models")
async def test_a_run_with_a_deadline_uses_one_client(sim_server: SimServer) -> None:
    from rlm_core import Budget, ModelSpec, RLMEngine

    task = generate("oolong", n_tokens=32_000, seed=1)
    engine = RLMEngine(
        root=ModelSpec(model="openai/sim-large", api_base=sim_server.base_url, api_key="sk-sim"),
        sub=ModelSpec(model="openai/sim-mini", api_base=sim_server.base_url, api_key="sk-sim"),
        budget=Budget(max_wall_s=90.0),  # less than a call's own timeout: the time left rules
    )
    result = await engine.acompletion(task.question, task.context, deadline=time.monotonic() + 60.0)
    assert result.ok
    assert len(result.trajectory.calls) >= 5
    assert len(_async_clients_for(sim_server.base_url)) == 1
