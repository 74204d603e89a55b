"""The simulated models' accuracy follows the documented curve (CALIBRATION.md).

Direct answers go through litellm to the simulator: on an information-dense aggregation
task accuracy falls with length, while a single-needle lookup does not.
"""

from __future__ import annotations

import asyncio
import statistics

import pytest

from rlm_router.sim import SIM_MODELS, SimServer
from rlm_router.sim.recall import caught, draw, recall
from rlm_router.sim.tasks import generate

pytestmark = pytest.mark.usefixtures("sim_models")

SEEDS = range(8)


async def _direct_scores(sim: SimServer, family: str, n_tokens: int, kind: str | None) -> float:
    import litellm

    tasks = [generate(family, n_tokens=n_tokens, seed=s, kind=kind) for s in SEEDS]
    replies = await asyncio.gather(
        *(
            litellm.acompletion(
                model="openai/sim-large",
                api_base=sim.base_url,
                api_key="sk-sim",
                messages=t.messages(),
                num_retries=0,
            )
            for t in tasks
        )
    )
    return statistics.mean(
        t.score(r.choices[0].message.content) for t, r in zip(tasks, replies, strict=True)
    )


async def test_aggregation_accuracy_falls_with_length(sim_server: SimServer) -> None:
    short = statistics.mean(
        [await _direct_scores(sim_server, "oolong", 8_000, k) for k in ("count", "most_common")]
    )
    long = statistics.mean(
        [await _direct_scores(sim_server, "oolong", 240_000, k) for k in ("count", "most_common")]
    )
    assert short >= 0.8
    assert long <= 0.4
    pairs_short = await _direct_scores(sim_server, "oolong_pairs", 8_000, None)
    pairs_long = await _direct_scores(sim_server, "oolong_pairs", 240_000, None)
    assert pairs_short >= 0.8 > 0.3 >= pairs_long


async def test_single_needle_accuracy_stays_high(sim_server: SimServer) -> None:
    assert await _direct_scores(sim_server, "niah", 8_000, None) >= 0.85
    assert await _direct_scores(sim_server, "niah", 240_000, None) >= 0.85


def test_curve_shape_and_documented_points() -> None:
    large = SIM_MODELS["sim-large"]
    points = [recall(large, n) for n in (1_000, 8_000, 32_000, 131_000, 262_000, 1_000_000)]
    assert points == sorted(points, reverse=True)
    assert points[1] >= 0.9 and points[4] < 0.3
    mini = SIM_MODELS["sim-mini"]
    assert recall(mini, 7_000) >= 0.95  # the sub-call chunk size the root programs use


def test_draws_are_deterministic_and_seeded() -> None:
    large = SIM_MODELS["sim-large"]
    assert draw(0, "sim-large", "item", 1000) == draw(0, "sim-large", "item", 1000)
    assert draw(0, "sim-large", "item", 1000) != draw(1, "sim-large", "item", 1000)
    hits = sum(caught(large, 0, f"item {i}", 131_000) for i in range(4000))
    assert hits / 4000 == pytest.approx(recall(large, 131_000), abs=0.03)


def test_calibration_table_tool() -> None:
    from rlm_router.sim.calibrate import table

    rows = table(SIM_MODELS["sim-mini"], seeds=1, lengths=(4_000,))
    assert rows[0][:3] == ["tokens", "r dense", "r sparse"]
    assert len(rows) == 2 and all(0.0 <= float(x) <= 1.0 for x in rows[1][1:])
