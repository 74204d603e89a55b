"""Learning benchmark: does retraining from the router's own traces fix a wrong prior?

``python -m benchmarks.learning_bench [--requests 2000] [--retrain-every 250] [--out out]``

The user's direct model (``sim-user-direct``) is priced like ``sim-large`` but reads long
prompts much worse than the shipped prior assumes: its recall half-load is ``--half-load``
tokens (``sim-large``: 100,000), so aggregation over even a few thousand tokens and needle
lookups over tens of thousands go wrong on the direct route. The prior, fitted on published
GPT-5 figures, keeps those requests direct.

What runs, all through the real code paths (litellm's client against the simulated provider
on loopback, ``time_scale`` 0):

1. An **evaluation set**: every task is served on *both* routes (a policy override rule
   forces the route), so each task's utility on each route is known. The **oracle** takes the
   better route per task; a policy's true value is the mean utility of the routes it picks.
2. A **stream** of requests routed by ``Router`` + ``Dispatcher`` with the policy's
   exploration rate, telemetry writing OTLP-JSON lines to a file, and each answer's score
   reported as feedback (``Telemetry.record_feedback``). Every ``--retrain-every`` requests,
   ``rlm-router train`` runs on all traces so far (in-process, the real CLI); when it
   promotes, the policy file points at the new artifact and the router reloads it.
3. For each checkpoint: the true value of the serving classifier on the evaluation set, its
   gap to the oracle, and the share of the prior's gap closed; the offline estimate and
   interval ``train`` reported; and a fixed token-length threshold rule for reference.

Utility (the workload's own): ``quality − cost_weight · cost_usd``; latency is left out
because with ``time_scale`` 0 it measures this host's CPU, not the provider.
Targets: ≥80% of the prior's gap closed within 2,000 requests; no promotion whose offline
improvement interval is not above zero.

Two references bound what any feature-based policy can do: the per-request oracle also
profits from per-task luck (which route happened to read a given task right), so the table
adds the *full-information fit* (the same classifier class fitted on the evaluation set with
both outcomes known, in-sample) and the best token threshold in hindsight. The opposite
scenario, ``--half-load 1000000`` (the user's direct model reads long prompts far *better*
than the prior assumes), has a small gap that is mostly such luck: there the
full-information fit closes well under 80%, so the target is out of reach by construction.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rlm_router.sim import SIM_MODELS, SimConfig, SimServer, register_sim_models
from rlm_router.sim.tasks import Task, generate

if TYPE_CHECKING:
    from rlm_router.policies import LinearClassifier
    from rlm_router.router import Router
    from rlm_router.router.dispatch import Dispatcher
    from rlm_router.telemetry import Telemetry

USER_DIRECT = "sim-user-direct"
FORCE_LLM = "force-llm"
FORCE_RLM = "force-rlm"
# Family mix of the user's traffic: lookups (niah, qa), aggregations (oolong, oolong_pairs)
# and short chat.
MIX: tuple[tuple[str, float], ...] = (
    ("niah", 0.30),
    ("qa", 0.15),
    ("oolong", 0.25),
    ("oolong_pairs", 0.20),
    ("chat", 0.10),
)
EXIT_PROMOTED = 0


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """One run of the learning benchmark."""

    requests: int = 2000
    retrain_every: int = 250
    eval_tasks: int = 200
    exploration_rate: float = 0.1
    half_load: float = 10_000.0  # the user's direct model's recall half-load (tokens)
    min_tokens: int = 4_000
    max_tokens: int = 100_000
    threshold_tokens: int = 32_000  # the fixed token-length rule: RLM at or above this
    cost_weight: float = 0.25
    concurrency: int = 4
    seed: int = 0
    out_dir: Path = Path("out")


@dataclass
class EvalItem:
    """One evaluation task with its utility on each route."""

    task: Task
    body: dict[str, Any]
    n_tokens: int = 0
    features: dict[str, float] = field(default_factory=dict)
    utility: dict[str, float] = field(default_factory=dict)
    quality: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """What the JSON keeps of it: no request text, as in the traces."""
        return {
            "family": self.task.family,
            "kind": self.task.kind,
            "n_tokens": self.n_tokens,
            "utility": self.utility,
            "quality": self.quality,
            "features": self.features,
        }


@dataclass
class Checkpoint:
    requests: int
    exit_code: int | None  # of `rlm-router train` (None: the prior, before any training)
    promoted: bool
    offline: dict[str, Any] | None
    serving_version: str
    true_value: float
    gap: float
    gap_closed: float
    escalation_rate: float
    train_s: float = 0.0


@dataclass
class BenchResult:
    config: dict[str, Any]
    oracle_value: float
    prior_value: float
    threshold_rule_value: float
    best_threshold_tokens: int
    best_threshold_value: float
    always_llm_value: float
    always_rlm_value: float
    checkpoints: list[Checkpoint]
    stream_seconds: float
    eval_seconds: float
    stream_failures: int
    exploration_share: float
    by_family: dict[str, dict[str, float]] = field(default_factory=dict)
    full_information_value: float = math.nan
    eval_set: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final(self) -> Checkpoint:
        return self.checkpoints[-1]

    @property
    def prior_gap(self) -> float:
        return self.oracle_value - self.prior_value

    def bad_promotions(self) -> list[Checkpoint]:
        """Promotions whose offline interval was not above zero (must be none)."""
        return [
            c
            for c in self.checkpoints
            if c.promoted and (c.offline is None or c.offline["improvement"]["lower"] <= 0.0)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "oracle_value": self.oracle_value,
            "prior_value": self.prior_value,
            "prior_gap": self.prior_gap,
            "threshold_rule": {
                "tokens": self.config["threshold_tokens"],
                "value": self.threshold_rule_value,
                "gap": self.oracle_value - self.threshold_rule_value,
            },
            "best_threshold_in_hindsight": {
                "tokens": self.best_threshold_tokens,
                "value": self.best_threshold_value,
            },
            "always_llm_value": self.always_llm_value,
            "always_rlm_value": self.always_rlm_value,
            "checkpoints": [dataclasses.asdict(c) for c in self.checkpoints],
            "final_gap_closed": self.final.gap_closed,
            "bad_promotions": len(self.bad_promotions()),
            "stream_seconds": self.stream_seconds,
            "eval_seconds": self.eval_seconds,
            "stream_failures": self.stream_failures,
            "exploration_share": self.exploration_share,
            "by_family": self.by_family,
            "full_information_value": self.full_information_value,
            "eval_set": self.eval_set,
        }

    def table(self) -> str:
        c = self.config
        lines = [
            f"learning benchmark: {c['requests']} requests, retrain every "
            f"{c['retrain_every']}, exploration {c['exploration_rate']:g}, direct model "
            f"recall half-load {c['half_load']:,.0f} tokens, {c['eval_tasks']} evaluation tasks",
            f"utility = quality - {c['cost_weight']:g} * cost_usd  "
            f"(oracle {self.oracle_value:.4f}, always-llm {self.always_llm_value:.4f}, "
            f"always-rlm {self.always_rlm_value:.4f})",
            "",
            "| policy | requests | train exit | offline improvement [95% CI] | "
            "true value | gap to oracle | prior gap closed | escalation |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for cp in self.checkpoints:
            off = cp.offline
            offline = (
                f"{off['improvement']['estimate']:+.4f} "
                f"[{off['improvement']['lower']:+.4f}, {off['improvement']['upper']:+.4f}]"
                if off
                else "-"
            )
            code = "-" if cp.exit_code is None else str(cp.exit_code)
            if cp.promoted:
                code += " promoted"
            lines.append(
                f"| {cp.serving_version} | {cp.requests} | {code} | {offline} | "
                f"{cp.true_value:.4f} | {cp.gap:.4f} | {cp.gap_closed:.0%} | "
                f"{cp.escalation_rate:.0%} |"
            )
        threshold_gap = self.oracle_value - self.threshold_rule_value
        met = "MET" if self.final.gap_closed >= 0.8 else "NOT MET"
        full_gap = self.oracle_value - self.full_information_value
        lines += [
            f"| full-information fit (in-sample reference) | - | - | - | "
            f"{self.full_information_value:.4f} | {full_gap:.4f} | "
            f"{_closed(self.prior_gap, full_gap):.0%} | - |",
            f"| token rule >= {c['threshold_tokens']:,} | - | - | - | "
            f"{self.threshold_rule_value:.4f} | {threshold_gap:.4f} | "
            f"{_closed(self.prior_gap, threshold_gap):.0%} | - |",
            f"| best token rule in hindsight (>= {self.best_threshold_tokens:,}) | - | - | - | "
            f"{self.best_threshold_value:.4f} | "
            f"{self.oracle_value - self.best_threshold_value:.4f} | "
            f"{_closed(self.prior_gap, self.oracle_value - self.best_threshold_value):.0%} | - |",
            "",
            "| family | tasks | llm | rlm | oracle (rlm share) | prior | final (rlm share) |",
            "|---|---|---|---|---|---|---|",
            *(
                f"| {name} | {f['tasks']:.0f} | {f['llm']:.4f} | {f['rlm']:.4f} | "
                f"{f['oracle']:.4f} ({f['oracle_rlm_share']:.0%}) | {f['prior']:.4f} | "
                f"{f['final']:.4f} ({f['final_rlm_share']:.0%}) |"
                for name, f in self.by_family.items()
            ),
            "",
            f"target: >= 80% of the prior's gap closed within {c['requests']} requests: "
            f"{self.final.gap_closed:.0%} -> {met}",
            f"promotions without an offline interval above zero: {len(self.bad_promotions())} "
            f"(target 0); stream {self.stream_seconds:.0f} s, evaluation set "
            f"{self.eval_seconds:.0f} s, {self.stream_failures} failed requests, "
            f"{self.exploration_share:.1%} explored",
        ]
        return "\n".join(lines)


def _closed(prior_gap: float, gap: float) -> float:
    return (prior_gap - gap) / prior_gap if prior_gap > 0 else 0.0


# ── workload ──


def workload_task(rng: random.Random, config: BenchConfig, seed: int) -> Task:
    """One request of the user's traffic: a family from ``MIX``, a log-uniform length."""
    family = rng.choices([f for f, _ in MIX], weights=[w for _, w in MIX])[0]
    log_lo, log_hi = math.log(config.min_tokens), math.log(config.max_tokens)
    n_tokens = int(math.exp(rng.uniform(log_lo, log_hi)))
    return generate(family, n_tokens=n_tokens, seed=seed)


