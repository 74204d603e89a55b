"""The judge against the simulated provider on loopback: the real litellm client path, the
simulator answering the judge's real prompt with the task family's scorer.

Sampling share, the cost cap, the feedback records it writes, and a user's request that is
unaffected when the judge's model errors or hangs (configured in the policy YAML, through
``Router.acompletion``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import yaml

from rlm_router.policies import load_policy
from rlm_router.policies.schema import JudgeSettings, ModelTarget
from rlm_router.router.judge import Judge, judge_messages, parse_grade
from rlm_router.sim import SimServer
from rlm_router.sim.tasks import generate
from rlm_router.telemetry import Telemetry, read_feedback
from tests.telemetry.telemetry_support import wired_telemetry

FAMILIES = (("chat", 0), ("qa", 0), ("qa", 2_000), ("niah", 8_000), ("oolong", 8_000))


def _telemetry(tmp_path: Path) -> tuple[Telemetry, Path]:
    path = tmp_path / "feedback.jsonl"
    return Telemetry(feedback_path=path), path


def _judge(
    sim: SimServer, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch, **settings: object
) -> Judge:
    monkeypatch.setenv("SIM_KEY", "sk-sim")
    target = ModelTarget(model="openai/sim-mini", api_base=sim.base_url, api_key_env="SIM_KEY")
    return Judge(JudgeSettings(model=target, **settings), telemetry)  # type: ignore[arg-type]


def test_parse_grade_reads_one_number_in_range() -> None:
    assert parse_grade("0.75") == 0.75
    assert parse_grade("Score: 1") == 1.0
    assert parse_grade(".5\n") == 0.5
    assert parse_grade("7") is None
    assert parse_grade("no idea") is None


async def test_grades_match_the_family_scorers_and_are_written_as_feedback(
    sim_server: SimServer, sim_models: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    telemetry, path = _telemetry(tmp_path)
    judge = _judge(sim_server, telemetry, monkeypatch, sample_rate=1.0, seed=0)
    expected: dict[str, float] = {}
    for i, (family, n) in enumerate(FAMILIES):
        task = generate(family, n_tokens=n, seed=i)
        for j, answer in enumerate((task.answer, "I am not sure, maybe 3.")):
            decision_id = f"d-{i}-{j}"
            assert judge.submit(decision_id, task.messages(), answer) is not None
            expected[decision_id] = task.score(answer)
    await judge.drain(timeout_s=30)
    report = judge.report()
    assert report.graded == len(expected) and report.failed == 0
    assert 0 < report.spent_usd <= report.max_cost_usd
    records = read_feedback([path])
    assert set(records) == set(expected)
    assert {r.source for r in records.values()} == {"judge"}
    for decision_id, score in expected.items():
        assert records[decision_id].quality == pytest.approx(score, abs=1e-3), decision_id
    assert any(score == 0 for score in expected.values())
    assert any(score == 1 for score in expected.values())


async def test_it_samples_the_configured_share(
    sim_server: SimServer, sim_models: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    telemetry, path = _telemetry(tmp_path)
    judge = _judge(sim_server, telemetry, monkeypatch, sample_rate=0.25, seed=7)
    task = generate("qa", n_tokens=0, seed=1)
    submitted = [judge.submit(f"d-{i}", task.messages(), task.answer) for i in range(200)]
    await judge.drain(timeout_s=30)
    sampled = sum(1 for t in submitted if t is not None)
    assert 30 <= sampled <= 70  # 25% of 200 = 50 (seeded; ±4 standard deviations)
    assert judge.report().sampled == judge.report().graded == sampled
    assert len(read_feedback([path])) == sampled
    off = _judge(sim_server, telemetry, monkeypatch, sample_rate=0.0)
    assert off.submit("d-off", task.messages(), task.answer) is None


async def test_its_spend_stays_under_the_cap(
    sim_server: SimServer, sim_models: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    telemetry, _ = _telemetry(tmp_path)
    task = generate("niah", n_tokens=8_000, seed=2)
    probe = _judge(sim_server, telemetry, monkeypatch, sample_rate=1.0)
    one = probe._worst_case_usd(judge_messages(task.messages(), task.answer))
    assert one > 0  # priced from the simulated model's litellm entry
    wired = next(wired_telemetry(capture_content=False))  # in-memory metric reader
    judge = _judge(
        sim_server, wired.telemetry, monkeypatch, sample_rate=1.0, max_cost_usd=3.5 * one
    )
    for i in range(10):
        judge.submit(f"d-{i}", task.messages(), task.answer)
    await judge.drain(timeout_s=30)
    report = judge.report()
    assert report.graded == 3 and report.skipped_over_cap == 7
    assert 0 < report.spent_usd <= report.max_cost_usd
    # Reported as metrics too: what it spent, and how each grading ended.
    ((_, cost),) = wired.metric_points("rlm_router.judge.cost")
    assert cost.value == pytest.approx(report.spent_usd)  # type: ignore[attr-defined]
    counts = {
        attrs["outcome"]: point.value  # type: ignore[attr-defined]
        for attrs, point in wired.metric_points("rlm_router.judge.gradings")
    }
    assert counts == {"graded": 3, "over_cap": 7}


POLICY_JUDGE = """
judge:
  model: {{model: openai/sim-mini, api_base: "{base}", api_key_env: SIM_KEY}}
  sample_rate: 1.0
  timeout_s: 0.5
