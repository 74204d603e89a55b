"""The routing classifier at inference time: a logistic model over named feature terms.

Artifact (JSON, never pickle)::

    {
      "format": "rlm-router/linear-classifier",
      "format_version": 1,
      "version": "prior-2026.11.21",          # shows up in every Decision
      "intercept": -1.2,
      "terms": [
        {"name": "log2_tokens", "factors": ["log2_tokens"], "clip": [0, 24],
         "mean": 12.1, "scale": 3.9, "coef": 1.7},
        {"name": "agg_x_len", "factors": ["agg_cues", "log2_tokens"], "caps": [1, null],
         "clip": [0, 48], ...}
      ],
      "training": {...free-form provenance...}
    }

A term's value is the product of its factors (``RequestFeatures`` attributes, each first capped
at its entry in the optional ``caps``, so a count can act as a presence flag), clipped, then
standardised: ``z = (value - mean) / scale``. The score is ``sigmoid(intercept + Σ coef·z)``
and each ``coef·z`` is that term's contribution (in log-odds), which is what decisions show.
Scoring is a few multiplications per term; scikit-learn is only needed to fit
(``policies.fit``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlm_router.rlm_core.errors import ConfigError

if TYPE_CHECKING:
    from rlm_router.policies.features import RequestFeatures

ARTIFACT_FORMAT = "rlm-router/linear-classifier"
ARTIFACT_FORMAT_VERSION = 1


class ArtifactError(ConfigError):
    """A classifier artifact that is missing, unreadable or malformed."""


@dataclass(frozen=True, slots=True)
class Term:
    name: str
    factors: tuple[str, ...]
    caps: tuple[float | None, ...]
    clip_low: float
    clip_high: float
    mean: float
    scale: float
    coef: float

    def value(self, features: RequestFeatures) -> float:
        value = 1.0
        for factor, cap in zip(self.factors, self.caps, strict=True):
            x = getattr(features, factor)
            value *= x if cap is None or x < cap else cap
        return min(self.clip_high, max(self.clip_low, value))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "factors": list(self.factors),
            "caps": list(self.caps),
            "clip": [self.clip_low, self.clip_high],
            "mean": self.mean,
            "scale": self.scale,
            "coef": self.coef,
        }


@dataclass(frozen=True, slots=True)
class LinearClassifier:
    """Logistic regression over standardised feature terms."""

    version: str
    intercept: float
    terms: tuple[Term, ...]
    training: Mapping[str, Any]

    def score(self, features: RequestFeatures) -> tuple[float, tuple[tuple[str, float], ...]]:
        """(probability that RLM is the better route, per-term contributions in log-odds)."""
        logit = self.intercept
        contributions = []
        for term in self.terms:
            contribution = term.coef * (term.value(features) - term.mean) / term.scale
            logit += contribution
            contributions.append((term.name, contribution))
        return sigmoid(logit), tuple(contributions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": ARTIFACT_FORMAT,
            "format_version": ARTIFACT_FORMAT_VERSION,
            "version": self.version,
            "intercept": self.intercept,
            "terms": [term.to_dict() for term in self.terms],
            "training": dict(self.training),
        }

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_dict(
        cls, data: Any, *, feature_names: frozenset[str] | None = None
    ) -> LinearClassifier:
        """Validate an artifact's content; ``feature_names`` restricts the allowed factors."""
        if not isinstance(data, dict):
            raise ArtifactError("artifact must be a JSON object")
        if data.get("format") != ARTIFACT_FORMAT:
            raise ArtifactError(f"'format' must be {ARTIFACT_FORMAT!r}, got {data.get('format')!r}")
        if data.get("format_version") != ARTIFACT_FORMAT_VERSION:
            raise ArtifactError(
                f"unsupported format_version {data.get('format_version')!r}; "
                f"this build reads {ARTIFACT_FORMAT_VERSION}"
            )
        version = data.get("version")
        if not isinstance(version, str) or not version:
            raise ArtifactError("'version' must be a non-empty string")
        raw_terms = data.get("terms")
        if not isinstance(raw_terms, list) or not raw_terms:
            raise ArtifactError("'terms' must be a non-empty list")
        terms = tuple(_term(raw, i, feature_names) for i, raw in enumerate(raw_terms))
        training = data.get("training", {})
        if not isinstance(training, dict):
            raise ArtifactError("'training' must be an object")
        return cls(
            version=version,
            intercept=_number(data.get("intercept"), "intercept"),
            terms=terms,
            training=training,
        )

    @classmethod
    def load(
        cls, path: str | Path, *, feature_names: frozenset[str] | None = None
    ) -> LinearClassifier:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ArtifactError(
                f"cannot read classifier artifact {path}: {exc.strerror or exc}"
            ) from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"classifier artifact {path} is not valid JSON: {exc}") from exc
        try:
            return cls.from_dict(data, feature_names=feature_names)
        except ArtifactError as exc:
            raise ArtifactError(f"classifier artifact {path}: {exc}") from exc


def _term(raw: Any, index: int, feature_names: frozenset[str] | None) -> Term:
    where = f"terms[{index}]"
    if not isinstance(raw, dict):
        raise ArtifactError(f"{where} must be an object")
    factors = raw.get("factors")
    if not isinstance(factors, list) or not factors or not all(isinstance(f, str) for f in factors):
        raise ArtifactError(f"{where}.factors must be a non-empty list of feature names")
    if feature_names is not None:
        unknown = [f for f in factors if f not in feature_names]
        if unknown:
            raise ArtifactError(f"{where}.factors names unknown features: {', '.join(unknown)}")
    caps = raw.get("caps", [None] * len(factors))
    if not isinstance(caps, list) or len(caps) != len(factors):
        raise ArtifactError(f"{where}.caps must be a list as long as factors")
    clip = raw.get("clip", [-math.inf, math.inf])
    if not isinstance(clip, list) or len(clip) != 2:
        raise ArtifactError(f"{where}.clip must be [low, high]")
    scale = _number(raw.get("scale"), f"{where}.scale")
    if scale <= 0:
        raise ArtifactError(f"{where}.scale must be positive")
    name = raw.get("name", "*".join(factors))
    if not isinstance(name, str):
        raise ArtifactError(f"{where}.name must be a string")
    return Term(
        name=name,
        factors=tuple(factors),
        caps=tuple(
            None if cap is None else _number(cap, f"{where}.caps[{i}]")
            for i, cap in enumerate(caps)
        ),
        clip_low=_number(clip[0], f"{where}.clip[0]", allow_inf=True),
        clip_high=_number(clip[1], f"{where}.clip[1]", allow_inf=True),
        mean=_number(raw.get("mean"), f"{where}.mean"),
        scale=scale,
        coef=_number(raw.get("coef"), f"{where}.coef"),
    )


def _number(value: Any, where: str, *, allow_inf: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArtifactError(f"{where} must be a number, got {value!r}")
    number = float(value)
    if math.isnan(number) or (math.isinf(number) and not allow_inf):
        raise ArtifactError(f"{where} must be finite, got {value!r}")
    return number


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)
