"""The router's own errors on the request path (part of the tree in ``rlm_core.errors``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlm_router.rlm_core.errors import PartialAnswerError, RLMRouterError

if TYPE_CHECKING:
    from rlm_router.router.responses import RouteInfo

__all__ = ["DispatchError", "EscalationFailed", "LatencyBudgetExceeded"]


class DispatchError(RLMRouterError):
    """The request could not be answered on any allowed route.

    ``status_code`` is the HTTP status the proxy answers with.
    """

    status_code = 502

    def __init__(self, message: str, *, route: RouteInfo | None = None) -> None:
        super().__init__(message)
        self.route = route


class EscalationFailed(DispatchError, PartialAnswerError):
    """The RLM route failed and the input does not fit the direct model's window.

    Carries the best partial answer the engine had, and why it stopped.
    """

    def __init__(
        self,
        message: str,
        *,
        partial_answer: str | None,
        stopped_reason: str,
        route: RouteInfo | None = None,
    ) -> None:
        PartialAnswerError.__init__(
            self, message, partial_answer=partial_answer, stopped_reason=stopped_reason
        )
        self.route = route


class LatencyBudgetExceeded(DispatchError):
    """The latency budget ran out before any route produced an answer."""

    status_code = 504
