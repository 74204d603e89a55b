"""Threshold calibration and the policy / route CLI commands."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from rlm_router.policies import calibrate_threshold, load_policy
from rlm_router.policies.loader import DEFAULT_POLICY_PATH
from rlm_router.router.cli import main
from rlm_router.sim.tasks import generate


def test_threshold_is_the_score_quantile() -> None:
    scores = [i / 100 for i in range(100)]
    threshold = calibrate_threshold(scores, 0.2)
    assert sum(s >= threshold for s in scores) == 20
    assert calibrate_threshold(scores, 0.0) > max(scores)
    assert calibrate_threshold(scores, 1.0) == 0.0
    with pytest.raises(ValueError):
        calibrate_threshold(scores, 1.5)


def _sample(path: Path) -> None:
    lines = []
    for i in range(40):
        family = ["chat", "qa", "niah", "oolong", "oolong_pairs"][i % 5]
        task = generate(family, n_tokens=1_000 * (1 + i), seed=i)
        body = {"messages": task.messages()}
        lines.append(json.dumps(body if i % 2 else {"request": body, "headers": {}}))
    path.write_text("\n".join(lines) + "\n")


def test_calibrate_writes_the_threshold_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample, out = tmp_path / "sample.jsonl", tmp_path / "calibrated.yaml"
    _sample(sample)
    argv = ["policy", "calibrate", "--requests", str(sample), "--escalation-rate", "0.2"]
    assert main([*argv, "--write", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["achieved_escalation_rate"] == pytest.approx(0.2, abs=0.05)
    policy = load_policy(out)
    assert policy.classifier.threshold == pytest.approx(report["threshold"], abs=1e-6)
    # Only the threshold changed; comments survive.
    before = DEFAULT_POLICY_PATH.read_text().splitlines()
    after = out.read_text().splitlines()
    assert len(before) == len(after)
    changed = [a for a, b in zip(after, before, strict=True) if a != b]
    assert len(changed) == 1 and changed[0].strip().startswith("threshold:")


def test_policy_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(DEFAULT_POLICY_PATH)]) == 0
    assert "ok:" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEFAULT_POLICY_PATH.read_text().replace("threshold: 0.5", "threshold: 2"))
    assert main(["policy", "check", str(bad)]) == 1
    assert f"{bad}:" in capsys.readouterr().err


def test_route_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    body = {"messages": generate("oolong_pairs", n_tokens=8_000, seed=0).messages()}
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(body)))
    assert main(["route", "--json"]) == 0
    decision = json.loads(capsys.readouterr().out)
    for key in (
        "route",
        "score",
        "threshold",
        "rule",
        "features",
        "contributions",
        "policy_version",
    ):
        assert key in decision
    assert decision["route"] == "rlm"


def test_route_explain_shows_the_instruction_the_task_and_the_evidence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    records = "\n".join(
        f"id={i} status=closed region=EU-{i % 7} amount={i * 3}" for i in range(9000)
    )
    ask = "Combien de commandes ont le statut « closed » ? Donne la répartition par région."
    body = {"messages": [{"role": "user", "content": f"{ask}\n{records}"}]}
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(body)))
    assert main(["route", "--explain"]) == 0
    out = capsys.readouterr().out
    assert f"instruction (start of the last user message): {ask!r}" in out
    assert "task: aggregate" in out
    assert "evidence terms (log-odds toward rlm): " in out
    assert "route: rlm" in out


def test_route_rejects_invalid_requests(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"messages": []}'))
    assert main(["route", "--explain"]) == 2
    assert "'messages'" in capsys.readouterr().err


def test_calibrate_says_when_it_misses_the_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Ten copies of one request: every score ties, so 20% escalation is unreachable.
    body = {"messages": generate("oolong", n_tokens=4_000, seed=0).messages()}
    sample, out = tmp_path / "sample.jsonl", tmp_path / "calibrated.yaml"
    sample.write_text((json.dumps(body) + "\n") * 10)
    argv = ["policy", "calibrate", "--requests", str(sample), "--escalation-rate", "0.2"]
    assert main([*argv, "--write", str(out)]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["target_met"] is False
    assert report["achieved_escalation_rate"] in (0.0, 1.0)
    assert "missed the target" in captured.err and "20%" in captured.err
    assert not out.exists()


def test_route_on_a_terminal_says_it_waits_for_stdin() -> None:
    import os
    import pty
    import subprocess

    script = Path(sys.executable).with_name("rlm-router")
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [str(script), "route"], stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        os.write(leader, b'{"messages": [{"role": "user", "content": "hi"}]}\n\x04')
        out, err = process.communicate(timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    assert process.returncode == 0, err
    assert b"reading the request (JSON) from stdin" in err
    assert out.startswith(b"llm ")


def test_route_interrupted_exits_without_a_traceback() -> None:
    import signal
    import subprocess
    import time

    script = Path(sys.executable).with_name("rlm-router")
    process = subprocess.Popen(
        [str(script), "route"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # Wait until it blocks in read(0, ...) on stdin (Linux: syscall 0, first argument fd 0): a
    # fixed sleep sent the signal while the interpreter was still starting on a loaded machine.
    syscall = Path(f"/proc/{process.pid}/syscall")
    deadline = time.monotonic() + 120
    while not syscall.read_text().startswith("0 0x0 ") and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert b"Traceback" not in err
    assert err.strip().endswith(b"interrupted")
