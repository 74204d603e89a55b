"""Retraining from traces: data set, estimators, fitting, promotion and ``rlm-router train``.

Logged traffic is written through the real telemetry path (``Telemetry`` → OTLP-JSON lines
file, feedback spans and file) from real ``policies.decide`` decisions on synthetic feature
vectors whose outcomes follow a known ground truth, so the trainer reads exactly what a
router writes. One test routes real requests through the simulated provider to check that
inner sub-calls never become training rows.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

from rlm_router.policies import LinearClassifier, Policy, decide, parse_policy
from rlm_router.policies.features import FEATURE_NAMES, RequestFeatures
from rlm_router.policies.fit import TermSpec
from rlm_router.policies.learning import (
    ArtifactPolicy,
    TrainingConfig,
    TrainingDataError,
    Utility,
    build_dataset,
    train,
)
from rlm_router.policies.learning.estimators import compare, policy_rewards, rewards
from rlm_router.policies.learning.terms import learning_terms, term_matrix
from rlm_router.router.cli import main as cli_main
from rlm_router.telemetry import (
    OtlpJsonLinesSpanExporter,
    RequestRecord,
    Telemetry,
    load_request_records,
)

PRIOR = LinearClassifier.load(Path(__file__).parents[2] / "policies" / "default_classifier.json")

# Ground truth: the direct route fails aggregation over long inputs; RLM costs more.
Truth = Callable[[RequestFeatures, str], tuple[float, float]]


def long_aggregation_needs_rlm(features: RequestFeatures, route: str) -> tuple[float, float]:
    """(quality, cost_usd): direct is good except on aggregations over 4K tokens (earlier
    than the prior escalates them, so a retrained policy has something to win)."""
    aggregation = features.task_aggregate > 0.5
    if route == "rlm":
        return 0.9, 0.02
    if aggregation and features.n_tokens > 4_000:
        return 0.2, 0.01
    return 0.95, 0.01


def routes_equivalent(features: RequestFeatures, route: str) -> tuple[float, float]:
    return 0.8, 0.01


def policy_yaml(tmp_path: Path, *, exploration: float, artifact: str = "default") -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\nname: test\n"
        "models:\n  direct: {model: openai/sim-large, context_window: 272000}\n"
        "  rlm_root: {model: openai/sim-large, context_window: 272000}\n"
        "  rlm_sub: {model: openai/sim-mini, context_window: 272000}\n"
        f"classifier: {{artifact: {artifact}, threshold: 0.5}}\n"
        f"exploration: {{rate: {exploration}, seed: 1}}\n"
    )
    return path


def features_for(rng: random.Random) -> RequestFeatures:
    """A request's features: length log-uniform 1K..128K, half of them aggregations."""
    values: dict[str, Any] = {f.name: 0 for f in dataclasses.fields(RequestFeatures)}
    n_tokens = int(2 ** rng.uniform(10, 17))
    aggregation = rng.random() < 0.5
    values.update(
        n_tokens=n_tokens,
        n_chars=4 * n_tokens,
        context_window=272_000,
        window_ratio=n_tokens / 272_000,
        log2_tokens=math.log2(1 + n_tokens),
        compress_ratio=0.4,
        record_line_frac=0.9 if aggregation else 0.0,
        agg_cues=1 if aggregation else 0,
        lookup_cues=0 if aggregation else 1,
        task_aggregate=1.0 if aggregation else 0.0,
        task_lookup=0.0 if aggregation else 1.0,
        task_compositional=1.0 if aggregation else 0.0,
        task_confidence=1.0,
        dense_frac=0.9 if aggregation else 0.1,
        prose_line_frac=0.1 if aggregation else 0.9,
        n_turns=1,
        n_messages=1,
    )
    return RequestFeatures(**values)


