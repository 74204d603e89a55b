"""One request on its way through the dispatcher: its parts, deadline, trace and route."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from rlm_router.policies.decision import Decision
from rlm_router.policies.schema import Route
from rlm_router.rlm_core.errors import PartialAnswerError, ProviderError
from rlm_router.router.errors import DispatchError
from rlm_router.router.outcome import Outcome, RequestTelemetry, reason_of
from rlm_router.router.request import ChatRequest
from rlm_router.router.responses import RouteInfo

if TYPE_CHECKING:
    from rlm_router.telemetry.tracing import ChatCall

__all__ = ["Deadline", "RequestCall", "error_type", "failed_outcome", "headers_of"]


@dataclass
class Deadline:
    """A monotonic deadline; ``None`` means no latency budget."""

    at: float | None

    @classmethod
    def from_budget(cls, started: float, budget_ms: float | None) -> Deadline:
        return cls(None if budget_ms is None else started + budget_ms / 1000.0)

    def remaining(self) -> float | None:
        return None if self.at is None else self.at - time.monotonic()


@dataclass
class RequestCall:
    """One request on its way through the dispatcher."""

    request: ChatRequest
    decision: Decision
    kwargs: Mapping[str, Any]
    started: float
    deadline: Deadline
    trace: RequestTelemetry
    direct_chat: ChatCall | None = None

    def route(self, served: Route, **changes: Any) -> RouteInfo:
        """The ``RouteInfo`` of this request served on ``served`` (with ``changes``)."""
        decision = self.decision
        info = RouteInfo(
            decision_id=decision.id,
            route=served,
            decided="rlm" if decision.route == "rlm" else "llm",
            reason=reason_of(decision),
            score=decision.score,
        )
        return replace(info, **changes) if changes else info

    def fits_direct(self) -> bool:
        """Whether the input fits the direct model's context window."""
        features = self.decision.features
        if features.context_window > 0:
            return features.n_tokens < features.context_window
        return True


def error_type(exc: BaseException) -> str:
    """``error.type`` of a failure: a provider error names the provider's own class."""
    return exc.error_type if isinstance(exc, ProviderError) else type(exc).__name__


def headers_of(kwargs: Mapping[str, Any]) -> dict[str, str] | None:
    headers = kwargs.get("extra_headers") or kwargs.get("headers")
    if isinstance(headers, Mapping):
        return {str(k): str(v) for k, v in headers.items()}
    return None


def failed_outcome(call: RequestCall, exc: BaseException) -> Outcome:
    route = exc.route if isinstance(exc, DispatchError) else None
    if route is None:
        decided: Route = "rlm" if call.decision.route == "rlm" else "llm"
        route = RouteInfo(
            decision_id=call.decision.id,
            route=decided,
            decided=decided,
            reason=reason_of(call.decision),
            score=call.decision.score,
        )
    return Outcome(
        route=route,
        latency_ms=(time.monotonic() - call.started) * 1000.0,
        error_type=error_type(exc),
        stopped_reason=exc.stopped_reason if isinstance(exc, PartialAnswerError) else None,
    )
