"""The engine A/B tool: paired ratios with a bootstrap interval, and real measurements of a
tree's per-iteration wall gap and CPU (host and worker) from fresh processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.engine_ab import main, summarize

TREE = Path(__file__).resolve().parents[2]


def _pair(baseline: float, tree: float) -> dict[str, dict[str, float]]:
    return {
        "baseline": {"gap_ms": baseline, "cpu_ms": 2 * baseline, "host_cpu_ms": baseline},
        "tree": {"gap_ms": tree, "cpu_ms": 2 * tree, "host_cpu_ms": tree},
    }


def test_the_ratio_is_taken_per_pair_not_between_the_trees_medians() -> None:
    # A slow pair (both trees at 10x) must not move the ratio: each pair is its own control.
    pairs = [_pair(0.3, 0.33), _pair(3.0, 3.3), _pair(0.3, 0.33), _pair(0.4, 0.44)]
    summary = summarize(pairs)
    gap = summary["ratios"]["gap_ms"]
    assert gap["median"] == pytest.approx(1.1)
    assert (gap["low"], gap["high"]) == (pytest.approx(1.1), pytest.approx(1.1))
    assert summary["trees"]["baseline"]["gap_ms"] == pytest.approx(0.35)


def test_the_interval_brackets_the_median_and_widens_with_spread() -> None:
    tight = summarize([_pair(1.0, r) for r in (1.0, 1.02, 0.98, 1.01, 0.99, 1.0)])
    loose = summarize([_pair(1.0, r) for r in (0.6, 1.4, 0.8, 1.2, 0.7, 1.3)])
    for summary in (tight, loose):
        r = summary["ratios"]["cpu_ms"]
        assert r["low"] <= r["median"] <= r["high"]
    width = {k: s["ratios"]["gap_ms"]["high"] - s["ratios"]["gap_ms"]["low"]
             for k, s in (("tight", tight), ("loose", loose))}  # fmt: skip
    assert width["loose"] > 5 * width["tight"]


def test_a_tree_against_itself_measures_gaps_and_the_workers_cpu(tmp_path: Path) -> None:
    out = tmp_path / "ab.json"
    args = ["--baseline", str(TREE), "--tree", str(TREE), "--pairs", "1", "--runs", "1"]
    assert main([*args, "--iterations", "3", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    for name in ("baseline", "tree"):
        measured = report["measured"][0][name]
        # 4 model calls per run (3 steps and FINAL), so 3 intervals, of which the first
        # waits for the worker to start (not yet there at the first call): 2 per run, for the
        # warm-up run and the timed one.
        assert measured["iterations_timed"] == 4
        assert 0 < measured["gap_ms"] < 1000
        # The worker's CPU is read from its own clock and added to the host's.
        assert measured["cpu_ms"] > measured["host_cpu_ms"] > 0
    assert report["ratios"]["gap_ms"]["median"] > 0