def sim_models(config: BenchConfig) -> dict[str, Any]:
    """The simulator's models plus the user's direct model."""
    models = dict(SIM_MODELS)
    models[USER_DIRECT] = dataclasses.replace(
        SIM_MODELS["sim-large"], name=USER_DIRECT, recall_half_load=config.half_load
    )
    return models


def register_user_model(config: BenchConfig) -> None:
    import litellm

    register_sim_models()
    model = sim_models(config)[USER_DIRECT]
    litellm.register_model({f"openai/{USER_DIRECT}": model.litellm_info()})


def write_policy(path: Path, *, artifact: str, config: BenchConfig) -> None:
    """The user's policy: their direct model, exploration on, two overrides for evaluation."""
    policy = {
        "version": 1,
        "name": "learning-bench",
        "models": {
            "direct": {"model": f"openai/{USER_DIRECT}", "context_window": 272_000},
            "rlm_root": {"model": "openai/sim-large", "context_window": 272_000},
            "rlm_sub": {"model": "openai/sim-mini", "context_window": 272_000},
        },
        "rules": {
            "overrides": [
                {"model": FORCE_LLM, "route": "llm"},
                {"model": FORCE_RLM, "route": "rlm"},
            ]
        },
        "classifier": {"artifact": artifact, "threshold": 0.5},
        "exploration": {"rate": config.exploration_rate, "seed": config.seed},
    }
    path.write_text(yaml.safe_dump(policy, sort_keys=False), encoding="utf-8")