def write_traffic(
    tmp_path: Path,
    *,
    n: int,
    exploration: float,
    truth: Truth,
    seed: int = 0,
    drop_propensity: bool = False,
) -> tuple[Path, Path]:
    """Serve ``n`` synthetic requests under the prior, logging them as a router does."""
    traces, feedback = tmp_path / "traces.jsonl", tmp_path / "feedback.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OtlpJsonLinesSpanExporter(traces)))
    telemetry = Telemetry(tracer_provider=provider, feedback_path=feedback)
    policy = parse_policy(policy_yaml(tmp_path, exploration=exploration).read_text())
    rng = random.Random(seed)
    for _ in range(n):
        features = features_for(rng)
        decision = decide(policy, PRIOR, features, rng=rng)
        if drop_propensity:  # as a router without exploration logging would have written it
            decision = dataclasses.replace(decision, propensity=None)  # type: ignore[arg-type]
        quality, cost = truth(features, decision.route)
        with telemetry.request_span(model="auto") as trace:
            trace.decision(decision)
            trace.outcome(
                route_served=decision.route, cost_usd=cost, latency_ms=100.0, fallback="none"
            )
        telemetry.record_feedback(decision.id, quality)
    telemetry.shutdown()
    return traces, feedback


def records_of(tmp_path: Path, **kwargs: Any) -> list[RequestRecord]:
    traces, feedback = write_traffic(tmp_path, **kwargs)
    return load_request_records([traces], [feedback])


# ── utility and data set ──


def test_utility_prices_cost_and_latency_and_scores_unreported_failures() -> None:
    utility = Utility(cost_weight=2.0, latency_weight=0.1, failure_quality=0.0)
    base = RequestRecord(
        trace_id="t",
        start_time_unix_nano=0,
        decision_id="d",
        decided_route="llm",
        score=0.2,
        threshold=0.5,
        rule=None,
        policy_version="p",
        exploration=False,
        propensity=0.9,
        cost_usd=0.05,
        latency_ms=2000.0,
    )
    assert utility.of(dataclasses.replace(base, quality=0.9)) == pytest.approx(0.9 - 0.1 - 0.2)
    assert utility.of(dataclasses.replace(base, error_type="Timeout")) == pytest.approx(-0.3)
    assert utility.of(base) is None  # no feedback, no error: nothing known about its quality
    with pytest.raises(ValueError, match="cost_weight"):
        Utility(cost_weight=-1.0)


def test_data_set_rows_come_from_decisions_with_propensities(tmp_path: Path) -> None:
    records = records_of(tmp_path, n=60, exploration=0.2, truth=long_aggregation_needs_rlm)
    data, summary = build_dataset(records, Utility(), FEATURE_NAMES)
    assert len(data) == summary.usable == 60
    explored = data.exploration
    assert np.allclose(data.propensity[explored], 0.2)
    assert np.allclose(data.propensity[~explored], 0.8)
    assert summary.explored == int(explored.sum()) > 0


def test_traces_without_propensities_are_refused(tmp_path: Path) -> None:
    records = records_of(
        tmp_path, n=30, exploration=0.2, truth=long_aggregation_needs_rlm, drop_propensity=True
    )
    with pytest.raises(TrainingDataError, match="none of the 30 requests carries a propensity"):
        build_dataset(records, Utility(), FEATURE_NAMES)


def test_traces_without_exploration_are_refused(tmp_path: Path) -> None:
    records = records_of(tmp_path, n=30, exploration=0.0, truth=long_aggregation_needs_rlm)
    with pytest.raises(TrainingDataError, match="no exploration in 30 usable requests"):
        build_dataset(records, Utility(), FEATURE_NAMES)


# ── the artifact bridge ──


