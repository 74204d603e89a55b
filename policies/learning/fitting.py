"""Fitting a routing classifier from logged data: the doubly-robust cost-sensitive reduction.

Choosing a route is a two-class, cost-sensitive classification: route ``x`` to RLM when
``E[u | x, rlm] > E[u | x, llm]``. With the per-row DR estimates ``Γ_i`` of both routes'
utilities (``estimators.rewards``), each row becomes a weighted example::

    label_i  = rlm if Γ_i(rlm) > Γ_i(llm) else llm
    weight_i = |Γ_i(rlm) − Γ_i(llm)|

and a weighted logistic regression on standardised features minimises a convex surrogate of
the policy's regret (Beygelzimer & Langford's reduction; Dudík et al. 2011 for the DR form).
With ``q̂ = 0`` this is the IPS reduction: label the logged route if its utility beats the
baseline, the other route otherwise, weighted ``|u − baseline| / p``.

Rows a hard rule decided are left out: the classifier is never consulted for them. The
regularisation strength is chosen among ``C_GRID`` by the DR value of the fitted policy on
held-out folds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rlm_router.policies.learning.dataset import RLM, FloatArray, IntArray, LoggedData
from rlm_router.policies.learning.estimators import ProgressFn, fold_ids

C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
# A constant classifier's logit when every example says the same route.
_CONSTANT_LOGIT = 8.0


@dataclass(frozen=True)
class LinearScorer:
    """``score(x) = sigmoid(coef · (x − mean) / scale + intercept)``; RLM when score ≥ 0.5."""

    feature_names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def logits(self, features: FloatArray) -> FloatArray:
        z = (features - np.asarray(self.mean)) / np.asarray(self.scale)
        return np.asarray(z @ np.asarray(self.coef) + self.intercept, dtype=np.float64)

    def scores(self, features: FloatArray) -> FloatArray:
        return np.asarray(1.0 / (1.0 + np.exp(-self.logits(features))), dtype=np.float64)

    def actions(self, features: FloatArray) -> IntArray:
        return (self.logits(features) >= 0.0).astype(np.int64)


@dataclass(frozen=True)
class FitResult:
    scorer: LinearScorer
    c: float
    cv_values: dict[float, float]  # C -> held-out DR value of the classifier-decided rows
    rows: int


def fit_classifier(
    data: LoggedData,
    gamma: FloatArray,
    *,
    c_grid: Sequence[float] = C_GRID,
    folds: int = 5,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> FitResult:
    """A ``LinearScorer`` fitted on the rows no rule forced (see the module docstring)."""
    free = ~data.forced
    x = data.features[free]
    g = gamma[free]
    if len(x) == 0:
        raise ValueError("no classifier-decided rows to fit on")
    labels = (g[:, RLM] > g[:, 1 - RLM]).astype(np.int64)
    weights = np.abs(g[:, RLM] - g[:, 1 - RLM])
    sampled = None if data.weight is None else data.weight[free]
    if sampled is not None:
        weights = weights * sampled
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-12] = 1.0  # constant features get zero weight anyway
    z = (x - mean) / scale

    cv_values: dict[float, float] = {}
    shifts: dict[float, float] = {}
    grid = list(c_grid)
    if len(grid) > 1 and len(x) >= 2 * folds:
        ids = fold_ids(len(x), folds, seed + 1)
        steps = len(grid) * folds
        step = 0
        for c in grid:
            out_of_fold = np.empty(len(x))
            for k in range(folds):
                held = ids == k
                coef, intercept = _logistic(z[~held], labels[~held], weights[~held], c)
                out_of_fold[held] = z[held] @ coef + intercept
                step += 1
                if progress is not None:
                    progress("classifier", step, steps)
            cv_values[c], shifts[c] = _best_cut(out_of_fold, g, sampled)
        best = max(grid, key=lambda c: (cv_values[c], -c))
    else:
        best = grid[len(grid) // 2] if grid else 1.0
    coef, intercept = _logistic(z, labels, weights, best)
    # The logistic loss is only a surrogate of the policy's value: the cut on the log-odds
    # that maximised the held-out value replaces 0 (chosen on out-of-fold scores, so it is
    # not fitted to the rows it is judged on).
    intercept -= shifts.get(best, 0.0)
    scorer = LinearScorer(
        feature_names=data.feature_names,
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        coef=tuple(float(v) for v in coef),
        intercept=float(intercept),
    )
    return FitResult(scorer=scorer, c=best, cv_values=cv_values, rows=len(x))


def _best_cut(
    logits: FloatArray, gamma: FloatArray, weights: FloatArray | None = None
) -> tuple[float, float]:
    """(mean value, cut): route RLM where ``logits >= cut``, the cut maximising the value.

    Candidate cuts lie midway between consecutive distinct logits (plus "all" and "none");
    among equal values the cut nearest 0 wins (the fitted surrogate's own boundary).
    ``weights`` (rows of a sample) make the value a weighted mean.
    """
    n = len(logits)
    order = np.argsort(logits)
    sorted_logits = logits[order]
    if weights is not None:
        gamma = gamma * weights[:, None]
    # value(j) = rows order[:j] direct, order[j:] RLM
    direct = np.concatenate([[0.0], np.cumsum(gamma[order, 1 - RLM])])
    rlm = np.concatenate([np.cumsum(gamma[order[::-1], RLM])[::-1], [0.0]])
    values = (direct + rlm) / (n if weights is None else float(weights.sum()))
    cuts = np.concatenate(
        [
            [sorted_logits[0] - 1.0],
            (sorted_logits[:-1] + sorted_logits[1:]) / 2.0,
            [sorted_logits[-1] + 1.0],
        ]
    )
    # Only cuts between distinct logits separate rows.
    valid = np.concatenate([[True], sorted_logits[1:] > sorted_logits[:-1], [True]])
    best = max(np.flatnonzero(valid), key=lambda j: (round(values[j], 12), -abs(cuts[j])))
    return float(values[best]), float(cuts[best])


def _logistic(
    z: FloatArray, labels: IntArray, weights: FloatArray, c: float
) -> tuple[FloatArray, float]:
    """Weighted L2 logistic regression; a constant classifier when one class has no weight."""
    d = z.shape[1]
    pos = float(weights[labels == 1].sum())
    neg = float(weights[labels == 0].sum())
    if pos <= 0.0 or neg <= 0.0:
        return np.zeros(d), _CONSTANT_LOGIT if pos > 0.0 else -_CONSTANT_LOGIT
    from sklearn.linear_model import LogisticRegression

    # Weights scaled to mean 1 so C means the same whatever the utility's units.
    w = weights * (len(weights) / weights.sum())
    model = LogisticRegression(C=c, max_iter=2000)
    model.fit(z, labels, sample_weight=w)
    return np.asarray(model.coef_[0], dtype=np.float64), float(model.intercept_[0])