def dispatcher(router: Router, base_url: str, telemetry: Telemetry | None) -> Dispatcher:
    """A ``Dispatcher`` for ``router`` whose models are served by the simulator."""
    from rlm_router.rlm_core import ModelSpec, RetryPolicy
    from rlm_router.router.dispatch import Dispatcher, DispatchSettings

    models = router.policy.models

    def spec(model: str) -> ModelSpec:
        return ModelSpec(model=model, api_base=base_url, api_key="sim")

    settings = DispatchSettings.from_policy(router.policy)
    settings = dataclasses.replace(
        settings,
        models=dataclasses.replace(
            settings.models,
            direct=spec(models.direct.model),
            rlm_root=spec(models.rlm_root.model),
            rlm_sub=spec(models.rlm_sub.model),
        ),
        retry=RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.1),
    )
    return Dispatcher(
        decide=router.decide,
        decide_parsed=router.decide_parsed,
        settings=settings,
        telemetry=telemetry,
    )


async def serve(dispatch: Dispatcher, body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(answer text, decision id); (None, id or None) when the request failed."""
    from rlm_router.router.responses import route_of

    try:
        response = await dispatch.acompletion(**body)
    except Exception as exc:
        route = getattr(exc, "route", None)
        return None, getattr(route, "decision_id", None)
    info = route_of(response) or {}
    text = response.choices[0].message.content  # type: ignore[union-attr]
    return (str(text or ""), info.get("decision_id"))


def utility(config: BenchConfig, quality: float, cost_usd: float) -> float:
    return quality - config.cost_weight * cost_usd


# ── evaluation set ──


async def evaluate_both_routes(
    config: BenchConfig, router: Router, base_url: str
) -> list[EvalItem]:
    """Every evaluation task served on both routes (no telemetry: not training data)."""
    dispatch = dispatcher(router, base_url, None)
    rng = random.Random(config.seed + 10_000)
    items = [
        EvalItem(task=task, body={"model": "auto", "messages": task.messages()})
        for task in (
            workload_task(rng, config, seed=1_000_000 + i) for i in range(config.eval_tasks)
        )
    ]
    semaphore = asyncio.Semaphore(config.concurrency)

    async def run(item: EvalItem, route: str) -> None:
        async with semaphore:
            model = FORCE_RLM if route == "rlm" else FORCE_LLM
            try:
                response = await dispatch.acompletion(**{**item.body, "model": model})
                text = str(response.choices[0].message.content or "")  # type: ignore[union-attr]
                # After a fallback the answer and the cost of both attempts are still this
                # route's outcome, as they are for a routed request.
                hidden = getattr(response, "_hidden_params", {}) or {}
                cost = float(hidden.get("response_cost") or 0.0)
            except Exception:
                text, cost = "", 0.0
            quality = item.task.score(text)
            item.quality[route] = quality
            item.utility[route] = utility(config, quality, cost)

    await asyncio.gather(*(run(item, route) for item in items for route in ("llm", "rlm")))
    for item in items:
        features = router.decide({**item.body, "model": FORCE_LLM}).features
        item.n_tokens = features.n_tokens
        item.features = features.as_dict()
    return items


def greedy_router(router: Router, classifier: LinearClassifier) -> Router:
    """``router``'s policy with ``classifier`` and no exploration (what it serves greedily)."""
    from rlm_router.policies import Exploration
    from rlm_router.router import Router as RouterType

    policy = dataclasses.replace(router.policy, exploration=Exploration(rate=0.0))
    return RouterType(policy, classifier, windows=router.windows)


def true_value(items: Sequence[EvalItem], router: Router) -> tuple[float, float]:
    """(mean utility of the routes ``router`` picks, share escalated) on the evaluation set."""
    total, escalated = 0.0, 0
    for item in items:
        route = router.decide(item.body).route
        total += item.utility[route]
        escalated += route == "rlm"
    return total / len(items), escalated / len(items)


def family_breakdown(
    items: Sequence[EvalItem], prior: Router, final: Router
) -> dict[str, dict[str, float]]:
    """Per task family: mean utility of each route, the oracle, the prior and the final policy."""
    out: dict[str, dict[str, float]] = {}
    for family in sorted({i.task.family for i in items}):
        group = [i for i in items if i.task.family == family]
        n = len(group)
        out[family] = {
            "tasks": n,
            "llm": sum(i.utility["llm"] for i in group) / n,
            "rlm": sum(i.utility["rlm"] for i in group) / n,
            "oracle": sum(max(i.utility.values()) for i in group) / n,
            "oracle_rlm_share": sum(i.utility["rlm"] > i.utility["llm"] for i in group) / n,
            "prior": true_value(group, prior)[0],
            "final": true_value(group, final)[0],
            "final_rlm_share": true_value(group, final)[1],
        }
    return out


def full_information_value(items: Sequence[EvalItem], router: Router) -> float:
    """The value of the classifier fitted on the evaluation set itself with both outcomes known.

    An in-sample upper reference for what this classifier class (the artifact's terms,
    logistic regression) can reach on this workload; the per-request oracle also profits
    from per-task luck no feature can predict.
    """
    import numpy as np

    from rlm_router.policies.learning.dataset import LoggedData
    from rlm_router.policies.learning.fitting import fit_classifier
    from rlm_router.policies.learning.terms import factor_names, learning_terms, term_matrix
    from rlm_router.router.features import FEATURE_NAMES

    terms = learning_terms(router.classifier, FEATURE_NAMES)
    names = factor_names(terms)
    raw = np.array([[i.features[name] for name in names] for i in items], dtype=float)
    gamma = np.array([[i.utility["llm"], i.utility["rlm"]] for i in items])
    n = len(items)
    data = LoggedData(
        feature_names=tuple(t.name for t in terms),
        features=term_matrix(terms, raw, names),
        action=np.zeros(n, dtype=np.int64),
        propensity=np.ones(n),
        utility=gamma[:, 0],
        forced=np.zeros(n, dtype=bool),
        exploration=np.zeros(n, dtype=bool),
        decision_ids=tuple(str(k) for k in range(n)),
    )
    actions = fit_classifier(data, gamma).scorer.actions(data.features)
    return float(gamma[np.arange(n), actions].mean())


def token_rule_value(items: Sequence[EvalItem], threshold: int) -> float:
    return sum(
        item.utility["rlm" if item.n_tokens >= threshold else "llm"] for item in items
    ) / len(items)


# ── the run ──


def baselines(items: Sequence[EvalItem]) -> tuple[float, dict[str, float], int]:
    """(oracle value, value of always taking each route, the best token-count threshold)."""
    oracle = sum(max(i.utility.values()) for i in items) / len(items)
    always = {route: sum(i.utility[route] for i in items) / len(items) for route in ("llm", "rlm")}
    thresholds = sorted({i.n_tokens for i in items} | {10**9})
    best_threshold = max(thresholds, key=lambda t: token_rule_value(items, t))
    return oracle, always, best_threshold


async def train_round(
    config: BenchConfig,
    work_dir: Path,
    round_index: int,
    done: int,
    *,
    artifact: Path,
    policy_path: Path,
) -> tuple[int, dict[str, Any] | None, float]:
    """One ``rlm-router train`` on the traces so far: (exit code, its JSON report, seconds)."""
    from rlm_router.router.cli import main as cli_main

    traces = work_dir / "traces.jsonl"
    feedback = work_dir / "feedback.jsonl"
    report_json = work_dir / f"train-{round_index}.json"
    out = io.StringIO()
    train_started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = await asyncio.to_thread(
            cli_main,
            [
                "train",
                "--traces",
                str(traces),
                "--feedback",
                str(feedback),
                "--config",
                str(policy_path),
                "--out",
                str(artifact),
                "--report-json",
                str(report_json),
                "--cost-weight",
                str(config.cost_weight),
                "--latency-weight",
                "0",
                "--version",
                f"learned-{round_index}-at-{done}",
                "--seed",
                str(config.seed + round_index),
            ],
        )
    train_s = time.perf_counter() - train_started
    (work_dir / f"train-{round_index}.txt").write_text(out.getvalue())
    offline = json.loads(report_json.read_text()) if report_json.exists() else None
    return code, offline, train_s


async def run_bench(config: BenchConfig, work_dir: Path) -> BenchResult:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from rlm_router.router import Router
    from rlm_router.telemetry import OtlpJsonLinesSpanExporter, Telemetry

    register_user_model(config)
    traces = work_dir / "traces.jsonl"
    feedback = work_dir / "feedback.jsonl"
    policy_path = work_dir / "policy.yaml"
    write_policy(policy_path, artifact="default", config=config)
    config_dict = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(config).items()}

    async with SimServer(
        SimConfig(seed=config.seed, time_scale=0.0, models=sim_models(config))
    ) as sim:
        router = Router.from_config(policy_path, seed=config.seed)
        started = time.perf_counter()
        items = await evaluate_both_routes(config, router, sim.base_url)
        eval_seconds = time.perf_counter() - started
        oracle, always, best_threshold = baselines(items)

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OtlpJsonLinesSpanExporter(traces)))
        telemetry = Telemetry(
            tracer_provider=provider, capture_content=False, feedback_path=feedback
        )
        dispatch = dispatcher(router, sim.base_url, telemetry)

        prior_router = greedy_router(router, router.classifier)
        prior_value, prior_escalation = true_value(items, prior_router)
        prior_gap = oracle - prior_value
        checkpoints = [
            Checkpoint(
                requests=0,
                exit_code=None,
                promoted=False,
                offline=None,
                serving_version=router.classifier.version,
                true_value=prior_value,
                gap=prior_gap,
                gap_closed=0.0,
                escalation_rate=prior_escalation,
            )
        ]
        rng = random.Random(config.seed)
        semaphore = asyncio.Semaphore(config.concurrency)
        failures = 0
        explored = 0

        async def one(i: int) -> None:
            nonlocal failures
            task = workload_task(rng, config, seed=i)
            async with semaphore:
                text, decision_id = await serve(
                    dispatch, {"model": "auto", "messages": task.messages()}
                )
            if text is None:
                failures += 1  # the trace carries the error: an automatic outcome signal
                return
            if decision_id is not None:
                telemetry.record_feedback(decision_id, task.score(text), source="benchmark")

        stream_started = time.perf_counter()
        done = 0
        round_index = 0
        while done < config.requests:
            batch = min(config.retrain_every, config.requests - done)
            await asyncio.gather(*(one(done + k) for k in range(batch)))
            done += batch
            round_index += 1
            telemetry.force_flush()
            artifact = work_dir / f"classifier-{round_index}.json"
            code, offline, train_s = await train_round(
                config, work_dir, round_index, done, artifact=artifact, policy_path=policy_path
            )
            promoted = code == EXIT_PROMOTED
            if promoted:
                write_policy(policy_path, artifact=str(artifact.resolve()), config=config)
                if not router.reload(policy_path):
                    raise RuntimeError(f"reload failed: {router.warning}")
                dispatch = dispatcher(router, sim.base_url, telemetry)
            value, escalation = true_value(items, greedy_router(router, router.classifier))
            checkpoints.append(
                Checkpoint(
                    requests=done,
                    exit_code=code,
                    promoted=promoted,
                    offline=offline,
                    serving_version=router.classifier.version,
                    true_value=value,
                    gap=oracle - value,
                    gap_closed=_closed(prior_gap, oracle - value),
                    escalation_rate=escalation,
                    train_s=train_s,
                )
            )
        stream_seconds = time.perf_counter() - stream_started
        telemetry.shutdown()
        by_family = family_breakdown(items, prior_router, greedy_router(router, router.classifier))
        full_information = full_information_value(items, router)

    from rlm_router.telemetry import load_request_records

    records = (
        load_request_records([traces], [p for p in (feedback,) if p.exists()])
        if traces.exists()
        else []
    )
    explored = sum(r.exploration for r in records)
    return BenchResult(
        config=config_dict,
        oracle_value=oracle,
        prior_value=prior_value,
        threshold_rule_value=token_rule_value(items, config.threshold_tokens),
        best_threshold_tokens=best_threshold,
        best_threshold_value=token_rule_value(items, best_threshold),
        always_llm_value=always["llm"],
        always_rlm_value=always["rlm"],
        checkpoints=checkpoints,
        stream_seconds=stream_seconds,
        eval_seconds=eval_seconds,
        stream_failures=failures,
        exploration_share=explored / max(1, len(records)),
        by_family=by_family,
        full_information_value=full_information,
        eval_set=[item.to_dict() for item in items],
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = BenchConfig()
    parser.add_argument("--requests", type=int, default=defaults.requests)
    parser.add_argument("--retrain-every", type=int, default=defaults.retrain_every)
    parser.add_argument("--eval-tasks", type=int, default=defaults.eval_tasks)
    parser.add_argument("--exploration-rate", type=float, default=defaults.exploration_rate)
    parser.add_argument("--half-load", type=float, default=defaults.half_load)
    parser.add_argument("--min-tokens", type=int, default=defaults.min_tokens)
    parser.add_argument("--max-tokens", type=int, default=defaults.max_tokens)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", type=Path, default=defaults.out_dir)
    args = parser.parse_args(argv)
    config = BenchConfig(
        requests=args.requests,
        retrain_every=args.retrain_every,
        eval_tasks=args.eval_tasks,
        exploration_rate=args.exploration_rate,
        half_load=args.half_load,
        min_tokens=args.min_tokens,
        max_tokens=args.max_tokens,
        concurrency=args.concurrency,
        seed=args.seed,
        out_dir=args.out,
    )
    work_dir = args.out / "learning_bench"
    work_dir.mkdir(parents=True, exist_ok=True)
    for stale in work_dir.glob("*"):
        stale.unlink()
    result = asyncio.run(run_bench(config, work_dir))
    (args.out / "learning_bench.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    table = result.table()
    (args.out / "learning_bench.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
