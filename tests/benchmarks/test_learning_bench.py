"""A small run of the learning benchmark: the whole loop works and never promotes blindly.

(The figures that matter come from the full run, ``python -m benchmarks.learning_bench``.)
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.learning_bench import main
from rlm_router.telemetry import load_request_records


def test_learning_loop_small_run(tmp_path: Path) -> None:
    code = main(
        [
            "--requests", "120", "--retrain-every", "60", "--eval-tasks", "16",
            "--min-tokens", "2000", "--max-tokens", "16000", "--half-load", "1000000",
            "--exploration-rate", "0.2", "--out", str(tmp_path),
        ]
    )  # fmt: skip
    assert code == 0
    result = json.loads((tmp_path / "learning_bench.json").read_text())
    assert "prior gap closed" in (tmp_path / "learning_bench.md").read_text()

    checkpoints = result["checkpoints"]
    assert [c["requests"] for c in checkpoints] == [0, 60, 120]
    trained = checkpoints[1:]
    # Every retraining ran the real CLI and either promoted (0) or kept the current policy (1).
    assert all(c["exit_code"] in (0, 1) for c in trained)
    assert all(c["offline"] is not None for c in trained)
    assert result["bad_promotions"] == 0
    for c in trained:
        if c["promoted"]:
            assert c["offline"]["improvement"]["lower"] > 0
    # The oracle is an upper bound of every policy's true value on the evaluation set.
    assert all(c["true_value"] <= result["oracle_value"] + 1e-9 for c in checkpoints)
    assert result["stream_failures"] == 0

    work = tmp_path / "learning_bench"
    records = load_request_records([work / "traces.jsonl"], [work / "feedback.jsonl"])
    assert len(records) == 120  # one per routed request: evaluation runs are not logged
    assert all(r.propensity is not None and r.quality is not None for r in records)
    assert any(r.exploration for r in records)
