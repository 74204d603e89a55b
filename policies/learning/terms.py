"""The bridge to the router's classifier artifact (``policies.classifier.LinearClassifier``).

Training works on a matrix of *term* values: a term is a product of ``RequestFeatures``
fields, clipped, exactly as the artifact defines it. The terms fitted are the current
artifact's own plus ``LEARNING_TERMS`` (length, question cues, record structure and their
interactions with length), so retraining can express boundaries the prior could not. A
fitted ``LinearScorer`` becomes an artifact whose decision at the policy's threshold is the
scorer's (the threshold's log-odds are folded into the intercept), so the policy YAML stays
as it is and only ``classifier.artifact`` changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from policies.classifier import LinearClassifier, Term
from policies.learning.dataset import FloatArray, IntArray
from policies.learning.fitting import LinearScorer

# (name, factors) of the terms training always considers besides the current artifact's.
LEARNING_TERMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("log2_tokens", ("log2_tokens",)),
    ("window_ratio", ("window_ratio",)),
    ("agg_cues", ("agg_cues",)),
    ("pair_cues", ("pair_cues",)),
    ("multihop_cues", ("multihop_cues",)),
    ("lookup_cues", ("lookup_cues",)),
    ("agg_x_len", ("agg_cues", "log2_tokens")),
    ("pair_x_len", ("pair_cues", "log2_tokens")),
    ("multihop_x_len", ("multihop_cues", "log2_tokens")),
    ("lookup_x_len", ("lookup_cues", "log2_tokens")),
    ("record_line_frac", ("record_line_frac",)),
    ("records_x_len", ("record_line_frac", "log2_tokens")),
    ("compress_ratio", ("compress_ratio",)),
    ("digit_rate", ("digit_rate",)),
    ("entity_rate", ("entity_rate",)),
    ("n_turns", ("n_turns",)),
)
_PROB_EPS = 1e-6


@dataclass(frozen=True)
class TermSpec:
    """A term to fit: its factors and the clip applied to their product."""

    name: str
    factors: tuple[str, ...]
    clip_low: float = -math.inf
    clip_high: float = math.inf

    def values(self, columns: Mapping[str, FloatArray]) -> FloatArray:
        value = np.ones_like(next(iter(columns.values())))
        for factor in self.factors:
            value = value * columns[factor]
        return np.clip(value, self.clip_low, self.clip_high)


def learning_terms(current: LinearClassifier, available: Sequence[str]) -> tuple[TermSpec, ...]:
    """The current artifact's terms (with their clips), then ``LEARNING_TERMS`` not yet there.

    Only terms whose factors are in ``available`` (the features the router logs) are kept.
    """
    have = set(available)
    out: list[TermSpec] = []
    seen: set[tuple[str, ...]] = set()
    names: set[str] = set()
    for term in current.terms:
        if set(term.factors) <= have and term.factors not in seen:
            out.append(TermSpec(term.name, term.factors, term.clip_low, term.clip_high))
            seen.add(term.factors)
            names.add(term.name)
    for name, factors in LEARNING_TERMS:
        if set(factors) <= have and factors not in seen:
            out.append(TermSpec(name if name not in names else "*".join(factors), factors))
            seen.add(factors)
    return tuple(out)


def factor_names(terms: Sequence[TermSpec]) -> tuple[str, ...]:
    """Every feature the terms read, in first-use order."""
    return tuple(dict.fromkeys(f for term in terms for f in term.factors))


def term_matrix(
    terms: Sequence[TermSpec], features: FloatArray, feature_names: Sequence[str]
) -> FloatArray:
    """(n, len(terms)) term values from raw feature columns named ``feature_names``."""
    if len(features) == 0:
        return np.zeros((0, len(terms)))
    columns = {name: features[:, i] for i, name in enumerate(feature_names)}
    return np.stack([term.values(columns) for term in terms], axis=1)


def with_data_clips(terms: Sequence[TermSpec], matrix: FloatArray) -> tuple[TermSpec, ...]:
    """Unbounded clips replaced by the range seen in ``matrix`` (no wild extrapolation)."""
    out = []
    for j, term in enumerate(terms):
        low, high = term.clip_low, term.clip_high
        if len(matrix):
            if math.isinf(low):
                low = float(matrix[:, j].min())
            if math.isinf(high):
                high = float(matrix[:, j].max())
        out.append(TermSpec(term.name, term.factors, low, high))
    return tuple(out)


class ArtifactPolicy:
    """A classifier artifact at a threshold, vectorised over logged rows (``RoutingClassifier``)."""

    def __init__(self, classifier: LinearClassifier, threshold: float) -> None:
        self.classifier = classifier
        self.threshold = threshold
        self._terms = tuple(
            TermSpec(t.name, t.factors, t.clip_low, t.clip_high) for t in classifier.terms
        )
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
                clip_low=term.clip_low,
                clip_high=term.clip_high,
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