"""


@pytest.mark.parametrize("fault", ["500", "timeout"])
async def test_a_failing_or_hanging_judge_leaves_the_request_alone(
    fault: str,
    sim_server: SimServer,
    sim_models: None,
    sim_faults: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rlm_router.policies.loader import DEFAULT_POLICY_PATH
    from rlm_router.router import Router

    monkeypatch.setenv("SIM_KEY", "sk-sim")
    policy = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    for role in ("direct", "rlm_root", "rlm_sub"):
        policy["models"][role].update(api_base=sim_server.base_url, api_key_env="SIM_KEY")
    text = yaml.safe_dump(policy) + POLICY_JUDGE.format(base=sim_server.base_url)
    (tmp_path / "policy.yaml").write_text(text)
    assert load_policy(tmp_path / "policy.yaml").judge.enabled
    telemetry, path = _telemetry(tmp_path)
    router = Router.from_config(str(tmp_path / "policy.yaml"), telemetry=telemetry)
    # Only the judge's model misbehaves (the request goes direct to sim-large).
    async with httpx.AsyncClient() as http:
        await http.post(sim_faults, json={"model": "sim-mini", "fault": fault, "count": 5})
    task = generate("qa", n_tokens=0, seed=3)
    started = time.monotonic()
    response = await router.acompletion(model="auto", messages=task.messages())
    answered_s = time.monotonic() - started
    assert task.score(response.choices[0].message.content) == 1.0  # type: ignore[union-attr]
    judge = router.dispatcher.judge
    assert judge is not None and judge.report().sampled == 1
    await judge.drain(timeout_s=10)
    report = judge.report()
    assert report.failed == 1 and report.graded == 0, report
    assert not path.exists() or not path.read_text().strip()  # no grade was made up
    # The answer did not wait for the judge: a hanging judge call lasts its 0.5 s timeout.
    assert answered_s < 5.0


@pytest.mark.slow
def test_demo_with_the_judge_ends_in_a_training_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rlm_router.router.cli import main

    traces, feedback = tmp_path / "traces.jsonl", tmp_path / "feedback.jsonl"
    inputs = ["--traces", str(traces), "--feedback", str(feedback)]
    demo = ["demo", "--judge", "--rounds", "7", "--max-tokens", "8000", "--no-baselines"]
    out = tmp_path / "demo.json"
    assert main([*demo, "--time-scale", "0", "--out", str(out), *inputs]) == 0
    printed = capsys.readouterr().out
    assert "judge: graded 49 of 49 sampled answers" in printed
    judged = json.loads(out.read_text())["judge"]
    assert judged["graded"] == 49 and judged["spent_usd"] <= judged["max_cost_usd"]
    sources = {json.loads(line)["source"] for line in feedback.read_text().splitlines()}
    assert sources == {"judge"}
    code = main(["train", *inputs, "--out", str(tmp_path / "classifier.json")])
    report = capsys.readouterr().out
    assert code in (0, 1), report  # promoted or kept; 2 would be "cannot train"
    assert "requests read: 49" in report
    assert any(line.startswith("decision: ") for line in report.splitlines())


def test_the_policy_rejects_a_judge_without_a_model(tmp_path: Path) -> None:
    from rlm_router.policies.loader import DEFAULT_POLICY_PATH, PolicyError

    path = tmp_path / "policy.yaml"
    path.write_text(DEFAULT_POLICY_PATH.read_text() + "\njudge:\n  sample_rate: 0.5\n")
    with pytest.raises(PolicyError, match=r"judge\.sample_rate"):
        load_policy(path)
    assert not load_policy(DEFAULT_POLICY_PATH).judge.enabled  # off by default
