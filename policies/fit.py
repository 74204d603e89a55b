"""Fitting a ``LinearClassifier`` with scikit-learn (training only; inference never imports this).

``fit_linear(rows, labels, terms)`` standardises each term (the mean and scale go into the
artifact, so inference reproduces sklearn's ``StandardScaler`` exactly) and fits an
L2-regularised logistic regression.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlm_router.policies.classifier import LinearClassifier, Term


@dataclass(frozen=True)
class TermSpec:
    """A model input: the product of ``factors`` (each capped by ``caps``), clipped."""

    name: str
    factors: tuple[str, ...]
    low: float
    high: float
    caps: tuple[float | None, ...] | None = None

    def factor_caps(self) -> tuple[float | None, ...]:
        return self.caps if self.caps is not None else (None,) * len(self.factors)

    def value(self, row: Mapping[str, float]) -> float:
        value = 1.0
        for factor, cap in zip(self.factors, self.factor_caps(), strict=True):
            x = float(row[factor])
            value *= x if cap is None else min(x, cap)
        return min(self.high, max(self.low, value))


def fit_linear(
    rows: Sequence[Mapping[str, float]],
    labels: Sequence[int],
    terms: Sequence[TermSpec],
    *,
    version: str,
    c: float = 1.0,
    sample_weight: Sequence[float] | None = None,
    training: Mapping[str, Any] | None = None,
) -> LinearClassifier:
    """Fit logistic regression on standardised ``terms`` of ``rows`` (feature dicts)."""
    from sklearn.linear_model import LogisticRegression

    x = np.array([[term.value(row) for term in terms] for row in rows], dtype=float)
    y = np.asarray(labels, dtype=int)
    if len(set(y.tolist())) < 2:
        raise ValueError("training labels must contain both routes")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    model = LogisticRegression(C=c, max_iter=2000)
    model.fit(z, y, sample_weight=None if sample_weight is None else np.asarray(sample_weight))
    fitted = tuple(
        Term(
            name=term.name,
            factors=term.factors,
            caps=term.factor_caps(),
            clip_low=term.low,
            clip_high=term.high,
            mean=float(mean[i]),
            scale=float(scale[i]),
            coef=float(model.coef_[0][i]),
        )
        for i, term in enumerate(terms)
    )
    return LinearClassifier(
        version=version,
        intercept=float(model.intercept_[0]),
        terms=fitted,
        training=dict(training or {}),
    )
