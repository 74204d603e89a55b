"""``rlm-router demo`` end to end on a shortened workload (the full one runs in ``make demo``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rlm_router.router.cli import main


@pytest.mark.slow
def test_demo_compares_the_router_with_both_baselines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, traces = tmp_path / "demo.json", tmp_path / "traces.jsonl"
    # Without exploration, so every routed request takes the route the policy chose.
    args = ["--max-tokens", "8000", "--exploration", "0", "--out", str(out)]
    code = main(["demo", *args, "--traces", str(traces), "--feedback", str(tmp_path / "f.jsonl")])
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
    from rlm_router.telemetry import read_spans

    requests = [s for s in read_spans([traces]) if s.name == "rlm_router.request"]
    assert len(requests) == len(routed)


@pytest.mark.slow
def test_demo_then_train_closes_the_loop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo explores and grades its answers; train on its outputs reports a decision."""
    traces, feedback = tmp_path / "traces.jsonl", tmp_path / "feedback.jsonl"
    inputs = ["--traces", str(traces), "--feedback", str(feedback)]
    demo = ["demo", "--rounds", "7", "--max-tokens", "8000", "--no-baselines"]
    assert main([*demo, "--time-scale", "0", "--out", str(tmp_path / "demo.json"), *inputs]) == 0
    printed = capsys.readouterr().out
    assert f"rlm-router train {' '.join(inputs)}" in printed  # the next step, as printed
    sources = {json.loads(line)["source"] for line in feedback.read_text().splitlines()}
    assert sources == {"demo-scorer"}

    artifact = tmp_path / "classifier.json"
    code = main(["train", *inputs, "--out", str(artifact)])
    report = capsys.readouterr().out
    assert code in (0, 1), report  # promoted or kept; 2 would be "cannot train"
    assert "requests read: 49" in report
    decision = next(line for line in report.splitlines() if line.startswith("decision: "))
    assert decision.startswith(("decision: PROMOTE", "decision: KEEP CURRENT"))
    improvement = next(line for line in report.splitlines() if "improvement:" in line)
    assert re.search(r"improvement: [+-]\d\.\d+ \[[+-]\d\.\d+, [+-]\d\.\d+\]", improvement)
    assert artifact.exists() == (code == 0)


def test_demo_lines_show_the_requests_own_size() -> None:
    """An arithmetic QA task has no context (``n_tokens`` 0); its line shows the question's."""
    from rlm_router.router.commands.demo import Row, _line, request_tokens
    from rlm_router.sim.tasks import generate

    task = generate("qa", n_tokens=0, seed=1, kind="arithmetic")
    assert task.n_tokens == 0
    size = request_tokens(task)
    assert 5 < size < 40
    row = Row(
        strategy="router", family="qa", n_tokens=size, route="llm", reason="r", score=0.1,
        latency_s=0.1, cost_usd=0.0, correct=1.0,
    )  # fmt: skip
    assert _line(row).split()[:3] == ["qa", str(size), "tok"]