def test_term_matrix_is_the_artifact_term_value() -> None:
    rng = random.Random(3)
    rows = [features_for(rng) for _ in range(50)]
    terms = learning_terms(PRIOR, FEATURE_NAMES)
    assert any(t.caps and any(c is not None for c in t.caps) for t in terms)  # caps exercised
    raw = np.array([[getattr(f, name) for name in FEATURE_NAMES] for f in rows], dtype=float)
    matrix = term_matrix(terms, raw, FEATURE_NAMES)
    expected = [[TermSpec.value(t, f.as_dict()) for t in terms] for f in rows]
    assert np.allclose(matrix, expected)


def test_vectorised_policy_routes_as_policies_decide(tmp_path: Path) -> None:
    policy: Policy = parse_policy(policy_yaml(tmp_path, exploration=0.0).read_text())
    rng = random.Random(4)
    rows = [features_for(rng) for _ in range(200)]
    incumbent = ArtifactPolicy(PRIOR, policy.classifier.threshold)
    raw = np.array([[getattr(f, n) for n in incumbent.feature_names] for f in rows], dtype=float)
    vectorised = incumbent.actions(raw)
    routed = [decide(policy, PRIOR, f).route == "rlm" for f in rows]
    assert vectorised.tolist() == [int(r) for r in routed]
    assert 0 < sum(routed) < len(rows)  # both routes occur, so the comparison means something


# ── estimators ──


def test_ips_and_dr_intervals_cover_a_known_policy_value() -> None:
    """Logged bandit data with a known truth: both estimates' intervals contain it."""
    from rlm_router.policies.learning.dataset import LoggedData

    rng = np.random.default_rng(0)
    n = 4000
    x = rng.uniform(0, 1, size=(n, 1))
    mean = np.stack([0.8 - 0.6 * x[:, 0], 0.3 + 0.5 * x[:, 0]], axis=1)  # llm, rlm
    greedy = (x[:, 0] > 0.2).astype(np.int64)  # logging policy: rlm above 0.2
    explore = rng.random(n) < 0.1
    action = np.where(explore, 1 - greedy, greedy)
    utility = mean[np.arange(n), action] + rng.normal(0, 0.1, n)
    data = LoggedData(
        feature_names=("x",),
        features=x,
        action=action,
        propensity=np.where(explore, 0.1, 0.9),
        utility=utility,
        forced=np.zeros(n, dtype=bool),
        exploration=explore,
        decision_ids=tuple(str(i) for i in range(n)),
    )
    target = (x[:, 0] > 0.5).astype(np.int64)  # the best policy; true value known
    truth = float(np.mean(mean[np.arange(n), target]))
    for estimator in ("ips", "dr"):
        q_hat = mean if estimator == "dr" else None
        gamma = rewards(data, q_hat, estimator)
        c = compare(
            policy_rewards(gamma, target),
            policy_rewards(gamma, greedy),
            estimator=estimator,
            disagreements=int((target != greedy).sum()),
            resamples=500,
        )
        assert c.new_value.lower <= truth <= c.new_value.upper, (estimator, c.new_value, truth)
        true_gain = truth - float(np.mean(mean[np.arange(n), greedy]))
        assert c.improvement.lower <= true_gain <= c.improvement.upper


# ── training ──


