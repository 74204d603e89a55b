"""The bridge to the router's classifier artifact (``policies.classifier.LinearClassifier``).

Training works on a matrix of *term* values: a term (``policies.fit.TermSpec``) is a product
of ``RequestFeatures`` fields, each capped, then clipped, exactly as the artifact defines it.
The terms fitted are the current artifact's own plus the prior's vocabulary
(``policies.prior.TERMS``) where the current artifact lacks them, so retraining can express
boundaries a smaller artifact could not. A fitted ``LinearScorer`` becomes an artifact whose
decision at the policy's threshold is the scorer's (the threshold's log-odds are folded into
the intercept), so the policy YAML stays as it is and only ``classifier.artifact`` changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlm_router.policies.classifier import LinearClassifier, Term
from rlm_router.policies.fit import TermSpec
from rlm_router.policies.learning.dataset import FloatArray, IntArray
from rlm_router.policies.learning.fitting import LinearScorer

_PROB_EPS = 1e-6


def spec_of(term: Term) -> TermSpec:
    """An artifact term's definition (without its fitted numbers)."""
    return TermSpec(term.name, term.factors, term.clip_low, term.clip_high, term.caps)


def learning_terms(current: LinearClassifier, available: Sequence[str]) -> tuple[TermSpec, ...]:
    """The current artifact's terms, then the prior's terms it lacks (by factors).

    Only terms whose factors are all in ``available`` (the features the router logs) are kept.
    """
    from rlm_router.policies.prior import TERMS

    have = set(available)
    out: list[TermSpec] = []
    seen: set[tuple[tuple[str, ...], tuple[float | None, ...]]] = set()
    names: set[str] = set()
    for spec in (*(spec_of(t) for t in current.terms), *TERMS):
        key = (spec.factors, spec.factor_caps())
        if not set(spec.factors) <= have or key in seen:
            continue
        name = spec.name if spec.name not in names else "*".join(spec.factors)
        out.append(TermSpec(name, spec.factors, spec.low, spec.high, spec.caps))
        seen.add(key)
        names.add(name)
    return tuple(out)


def factor_names(terms: Sequence[TermSpec]) -> tuple[str, ...]:
    """Every feature the terms read, in first-use order."""
    return tuple(dict.fromkeys(f for term in terms for f in term.factors))


def term_matrix(
    terms: Sequence[TermSpec], features: FloatArray, feature_names: Sequence[str]
) -> FloatArray:
    """(n, len(terms)) term values from raw feature columns named ``feature_names``.

    Vectorised ``TermSpec.value``: each factor capped, the product clipped.
    """
    n = len(features)
    if n == 0:
        return np.zeros((0, len(terms)))
    column = {name: i for i, name in enumerate(feature_names)}
    out = np.empty((n, len(terms)), dtype=np.float64)
    for j, term in enumerate(terms):
        value = np.ones(n, dtype=np.float64)
        for factor, cap in zip(term.factors, term.factor_caps(), strict=True):
            x = features[:, column[factor]]
            value = value * (x if cap is None else np.minimum(x, cap))
        out[:, j] = np.clip(value, term.low, term.high)
    return out


class ArtifactPolicy:
    """A classifier artifact at a threshold, vectorised over logged rows (``RoutingClassifier``)."""

    def __init__(self, classifier: LinearClassifier, threshold: float) -> None:
        self.classifier = classifier
        self.threshold = threshold
        self._terms = tuple(spec_of(t) for t in classifier.terms)
        self.feature_names = factor_names(self._terms)

    def logits(self, features: FloatArray) -> FloatArray:
        values = term_matrix(self._terms, features, self.feature_names)
        mean = np.asarray([t.mean for t in self.classifier.terms])
        scale = np.asarray([t.scale for t in self.classifier.terms])
        coef = np.asarray([t.coef for t in self.classifier.terms])
        return np.asarray(
            self.classifier.intercept + ((values - mean) / scale) @ coef, dtype=np.float64
        )

    def actions(self, features: FloatArray) -> IntArray:
        """1 (RLM) where the score reaches the threshold, as ``policies.decide`` does."""
        scores = 1.0 / (1.0 + np.exp(-self.logits(features)))
        return (scores >= self.threshold).astype(np.int64)


def to_artifact(
    scorer: LinearScorer,
    terms: Sequence[TermSpec],
    *,
    threshold: float,
    version: str,
    training: Mapping[str, Any],
) -> LinearClassifier:
    """The artifact that decides as ``scorer`` does when the policy's threshold is applied."""
    t = min(1.0 - _PROB_EPS, max(_PROB_EPS, threshold))
    shift = math.log(t / (1.0 - t))
    return LinearClassifier(
        version=version,
        intercept=scorer.intercept + shift,
        terms=tuple(
            Term(
                name=term.name,
                factors=term.factors,
                caps=term.factor_caps(),
                clip_low=term.low,
                clip_high=term.high,
                mean=mean,
                scale=scale,
                coef=coef,
            )
            for term, mean, scale, coef in zip(
                terms, scorer.mean, scorer.scale, scorer.coef, strict=True
            )
        ),
        training=dict(training),
    )
