"""The engine and the router against a real 1.5B model: messy real output must never break
the protocol (every turn parsed, the run ends with an answer or a typed stop reason)."""

from __future__ import annotations

import random

from rlm_router.rlm_core import Budget, ModelSpec, RLMEngine, SandboxLimits, StopReason
from rlm_router.sim.local_model import MODEL_NAME, LocalModelServer

FACT = "The access code for the blue vault is 48213."


def _haystack(n_lines: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    words = ["river", "stone", "cloud", "ledger", "lamp", "orchard", "copper", "window"]
    lines = [" ".join(rng.choice(words) for _ in range(12)) + "." for _ in range(n_lines)]
    lines.insert(n_lines // 2, FACT)
    return "\n".join(lines)


def _spec(server: LocalModelServer) -> ModelSpec:
    return ModelSpec(model=f"openai/{MODEL_NAME}", api_base=server.base_url, api_key="sk-local")


async def test_the_engine_survives_a_real_root(local_server: LocalModelServer) -> None:
    engine = RLMEngine(
        root=_spec(local_server),
        budget=Budget(max_iterations=4, max_sub_calls=8, max_wall_s=900),
        limits=SandboxLimits(wall_seconds=30.0),
        concurrency=1,
    )
    result = await engine.acompletion("What is the access code for the blue vault?", _haystack(60))
    # Whatever the model wrote, each turn was parsed and recorded, and the run stopped for a
    # stated reason with the model's best answer when it had one.
    assert 1 <= result.iterations <= 4
    if result.stopped_reason is StopReason.TIMEOUT:
        # A slow machine: the wall budget cut the run, possibly in the middle of a turn.
        assert len(result.trajectory.iterations) >= result.iterations - 1
        return
    assert len(result.trajectory.iterations) == result.iterations
    assert result.stopped_reason in (StopReason.FINAL, StopReason.MAX_ITERATIONS)
    assert result.answer is not None


async def test_a_direct_lookup_through_litellm(local_server: LocalModelServer) -> None:
    from rlm_router.rlm_core.litellm_api import acompletion

    question = "What is the access code for the blue vault? Reply with the number only."
    response = await acompletion(
        model=f"openai/{MODEL_NAME}",
        api_base=local_server.base_url,
        api_key="sk-local",
        messages=[{"role": "user", "content": f"{_haystack(40)}\n\n{question}"}],
        max_tokens=16,
    )
    assert "48213" in (response.choices[0].message.content or "")
