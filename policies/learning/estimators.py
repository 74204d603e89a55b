"""Counterfactual estimates from logged data: outcome models, DR/IPS rewards, intervals.

Each logged request shows the utility of one route only. For a row ``i`` with action
``a_i`` taken with propensity ``p_i`` and utility ``u_i``, the doubly-robust (DR) estimate of
the utility route ``a`` would have had is::

    Γ_i(a) = q̂(x_i, a) + 1[a = a_i] / p_i · (u_i − q̂(x_i, a_i))

where ``q̂`` is an outcome model (``OutcomeModel``: one regressor per route). It is unbiased
when either the propensities are right (they are logged by the router) or ``q̂`` is; ``q̂``
only reduces variance. ``q̂ = 0`` gives plain inverse propensity scoring (IPS). A
deterministic policy ``π`` has the estimated value ``mean_i Γ_i(π(x_i))``; two policies are
compared row by row (``D_i = Γ_i(π_new(x_i)) − Γ_i(π_cur(x_i))``, zero where they agree), and
a paired bootstrap over rows gives the interval of the mean difference.

``q̂`` must not have seen the rows it predicts for (``crossfit_outcomes``), or its errors
would correlate with the residuals and bias the estimate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rlm_router.policies.learning.dataset import LLM, RLM, FloatArray, IntArray, LoggedData

Estimator = Literal["dr", "ips"]
ProgressFn = Callable[[str, int, int], None]

# Rows below this per route: the route's outcome model is its (weighted) mean utility.
MIN_ROWS_FOR_REGRESSOR = 30
# Importance weights for fitting outcome models are capped here (variance control only; the
# DR correction term keeps the full weight, so the estimate stays unbiased).
FIT_WEIGHT_CAP = 50.0


class OutcomeModel:
    """q̂(x, a): the expected utility of each route given the features."""

    def __init__(self, *, seed: int = 0) -> None:
        self._seed = seed
        self._models: list[Any] = [None, None]
        self._means = [0.0, 0.0]

    def fit(self, data: LoggedData) -> OutcomeModel:
        for route in (LLM, RLM):
            rows = data.action == route
            if not rows.any():
                self._means[route] = float(np.mean(data.utility)) if len(data) else 0.0
                continue
            # Weighted by 1/p so the fit covers the whole feature space, not only where the
            # logging policy preferred this route.
            weight = np.minimum(1.0 / data.propensity[rows], FIT_WEIGHT_CAP)
            if data.weight is not None:
                weight = weight * data.weight[rows]
            self._means[route] = float(np.average(data.utility[rows], weights=weight))
            if rows.sum() < MIN_ROWS_FOR_REGRESSOR:
                continue
            from sklearn.ensemble import HistGradientBoostingRegressor

            model = HistGradientBoostingRegressor(
                max_iter=100,
                learning_rate=0.1,
                max_leaf_nodes=8,
                min_samples_leaf=15,
                l2_regularization=1.0,
                random_state=self._seed,
            )
            model.fit(data.features[rows], data.utility[rows], sample_weight=weight)
            self._models[route] = model
        return self

    def predict(self, features: FloatArray) -> FloatArray:
        """(n, 2) expected utilities: column 0 the direct route, column 1 the RLM route."""
        out = np.empty((len(features), 2), dtype=np.float64)
        for route in (LLM, RLM):
            model = self._models[route]
            if model is None or len(features) == 0:
                out[:, route] = self._means[route]
            else:
                out[:, route] = model.predict(features)
        return out


def fold_ids(n: int, folds: int, seed: int) -> IntArray:
    """A random fold number in [0, folds) for each of ``n`` rows, as balanced as possible."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n, dtype=np.int64) % max(1, folds)
    rng.shuffle(ids)
    return ids


