"""``train``: from request records to a new classifier, promoted only if it is better.

Steps (each reported):

1. **Data set** (``dataset.build_dataset``): one row per routed request with a propensity and
   a known utility; rows without are counted and left out. No propensity at all, or no
   exploration, is refused (``TrainingDataError``): without them the other route's outcome is
   unobserved and any estimate would be biased.
2. **Cross-fitted evaluation**: the rows are split into ``folds``. For each fold, a candidate
   classifier (``fitting.fit_classifier``: DR cost-sensitive reduction with outcome models
   cross-fitted inside the other folds) and an outcome model are fitted on the *other* folds,
   and the fold's rows get the candidate's routes and DR rewards. So every row is evaluated
   by models that never saw it; the current classifier's routes are recomputed from the
   logged features. Rows a hard rule decided keep their logged route under both policies
   (rules come before the classifier and are not retrained): they add zero to the difference.
3. **Compare**: mean paired difference of the DR (or IPS) rewards with a bootstrap interval.
   Above ``max_rows`` usable rows, steps 2-3 run on a weighted sample that keeps every
   explored row (``sampling.sample_rows``); all means are weighted, so they estimate the
   full log's values.
4. **Promote** only if (a) the interval's lower bound is above zero and (b) at least
   ``min_support`` rows where the policies disagree actually took the candidate's route (the
   rows that observe what the change does; with fewer, the interval is not trustworthy).
   The promoted artifact is the same procedure fitted on all rows; the estimate is that of
   the procedure, computed on rows each fold's candidate had not seen (as in cross-fitted
   policy learning), so it does not flatter the candidate with its own training data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from rlm_router.policies.classifier import LinearClassifier
from rlm_router.policies.features import FEATURE_NAMES
from rlm_router.policies.learning.dataset import (
    DatasetSummary,
    IntArray,
    LoggedData,
    TrainingDataError,
    build_dataset,
)
from rlm_router.policies.learning.estimators import (
    Comparison,
    Estimator,
    OutcomeModel,
    ProgressFn,
    compare,
    crossfit_outcomes,
    fold_ids,
    policy_rewards,
    rewards,
)
from rlm_router.policies.learning.fitting import C_GRID, FitResult, LinearScorer, fit_classifier
from rlm_router.policies.learning.sampling import DEFAULT_MAX_ROWS, SampleSummary, sample_rows
from rlm_router.policies.learning.terms import (
    ArtifactPolicy,
    TermSpec,
    factor_names,
    learning_terms,
    term_matrix,
    to_artifact,
)
from rlm_router.policies.learning.utility import Utility

if TYPE_CHECKING:
    from rlm_router.telemetry.records import RequestRecord


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """Settings of one training run (all have sound defaults)."""

    utility: Utility = field(default_factory=Utility)
    estimator: Estimator = "dr"
    folds: int = 5
    confidence: float = 0.95
    resamples: int = 2000
    c_grid: tuple[float, ...] = C_GRID
    min_rows: int = 40
    min_support: int = 10
    # Above this many usable rows, fit and evaluate on a weighted sample (``sampling``).
    max_rows: int = DEFAULT_MAX_ROWS
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.5 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0.5, 1), got {self.confidence!r}")
        if not 2 <= self.folds <= 20:
            raise ValueError(f"folds must be in [2, 20], got {self.folds!r}")
        if self.max_rows < 2 * self.min_rows:
            raise ValueError(
                f"max_rows must be at least {2 * self.min_rows}, got {self.max_rows!r}"
            )
        if self.estimator not in ("dr", "ips"):
            raise ValueError(f"estimator must be 'dr' or 'ips', got {self.estimator!r}")


@dataclass(frozen=True)
class TrainingReport:
    """What a training run did and decided; ``artifact`` is the candidate classifier."""

    config: TrainingConfig
    summary: DatasetSummary
    support: int  # disagreement rows that took the candidate's route
    terms: tuple[TermSpec, ...]
    fit: FitResult
    comparison: Comparison
    promoted: bool
    reason: str
    artifact: LinearClassifier
    current_version: str
    sample: SampleSummary | None = None  # set when the rows were a sample of the usable ones

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
            *([self.sample.line()] if self.sample is not None else []),
            f"classifier: logistic regression on {len(self.terms)} terms, C={self.fit.c:g}"
            + (f" (held-out DR value per C: {cv})" if cv else ""),
            f"offline estimate ({c.estimator.upper()}, cross-fitted over "
            f"{self.config.folds} folds of {c.rows} rows; the policies disagree on "
            f"{c.disagreements}, {self.support} of which took the new route; {level} paired "
            "bootstrap intervals):",
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
            "folds": self.config.folds,
            "support": self.support,
            "estimator": c.estimator,
            "confidence": c.confidence,
            "disagreements": c.disagreements,
            "current_value": interval(c.current_value),
            "new_value": interval(c.new_value),
            "improvement": interval(c.improvement),
            "improvement_normal": interval(c.improvement_normal),
            "c": self.fit.c,
            **({"sampled_rows": self.sample.kept} if self.sample is not None else {}),
        }


def train(
    records: Iterable[RequestRecord],
    current: LinearClassifier,
    *,
    threshold: float,
    config: TrainingConfig | None = None,
    version: str | None = None,
    progress: ProgressFn | None = None,
    reported: Callable[[str], float | None] | None = None,
) -> TrainingReport:
    """Fit a new classifier on ``records`` and decide whether it beats ``current``.

    ``threshold`` is the policy's (the new artifact decides at it as the scorer does);
    ``version`` names the new artifact (default: ``learned-<UTC time>``); ``reported`` gives
    feedback that arrives after the records stream (``build_dataset``). Raises
    ``TrainingDataError`` when the records cannot support an unbiased estimate.
    """
    # Loaded first: threadpoolctl limits only the thread pools already loaded.
    import sklearn.ensemble
    import sklearn.linear_model  # noqa: F401
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    # One thread per fit: with scikit-learn's OpenMP pools on a small shared machine a
    # gradient-boosting fit of a few hundred rows took 5 s instead of 0.06 s.
    with threadpool_limits(limits=1):
        return _train(
            records, current, threshold, config or TrainingConfig(), version, progress, reported
        )


def _train(
    records: Iterable[RequestRecord],
    current: LinearClassifier,
    threshold: float,
    config: TrainingConfig,
    version: str | None,
    progress: ProgressFn | None,
    reported: Callable[[str], float | None] | None,
) -> TrainingReport:
    incumbent = ArtifactPolicy(current, threshold)
    terms = learning_terms(current, FEATURE_NAMES)
    raw_names = tuple(dict.fromkeys((*incumbent.feature_names, *factor_names(terms))))
    raw, summary = build_dataset(records, config.utility, raw_names, reported=reported)
    if len(raw) < config.min_rows:
        raise TrainingDataError(
            f"only {len(raw)} usable requests, at least {config.min_rows} are needed; "
            + " ".join(summary.lines())
        )
    raw, sample = sample_rows(raw, config.max_rows, seed=config.seed)
    data = _design(raw, terms, raw_names)

    # Cross-fitted evaluation: each fold is routed and scored by models fitted without it.
    n = len(data)
    folds = min(config.folds, n)
    fold = fold_ids(n, folds, config.seed)
    new_actions = np.zeros(n, dtype=np.int64)
    q_eval = np.zeros((n, 2))
    for k in range(folds):
        held = fold == k
        rest = data.take(~held)
        candidate = _fit_candidate(rest, config, seed=config.seed + 1 + k)
        new_actions[held] = candidate.scorer.actions(data.features[held])
        if config.estimator == "dr":
            q_eval[held] = OutcomeModel(seed=config.seed).fit(rest).predict(data.features[held])
        if progress is not None:
            progress("cross-fitting", k + 1, folds)
    gamma = rewards(data, q_eval if config.estimator == "dr" else None, config.estimator)
    new_actions = _with_rules(data, new_actions)
    current_actions = _with_rules(data, incumbent.actions(raw.features))
    disagree = new_actions != current_actions
    comparison = compare(
        policy_rewards(gamma, new_actions),
        policy_rewards(gamma, current_actions),
        estimator=config.estimator,
        disagreements=int(disagree.sum()),
        confidence=config.confidence,
        resamples=config.resamples,
        seed=config.seed,
        weights=data.weight,
    )
    support = int((disagree & (data.action == new_actions)).sum())
    promoted, reason = _promotion(comparison, support, config.min_support)

    fit = _fit_candidate(data, config, seed=config.seed)
    if progress is not None:
        progress("final fit", 1, 1)
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
            "rows": n,
            **({"sampled_from": sample.rows} if sample is not None else {}),
            "offline_improvement": {
                "estimate": comparison.improvement.estimate,
                "lower": comparison.improvement.lower,
                "upper": comparison.improvement.upper,
                "confidence": comparison.confidence,
                "folds": folds,
                "support": support,
            },
            "c": fit.c,
        },
    )
    return TrainingReport(
        config=config,
        summary=summary,
        support=support,
        terms=terms,
        fit=fit,
        comparison=comparison,
        promoted=promoted,
        reason=reason,
        artifact=artifact,
        current_version=current.version,
        sample=sample,
    )


def _fit_candidate(rows: LoggedData, config: TrainingConfig, *, seed: int) -> FitResult:
    """The DR cost-sensitive classifier on ``rows`` (outcome models cross-fitted inside)."""
    inner = max(2, min(3, config.folds))
    q_hat = crossfit_outcomes(rows, folds=inner, seed=seed)
    return fit_classifier(
        rows,
        rewards(rows, q_hat, config.estimator),
        c_grid=config.c_grid,
        folds=inner,
        seed=seed,
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


def _with_rules(data: LoggedData, actions: IntArray) -> IntArray:
    """A policy's actions with the rule-forced rows kept on their logged route."""
    return np.where(data.forced, data.action, actions).astype(np.int64)


def _promotion(c: Comparison, support: int, min_support: int) -> tuple[bool, str]:
    level = f"{c.confidence:.0%}"
    if c.disagreements == 0:
        return False, "the new classifier routes every request as the current one does"
    if c.improvement.lower > 0.0 and support < min_support:
        return False, (
            f"the estimated improvement {c.improvement.estimate:+.4f} rests on only {support} "
            f"requests that took the new route where the policies disagree (need "
            f"{min_support}); collect more traces or raise exploration"
        )
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
