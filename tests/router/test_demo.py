"""``rlm-router demo`` end to end on a shortened workload (the full one runs in ``make demo``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router.cli import main


@pytest.mark.slow
def test_demo_compares_the_router_with_both_baselines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, traces = tmp_path / "demo.json", tmp_path / "traces.jsonl"
    code = main(["demo", "--max-tokens", "8000", "--out", str(out), "--traces", str(traces)])
    assert code == 0
    report = json.loads(out.read_text())
    assert set(report["summary"]) == {"router", "always-direct", "always-rlm"}
    routed = [r for r in report["requests"] if r["strategy"] == "router"]
    assert {r["family"] for r in routed} >= {"chat", "qa", "niah", "oolong", "oolong_pairs"}
    assert all(r["route"] == "llm" for r in routed if r["family"] in ("chat", "qa"))
    assert all(r["error"] is None for r in routed)
    assert report["summary"]["router"]["mean_score"] > 0.8
    printed = capsys.readouterr().out
    assert "always-direct" in printed and "mean score" in printed
    # The routed requests' spans feed `rlm-router dashboard`.
    from telemetry import read_spans

    requests = [s for s in read_spans([traces]) if s.name == "rlm_router.request"]
    assert len(requests) == len(routed)