def crossfit_outcomes(
    data: LoggedData,
    *,
    folds: int = 5,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> FloatArray:
    """q̂ for every row from an outcome model fitted on the other folds."""
    out = np.zeros((len(data), 2), dtype=np.float64)
    if len(data) == 0:
        return out
    folds = max(2, min(folds, len(data)))
    ids = fold_ids(len(data), folds, seed)
    for k in range(folds):
        held = ids == k
        model = OutcomeModel(seed=seed).fit(data.take(~held))
        out[held] = model.predict(data.features[held])
        if progress is not None:
            progress("outcome models", k + 1, folds)
    return out


def rewards(data: LoggedData, q_hat: FloatArray | None, estimator: Estimator = "dr") -> FloatArray:
    """Γ: (n, 2) per-row estimates of each route's utility (see the module docstring)."""
    n = len(data)
    base = np.zeros((n, 2)) if estimator == "ips" or q_hat is None else q_hat.copy()
    rows = np.arange(n)
    residual = data.utility - base[rows, data.action]
    base[rows, data.action] += residual / data.propensity
    return base


def policy_rewards(gamma: FloatArray, actions: IntArray) -> FloatArray:
    """Γ_i(π(x_i)) for each row, given the policy's actions."""
    return gamma[np.arange(len(actions)), actions]


@dataclass(frozen=True)
class Interval:
    """A point estimate with a (lower, upper) confidence interval."""

    estimate: float
    lower: float
    upper: float

    def __str__(self) -> str:
        return f"{self.estimate:+.4f} [{self.lower:+.4f}, {self.upper:+.4f}]"


@dataclass(frozen=True)
class Comparison:
    """Estimated values of a new and the current policy on the same rows, and their difference."""

    estimator: Estimator
    rows: int
    disagreements: int  # rows where the two policies choose different routes
    new_value: Interval
    current_value: Interval
    improvement: Interval  # bootstrap percentile interval of the mean paired difference
    improvement_normal: Interval  # the same from the normal approximation
    confidence: float


def compare(
    new_rewards: FloatArray,
    current_rewards: FloatArray,
    *,
    estimator: Estimator,
    disagreements: int,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    weights: FloatArray | None = None,
) -> Comparison:
    """Paired comparison of two policies' per-row rewards (``policy_rewards``).

    ``weights``: how many requests each row stands for, when the rows are a sample; the
    values are then weighted means, and the bootstrap resamples rows with their weights.
    """
    n = len(new_rewards)
    if n == 0:
        raise ValueError("no rows to compare on")
    if weights is not None:
        return _compare_weighted(
            new_rewards, current_rewards, weights, estimator=estimator,
            disagreements=disagreements, confidence=confidence, resamples=resamples, seed=seed,
        )  # fmt: skip
    diff = new_rewards - current_rewards
    rng = np.random.default_rng(seed)
    alpha = (1.0 - confidence) / 2.0
    stacked = np.stack([new_rewards, current_rewards, diff])  # (3, n)
    # Resample in blocks so memory stays bounded for large logs.
    means = np.empty((3, resamples))
    block = max(1, 2_000_000 // n)
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        index = rng.integers(0, n, size=(stop - start, n))
        means[:, start:stop] = stacked[:, index].mean(axis=2)
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha], axis=1)

    def interval(k: int) -> Interval:
        return Interval(float(stacked[k].mean()), float(lo[k]), float(hi[k]))

    z = _normal_quantile(1.0 - alpha)
    se = float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    mean = float(diff.mean())
    return Comparison(
        estimator=estimator,
        rows=n,
        disagreements=disagreements,
        new_value=interval(0),
        current_value=interval(1),
        improvement=interval(2),
        improvement_normal=Interval(mean, mean - z * se, mean + z * se),
        confidence=confidence,
    )


def _compare_weighted(
    new_rewards: FloatArray,
    current_rewards: FloatArray,
    weights: FloatArray,
    *,
    estimator: Estimator,
    disagreements: int,
    confidence: float,
    resamples: int,
    seed: int,
) -> Comparison:
    """``compare`` with weighted means (ratio estimates over a weighted sample of rows)."""
    n = len(new_rewards)
    diff = new_rewards - current_rewards
    rng = np.random.default_rng(seed)
    alpha = (1.0 - confidence) / 2.0
    stacked = np.stack([new_rewards, current_rewards, diff]) * weights  # (3, n)
    means = np.empty((3, resamples))
    block = max(1, 2_000_000 // n)
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        index = rng.integers(0, n, size=(stop - start, n))
        means[:, start:stop] = stacked[:, index].sum(axis=2) / weights[index].sum(axis=1)
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha], axis=1)
    total = float(weights.sum())
    point = stacked.sum(axis=1) / total

    def interval(k: int) -> Interval:
        return Interval(float(point[k]), float(lo[k]), float(hi[k]))

    z = _normal_quantile(1.0 - alpha)
    mean = float(point[2])
    # Linearised standard error of a ratio mean, sqrt(sum w^2 (d - mean)^2) / sum w, with
    # the n / (n - 1) correction that makes it the plain one's at unit weights.
    spread = np.sum((weights * (diff - mean)) ** 2) * n / (n - 1) if n > 1 else 0.0
    se = float(np.sqrt(spread) / total)
    return Comparison(
        estimator=estimator,
        rows=n,
        disagreements=disagreements,
        new_value=interval(0),
        current_value=interval(1),
        improvement=interval(2),
        improvement_normal=Interval(mean, mean - z * se, mean + z * se),
        confidence=confidence,
    )


def _normal_quantile(p: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)
