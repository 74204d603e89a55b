"""End to end against the simulated provider over loopback, through litellm's real client:
the benchmark task families, recursion, batched fan-out, provider faults, the CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from rlm_router.rlm_core import (
    Budget,
    ModelSpec,
    ProviderFailure,
    RetryPolicy,
    RLMEngine,
    RLMResult,
    StopReason,
)
from rlm_router.sim import SimServer
from rlm_router.sim.tasks import generate

FAST_RETRY = RetryPolicy(initial_backoff_s=0.01, max_backoff_s=0.05, timeout_s=5.0)


@pytest.fixture
def sim(sim_server: SimServer, sim_models: None, sim_faults: str) -> SimServer:
    """The session's simulated provider, models registered, faults cleared around the test."""
    return sim_server


def make_engine(sim: SimServer, **kwargs: Any) -> RLMEngine:
    kwargs.setdefault("retry", FAST_RETRY)
    return RLMEngine(
        root=ModelSpec(model="openai/sim-large", api_base=sim.base_url, api_key="sim"),
        sub=ModelSpec(model="openai/sim-mini", api_base=sim.base_url, api_key="sim"),
        **kwargs,
    )


async def solve(
    sim: SimServer, family: str, n_tokens: int, **kwargs: Any
) -> tuple[float, RLMResult]:
    task = generate(family, n_tokens=n_tokens, seed=3)
    result = await make_engine(sim, **kwargs).acompletion(task.question, task.context)
    return task.score(result.answer or ""), result


def max_overlap(result: RLMResult, role: str = "sub") -> int:
    """Most provider calls of ``role`` in flight at once, from the trajectory's timings."""
    edges: list[tuple[float, int]] = []
    for call in result.trajectory.calls:
        if call.role == role:
            edges += [(call.started_s, 1), (call.started_s + call.duration_s, -1)]
    peak = current = 0
    for _, step in sorted(edges):
        current += step
        peak = max(peak, current)
    return peak


@pytest.mark.parametrize(
    ("family", "threshold"), [("niah", 1.0), ("oolong", 0.7), ("oolong_pairs", 0.7)]
)
async def test_task_families_at_32k(sim: SimServer, family: str, threshold: float) -> None:
    score, result = await solve(sim, family, 32_000)
    assert result.ok, result.stopped_reason
    assert score >= threshold, (family, score, result.answer)
    assert result.cost_usd > 0 and result.input_tokens > 0


@pytest.mark.slow
@pytest.mark.parametrize("n_tokens", [262_000, 1_000_000])
@pytest.mark.parametrize(
    ("family", "threshold"), [("niah", 1.0), ("oolong", 0.6), ("oolong_pairs", 0.6)]
)
async def test_task_families_long(
    sim: SimServer, family: str, threshold: float, n_tokens: int
) -> None:
    score, result = await solve(sim, family, n_tokens, concurrency=32)
    assert result.ok, result.stopped_reason
    assert score >= threshold, (family, n_tokens, score)


async def test_depth_two_recursion_with_child_rlms(sim: SimServer) -> None:
    # Over ~2M characters the simulated root hands parts to child RLMs via rlm_query.
    score, result = await solve(sim, "niah", 520_000, budget=Budget(max_depth=2))
    assert result.ok and score == 1.0
    children = [node for node in result.trajectory.nodes if node.depth == 1]
    assert len(children) >= 2
    assert all(node.parent_id == 0 and node.stopped_reason == "final" for node in children)
    assert {call.depth for call in result.trajectory.calls} == {0, 1}


async def test_batched_sub_calls_overlap(sim: SimServer) -> None:
    _, result = await solve(sim, "oolong", 32_000, concurrency=16)
    assert result.sub_calls > 1
    assert max_overlap(result) > 1


async def test_scheduled_429_and_5xx_are_retried(sim: SimServer, sim_faults: str) -> None:
    async with httpx.AsyncClient() as client:
        for fault in ("429", "503"):
            reply = await client.post(
                sim_faults, json={"model": "sim-large", "fault": fault, "count": 1}
            )
            reply.raise_for_status()
    started = time.monotonic()
    score, result = await solve(sim, "niah", 32_000)
    assert result.ok and score == 1.0
    assert max(call.attempts for call in result.trajectory.calls) == 3
    # The simulator's 429 asks for retry-after: 1 s; the backoff alone would be ~0.02 s.
    assert time.monotonic() - started >= 1.0


async def test_permanent_failure_raises_with_the_trajectory(
    sim: SimServer, sim_faults: str
) -> None:
    async with httpx.AsyncClient() as client:
        # Root turns succeed; every sub-call fails.
        await client.post(sim_faults, json={"model": "sim-mini", "fault": "500", "count": 100})
    retry = RetryPolicy(max_attempts=2, initial_backoff_s=0.01, timeout_s=5.0)
    with pytest.raises(ProviderFailure) as caught:
        await solve(sim, "oolong", 32_000, retry=retry)
    assert caught.value.trajectory is not None
    assert caught.value.trajectory.iterations or caught.value.trajectory.calls
    assert caught.value.status_code == 500


async def test_timeouts_are_retried(sim: SimServer, sim_faults: str) -> None:
    async with httpx.AsyncClient() as client:
        await client.post(sim_faults, json={"model": "sim-large", "fault": "timeout", "count": 1})
    retry = RetryPolicy(initial_backoff_s=0.01, timeout_s=1.0)
    score, result = await solve(sim, "niah", 32_000, retry=retry)
    assert result.ok and score == 1.0


async def test_budget_breach_returns_a_typed_reason(sim: SimServer) -> None:
    _, result = await solve(sim, "oolong", 32_000, budget=Budget(max_iterations=1))
    assert result.stopped_reason in {StopReason.FINAL, StopReason.MAX_ITERATIONS}
    _, by_cost = await solve(sim, "oolong", 32_000, budget=Budget(max_cost_usd=1e-6))
    assert by_cost.stopped_reason is StopReason.MAX_COST


def test_cli_json(sim: SimServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rlm_router.router.cli import main

    task = generate("niah", n_tokens=32_000, seed=5)
    context_file = tmp_path / "context.txt"
    context_file.write_text(task.context)
    code = main(
        [
            "rlm", "--model", "openai/sim-large", "--sub-model", "openai/sim-mini",
            "--api-base", sim.base_url, "--api-key", "sim",
            "--context-file", str(context_file),
            "--query", task.question, "--max-iterations", "10", "--json",
        ]
    )  # fmt: skip
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    assert task.score(payload["answer"]) == 1.0
    for key in ("iterations", "sub_calls", "input_tokens", "output_tokens", "cost_usd"):
        assert key in payload
    assert payload["stopped_reason"] == "final" and payload["elapsed_s"] > 0
