"""The realistic-mix workload and benchmark: its shape, its oracle, and one small real run."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from benchmarks import mix_bench
from benchmarks.mix_bench import Row, misroutes
from benchmarks.mix_workload import LONG_SIZES, REAL_TEXT, SHORT_CATEGORIES, build


def test_the_mix_is_80_percent_short_and_20_percent_long_of_every_kind() -> None:
    requests = build(2_000, seed=0)
    assert len(requests) == 2_000
    assert build(2_000, seed=0) == requests  # the same arguments give the same requests
    long = [r for r in requests if r.long]
    assert len(long) == 400
    assert {r.category for r in long} == {"lookup", "aggregate", "pairwise", "multi-hop"}
    assert {r.family for r in long} == {"niah", "oolong", "oolong_pairs", "multihop"}
    sizes = Counter(r.n_tokens for r in long)
    assert set(sizes) == {n for n, _ in LONG_SIZES}
    assert min(sizes) == 16_000 and max(sizes) == 1_000_000
    assert all(r.category in SHORT_CATEGORIES for r in requests if not r.long)
    budgeted = [r for r in requests if r.category == "budgeted"]
    assert len(budgeted) == 400 and all(r.latency_budget_ms for r in budgeted)
    assert all(r.latency_budget_ms is None for r in requests if r.category != "budgeted")
    # Lookups and multi-hop hide their facts in real text about half the time.
    hidden = [r for r in long if r.family in ("niah", "multihop")]
    real = [r for r in hidden if r.text_source != "filler"]
    assert 0.35 < len(real) / len(hidden) < 0.65
    assert {r.text_source for r in real} <= set(REAL_TEXT)
    assert len({r.seed for r in requests}) == 2_000  # no two requests share a question


def test_a_real_text_request_carries_its_facts_in_that_text() -> None:
    request = next(
        r for r in build(400, seed=1) if r.family == "multihop" and r.text_source == "changelogs"
    )
    task = request.task()
    assert "urgency=" in task.context  # Debian changelog lines
    assert task.answer in task.context and task.metadata["person"] in task.question
    assert task.score(task.answer) == 1.0


def _row(strategy: str, index: int, route: str, score: float, cost: float) -> Row:
    return Row("coder", strategy, index, "aggregate", "oolong", 64_000, route, score, cost, 1.0)


def test_misroutes_are_counted_against_the_better_baseline() -> None:
    direct = [_row("always-direct", i, "llm", s, 0.1) for i, s in enumerate((1.0, 0.2, 0.5))]
    rlm = [_row("always-rlm", i, "rlm", s, 0.3) for i, s in enumerate((1.0, 0.9, 0.5))]
    # 0: tie, direct is cheaper -> llm; 1: RLM better -> rlm; 2: tie -> llm.
    routed = [_row("router", 0, "rlm", 1.0, 0.3), _row("router", 1, "llm", 0.2, 0.1),
              _row("router", 2, "llm", 0.5, 0.1)]  # fmt: skip
    found = misroutes(routed, direct, rlm)["by_case"]
    assert found == {
        "aggregate -> llm (oracle rlm)": {"count": 1, "quality_lost": 0.7, "cost_extra_usd": -0.2},
        "aggregate -> rlm (oracle llm)": {"count": 1, "quality_lost": 0.0, "cost_extra_usd": 0.2},
    }


@pytest.mark.slow
@pytest.mark.server
def test_a_small_mix_runs_every_strategy_and_grades_every_request(tmp_path: Path) -> None:
    out = tmp_path / "mix.json"
    assert mix_bench.main(["--requests", "30", "--persona", "coder", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert Counter(r["strategy"] for r in rows) == {s: 30 for s in mix_bench.STRATEGIES}
    summary = report["summary"]["coder"]
    assert set(summary["strategies"]) == set(mix_bench.STRATEGIES)
    assert summary["strategies"]["always-rlm"]["rlm_share"] == 1.0
    routed = [r for r in rows if r["strategy"] == "router"]
    # Chat and arithmetic never escalate; everything over the direct window does.
    assert all(r["route"] == "llm" for r in routed if r["category"] == "chat")
    assert all(r["route"] == "rlm" for r in routed if r["n_tokens"] > 272_000)
    assert all(r["error"] is None for r in rows if r["strategy"] != "always-direct")
    assert all(0.0 <= r["score"] <= 1.0 for r in rows)
    assert sum(r["cost_usd"] for r in routed) > 0
