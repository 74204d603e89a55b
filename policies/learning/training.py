"""``train``: from request records to a new classifier, promoted only if it is better.

Steps (each reported):

1. **Data set** (``dataset.build_dataset``): one row per routed request with a propensity and
   a known utility; rows without are counted and left out. No propensity at all, or no
   exploration, is refused (``TrainingDataError``): without them the other route's outcome is
   unobserved and any estimate would be biased.
2. **Split**: a random ``holdout`` share of rows is kept aside. Everything fitted (outcome
   models for the reduction, the classifier) sees the training rows only.
3. **Fit** (``fitting.fit_classifier``): DR cost-sensitive reduction with cross-fitted outcome
   models inside the training rows.
4. **Evaluate**: on the held-out rows, DR (or IPS) values of the new classifier and of the
   current one (its actions recomputed from the logged features), with outcome models fitted
   on the training rows; paired bootstrap interval of the difference. Rows a hard rule
   decided keep their logged route under both policies (rules come before the classifier and
   are not retrained), so they add zero to the difference.
5. **Promote** only if the interval's lower bound of the improvement is above zero: the
   promoted artifact is exactly the classifier whose value was estimated, on rows it was not
   fitted on.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from policies.classifier import LinearClassifier
from policies.learning.dataset import (
    DatasetSummary,
    IntArray,
    LoggedData,
    TrainingDataError,
    build_dataset,
)
from policies.learning.estimators import (
    Comparison,
    Estimator,
    OutcomeModel,
    ProgressFn,
    compare,
    crossfit_outcomes,
    policy_rewards,
    rewards,
)
from policies.learning.fitting import C_GRID, FitResult, LinearScorer, fit_classifier
from policies.learning.terms import (
    ArtifactPolicy,
    TermSpec,
    factor_names,
    learning_terms,
    term_matrix,
    to_artifact,
)
from policies.learning.utility import Utility

if TYPE_CHECKING:
    from telemetry.records import RequestRecord


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """Settings of one training run (all have sound defaults)."""

    utility: Utility = field(default_factory=Utility)
    estimator: Estimator = "dr"
    holdout: float = 0.3
    folds: int = 5
    confidence: float = 0.95
    resamples: int = 2000
    c_grid: tuple[float, ...] = C_GRID
    min_rows: int = 40
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.05 <= self.holdout <= 0.8:
            raise ValueError(f"holdout must be in [0.05, 0.8], got {self.holdout!r}")
        if not 0.5 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0.5, 1), got {self.confidence!r}")
        if self.folds < 2:
            raise ValueError("folds must be >= 2")
        if self.estimator not in ("dr", "ips"):
            raise ValueError(f"estimator must be 'dr' or 'ips', got {self.estimator!r}")


@dataclass(frozen=True)
class TrainingReport:
    """What a training run did and decided; ``artifact`` is the candidate classifier."""

    config: TrainingConfig
    summary: DatasetSummary
    train_rows: int
    holdout_rows: int
    terms: tuple[TermSpec, ...]
    fit: FitResult
    comparison: Comparison
    promoted: bool
    reason: str
    artifact: LinearClassifier
    current_version: str

    @property
    def scorer(self) -> LinearScorer:
        return self.fit.scorer

    def render(self) -> str:
        c = self.comparison
        level = f"{c.confidence:.0%}"
        cv = ", ".join(f"C={k:g}: {v:+.4f}" for k, v in self.fit.cv_values.items())
        lines = [
            f"utility: {self.config.utility.describe()}",
            *self.summary.lines(),
            f"split: {self.train_rows} rows to fit, {self.holdout_rows} held out to evaluate",
            f"classifier: logistic regression on {len(self.terms)} terms, C={self.fit.c:g}"
            + (f" (held-out DR value per C: {cv})" if cv else ""),
            f"offline estimate ({c.estimator.upper()} on {c.rows} held-out rows; the policies "
            f"disagree on {c.disagreements}; {level} paired bootstrap intervals):",
            f"  current {self.current_version}: {c.current_value}",
            f"  new {self.artifact.version}: {c.new_value}",
            f"  improvement: {c.improvement}  (normal approximation "
            f"[{c.improvement_normal.lower:+.4f}, {c.improvement_normal.upper:+.4f}])",
            f"decision: {'PROMOTE' if self.promoted else 'KEEP CURRENT'}: {self.reason}",
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        c = self.comparison

        def interval(i: Any) -> dict[str, float]:
            return {"estimate": i.estimate, "lower": i.lower, "upper": i.upper}

        return {
            "promoted": self.promoted,
            "reason": self.reason,
            "current_version": self.current_version,
            "new_version": self.artifact.version,
            "usable_rows": self.summary.usable,
            "train_rows": self.train_rows,
            "holdout_rows": self.holdout_rows,
            "estimator": c.estimator,
            "confidence": c.confidence,
            "disagreements": c.disagreements,
            "current_value": interval(c.current_value),
            "new_value": interval(c.new_value),
            "improvement": interval(c.improvement),
            "improvement_normal": interval(c.improvement_normal),
            "c": self.fit.c,
        }


def train(
    records: Iterable[RequestRecord],
    current: LinearClassifier,
    *,
    threshold: float,
    config: TrainingConfig | None = None,
    version: str | None = None,
    progress: ProgressFn | None = None,
) -> TrainingReport:
    """Fit a new classifier on ``records`` and decide whether it beats ``current``.

    ``threshold`` is the policy's (the new artifact decides at it as the scorer does);
    ``version`` names the new artifact (default: ``learned-<UTC time>``). Raises
    ``TrainingDataError`` when the records cannot support an unbiased estimate.
    """
    # Loaded first: threadpoolctl limits only the thread pools already loaded.
    import sklearn.ensemble
    import sklearn.linear_model  # noqa: F401
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    # One thread per fit: with scikit-learn's OpenMP pools on a small shared machine a
    # gradient-boosting fit of a few hundred rows took 5 s instead of 0.06 s.
    with threadpool_limits(limits=1):
        return _train(records, current, threshold, config or TrainingConfig(), version, progress)


def _train(
    records: Iterable[RequestRecord],
    current: LinearClassifier,
    threshold: float,
    config: TrainingConfig,
    version: str | None,
    progress: ProgressFn | None,
) -> TrainingReport:
    from router.features import FEATURE_NAMES

    incumbent = ArtifactPolicy(current, threshold)
    terms = learning_terms(current, FEATURE_NAMES)
    raw_names = tuple(dict.fromkeys((*incumbent.feature_names, *factor_names(terms))))
    data, summary = build_dataset(records, config.utility, raw_names)
    if len(data) < config.min_rows:
        raise TrainingDataError(
            f"only {len(data)} usable requests, at least {config.min_rows} are needed; "
            + " ".join(summary.lines())
        )
    fit_raw, held_raw = _split(data, config)
    fit_rows = _design(fit_raw, terms, raw_names)
    held = _design(held_raw, terms, raw_names)

    q_fit = crossfit_outcomes(fit_rows, folds=config.folds, seed=config.seed, progress=progress)
    fit = fit_classifier(
        fit_rows,
        rewards(fit_rows, q_fit, config.estimator),
        c_grid=config.c_grid,
        folds=config.folds,
        seed=config.seed,
        progress=progress,
    )

    q_held = None
    if config.estimator == "dr":
        q_held = OutcomeModel(seed=config.seed).fit(fit_rows).predict(held.features)
    gamma_held = rewards(held, q_held, config.estimator)
    new_actions = _with_rules(held, fit.scorer.actions(held.features))
    current_actions = _with_rules(held, incumbent.actions(held_raw.features))
    if progress is not None:
        progress("bootstrap", 0, 1)
    comparison = compare(
        policy_rewards(gamma_held, new_actions),
        policy_rewards(gamma_held, current_actions),
        estimator=config.estimator,
        disagreements=int((new_actions != current_actions).sum()),
        confidence=config.confidence,
        resamples=config.resamples,
        seed=config.seed,
    )
    if progress is not None:
        progress("bootstrap", 1, 1)
    promoted, reason = _promotion(comparison)
    new_version = version or time.strftime("learned-%Y%m%dT%H%M%SZ", time.gmtime())
    artifact = to_artifact(
        fit.scorer,
        terms,
        threshold=threshold,
        version=new_version,
        training={
            "method": f"{config.estimator}-cost-sensitive logistic regression",
            "parent": current.version,
            "threshold": threshold,
            "utility": {
                "cost_weight": config.utility.cost_weight,
                "latency_weight": config.utility.latency_weight,
                "failure_quality": config.utility.failure_quality,
            },
            "rows": {"fit": len(fit_rows), "holdout": len(held)},
            "offline_improvement": {
                "estimate": comparison.improvement.estimate,
                "lower": comparison.improvement.lower,
                "upper": comparison.improvement.upper,
                "confidence": comparison.confidence,
            },
            "c": fit.c,
        },
    )
    return TrainingReport(
        config=config,
        summary=summary,
        train_rows=len(fit_rows),
        holdout_rows=len(held),
        terms=terms,
        fit=fit,
        comparison=comparison,
        promoted=promoted,
        reason=reason,
        artifact=artifact,
        current_version=current.version,
    )


def _design(
    data: LoggedData, terms: tuple[TermSpec, ...], raw_names: tuple[str, ...]
) -> LoggedData:
    """``data`` with its raw feature columns replaced by the term values."""
    return replace(
        data,
        features=term_matrix(terms, data.features, raw_names),
        feature_names=tuple(t.name for t in terms),
    )


def _split(data: LoggedData, config: TrainingConfig) -> tuple[LoggedData, LoggedData]:
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(data))
    n_held = max(1, round(config.holdout * len(data)))
    return data.take(np.sort(order[n_held:])), data.take(np.sort(order[:n_held]))


def _with_rules(data: LoggedData, actions: IntArray) -> IntArray:
    """A policy's actions with the rule-forced rows kept on their logged route."""
    return np.where(data.forced, data.action, actions).astype(np.int64)


def _promotion(c: Comparison) -> tuple[bool, str]:
    level = f"{c.confidence:.0%}"
    if c.disagreements == 0:
        return False, "the new classifier routes every held-out request as the current one does"
    if c.improvement.lower > 0.0:
        return True, (
            f"the {level} interval of the improvement lies above zero "
            f"(lower bound {c.improvement.lower:+.4f})"
        )
    if c.improvement.estimate <= 0.0:
        return False, f"the estimated improvement is not positive ({c.improvement.estimate:+.4f})"
    return False, (
        f"the estimated improvement {c.improvement.estimate:+.4f} is not significant: the "
        f"{level} interval's lower bound is {c.improvement.lower:+.4f} (collect more traces "
        "or raise exploration)"
    )
