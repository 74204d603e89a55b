"""The routing metadata a request carries through LiteLLM, from the hook to whoever serves it.

LiteLLM passes ``data["metadata"]`` along with a request (into ``litellm_params["metadata"]``
for the provider and the log events), so the hook's decision travels there under
``METADATA_KEY`` as a plain dict; everything in the plugin reads it back through
``RoutingMetadata.read``, never key by key.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import asdict, dataclass

from rlm_router.policies.schema import Route
from rlm_router.router.rlm_run import INNER_METADATA_KEY

__all__ = ["METADATA_KEY", "RoutingMetadata", "is_inner", "of_call"]

METADATA_KEY = "rlm_router"


@dataclass(frozen=True, kw_only=True)
class RoutingMetadata:
    """What the hook decided for a request, as it rides in the request's metadata."""

    decision_id: str
    route: Route
    reason: str
    score: float | None = None
    latency_budget_ms: float | None = None
    decide_ms: float | None = None
    degraded: str | None = None  # e.g. "admission_full": decided rlm, served direct
    policy_version: str | None = None  # the policy the decision was made under

    def attach(self, data: MutableMapping[str, object]) -> None:
        """Store into a request body's ``metadata`` (created when missing)."""
        metadata = data.get("metadata")
        if not isinstance(metadata, dict):
            metadata = data["metadata"] = {}
        metadata[METADATA_KEY] = asdict(self)

    @classmethod
    def read(cls, metadata: object) -> RoutingMetadata | None:
        """The routing metadata in a request's ``metadata`` (None when the hook did not route
        it, or the entry is not ours)."""
        raw = metadata.get(METADATA_KEY) if isinstance(metadata, Mapping) else None
        if not isinstance(raw, Mapping) or not isinstance(raw.get("decision_id"), str):
            return None
        return cls(
            decision_id=raw["decision_id"],
            route="llm" if raw.get("route") == "llm" else "rlm",
            reason=str(raw.get("reason", "")),
            score=_number(raw.get("score")),
            latency_budget_ms=_number(raw.get("latency_budget_ms")),
            decide_ms=_number(raw.get("decide_ms")),
            degraded=raw["degraded"] if isinstance(raw.get("degraded"), str) else None,
            policy_version=_text(raw.get("policy_version")),
        )


def of_call(kwargs: Mapping[str, object]) -> RoutingMetadata | None:
    """The routing metadata of a finished call, from LiteLLM's callback ``kwargs``."""
    params = kwargs.get("litellm_params")
    return RoutingMetadata.read(params.get("metadata") if isinstance(params, Mapping) else None)


def is_inner(metadata: object) -> bool:
    """Whether a request is one of the RLM engine's own sub-calls."""
    return isinstance(metadata, Mapping) and INNER_METADATA_KEY in metadata


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None