def test_train_promotes_a_better_classifier_that_the_router_then_serves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traces, feedback = write_traffic(
        tmp_path, n=800, exploration=0.3, truth=long_aggregation_needs_rlm
    )
    out = tmp_path / "learned.json"
    code = cli_main(
        [
            "train", "--traces", str(traces), "--feedback", str(feedback),
            "--config", str(policy_yaml(tmp_path, exploration=0.3)), "--out", str(out),
            "--version", "learned-test", "--report-json", str(tmp_path / "report.json"),
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    assert "PROMOTE" in captured.out and "improvement" in captured.out
    assert "cross-fitting" in captured.err and "final fit" in captured.err  # progress bar
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["promoted"] and report["improvement"]["lower"] > 0

    from rlm_router.router import Router

    router = Router.from_config(policy_yaml(tmp_path, exploration=0.0, artifact=str(out)))
    assert router.classifier.version == "learned-test" and router.warning is None
    assert router.classifier.training["parent"] == PRIOR.version
    rng = random.Random(99)
    rows = [features_for(rng) for _ in range(400)]
    policy = router.policy
    right = [
        (decide(policy, router.classifier, f).route == "rlm")
        == (f.agg_cues > 0 and f.n_tokens > 4_000)
        for f in rows
    ]
    assert sum(right) / len(right) > 0.9


def test_train_keeps_the_current_classifier_when_nothing_is_better(tmp_path: Path) -> None:
    records = records_of(tmp_path, n=400, exploration=0.2, truth=routes_equivalent)
    report = train(records, PRIOR, threshold=0.5, config=TrainingConfig(resamples=500))
    assert not report.promoted
    assert report.comparison.improvement.lower <= 0.0
    assert "KEEP CURRENT" in report.render()


def test_cli_refuses_traces_without_exploration_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traces, feedback = write_traffic(
        tmp_path, n=50, exploration=0.0, truth=long_aggregation_needs_rlm
    )
    out = tmp_path / "learned.json"
    code = cli_main(
        ["train", "--traces", str(traces), "--feedback", str(feedback), "--out", str(out)]
    )
    assert code == 2
    assert "exploration.rate > 0" in capsys.readouterr().err
    assert not out.exists()


def test_cli_reports_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["train", "--traces", str(tmp_path / "nope.jsonl"), "--out", "x.json"])
    assert code == 2
    assert "no such file" in capsys.readouterr().err


# ── inner sub-calls through the real request path ──


async def test_inner_sub_calls_never_become_training_rows(
    tmp_path: Path, sim_server: Any, sim_models: None
) -> None:
    from rlm_router.rlm_core import ModelSpec
    from rlm_router.router import Router
    from rlm_router.router.dispatch import Dispatcher, DispatchSettings
    from rlm_router.router.responses import route_of
    from rlm_router.sim.tasks import generate
    from rlm_router.telemetry import read_spans

    traces = tmp_path / "traces.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OtlpJsonLinesSpanExporter(traces)))
    telemetry = Telemetry(tracer_provider=provider, feedback_path=tmp_path / "feedback.jsonl")
    router = Router.from_config(policy_yaml(tmp_path, exploration=0.5))

    def at_sim(model: str) -> ModelSpec:
        return ModelSpec(model=model, api_base=sim_server.base_url, api_key="sim")

    settings = DispatchSettings.from_policy(router.policy)
    settings = dataclasses.replace(
        settings,
        models=dataclasses.replace(
            settings.models,
            direct=at_sim("openai/sim-large"),
            rlm_root=at_sim("openai/sim-large"),
            rlm_sub=at_sim("openai/sim-mini"),
        ),
    )
    dispatcher = Dispatcher(decide=router.decide, settings=settings, telemetry=telemetry)
    tasks = [generate("oolong", n_tokens=20_000, seed=s, kind="count") for s in range(4)]
    for task in tasks:
        response = await dispatcher.acompletion(model="auto", messages=task.messages())
        route = route_of(response)
        assert route is not None
        text = str(response.choices[0].message.content)  # type: ignore[union-attr]
        telemetry.record_feedback(route["decision_id"], task.score(text))
    telemetry.shutdown()

    spans = list(read_spans([traces]))
    inner = [s for s in spans if s.attributes.get("rlm_router.inner") is True]
    assert inner, "expected RLM sub-call spans in the trace"
    records = load_request_records([traces], [tmp_path / "feedback.jsonl"])
    assert len(records) == len(tasks)
    assert any(r.decided_route == "rlm" for r in records)
    data, _ = build_dataset(records, Utility(), FEATURE_NAMES)
    assert len(data) == len(tasks)  # one row per request, however many sub-calls it made
    assert {r.decision_id for r in records} == {
        s.attributes.get("rlm_router.decision.id") for s in spans if s.name == "rlm_router.decide"
    }
