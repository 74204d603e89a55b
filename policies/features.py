"""The features contract: what the policy sees of a request (``RequestFeatures``), by name.

``policies`` owns the names; ``router.features`` computes them from a request. Anything in
``policies`` that needs features of a request it builds (the prior's data set) is given a
``FeatureExtractor`` by its caller, so ``policies`` never imports ``router``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class RequestFeatures:
    """What the policy sees of a request. Plain numbers only."""

    n_tokens: int
    tokens_estimated: int
    n_chars: int
    question_chars: int
    context_window: int
    window_ratio: float
    log2_tokens: float
    compress_ratio: float
    record_line_frac: float
    line_density: float
    digit_rate: float
    entity_rate: float
    lexical_diversity: float
    prose_line_frac: float
    code_line_frac: float
    dense_frac: float
    task_chat: float
    task_lookup: float
    task_aggregate: float
    task_pairwise: float
    task_multihop: float
    task_compositional: float
    task_confidence: float
    agg_cues: int
    pair_cues: int
    multihop_cues: int
    lookup_cues: int
    latency_budget_ms: float
    has_latency_budget: int
    stream: int
    has_tools: int
    n_turns: int
    n_messages: int

    def as_dict(self) -> dict[str, float]:
        # Not dataclasses.asdict: it deep-copies recursively (~0.4 ms; this runs per request).
        return {name: getattr(self, name) for name in FEATURE_NAMES}


FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in fields(RequestFeatures))


class FeatureExtractor(Protocol):
    """Features of an OpenAI chat-completion request body against a direct model's window."""

    def __call__(self, body: Mapping[str, Any], *, context_window: int) -> RequestFeatures: ...
