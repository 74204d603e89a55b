"""What happened to one request, and its telemetry trace.

``Outcome`` is the record of a served (or failed) request: route, fallback, cost, tokens,
latency. ``RequestTelemetry`` wraps the request's ``telemetry.RequestTrace`` (or nothing) so
that recording can never fail a request.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rlm_router.rlm_core.litellm_api import response_cost
from rlm_router.router.responses import RouteInfo

if TYPE_CHECKING:
    from rlm_router.policies.decision import Decision
    from rlm_router.telemetry.rlm_observer import RLMTraceObserver
    from rlm_router.telemetry.tracing import ChatCall, RequestTrace

log = logging.getLogger(__name__)


def reason_of(decision: Decision) -> str:
    """One line saying why the decision chose its route."""
    if decision.rule:
        text = f"rule {decision.rule}"
    else:
        op = ">=" if decision.score >= decision.threshold else "<"
        text = f"score {decision.score:.3f} {op} threshold {decision.threshold:.3f}"
    return f"{text} (exploration)" if decision.exploration else text


@dataclass(kw_only=True)
class Outcome:
    """What happened to one request (recorded on its trace, returned to callers)."""

    route: RouteInfo
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    stopped_reason: str | None = None
    error_type: str | None = None
    rlm_iterations: int | None = None
    rlm_sub_calls: int | None = None


class RequestTelemetry:
    """The telemetry trace of one request, or nothing; never raises."""

    def __init__(self, trace: RequestTrace | None) -> None:
        self.trace = trace

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except Exception:  # telemetry must never fail a request
            log.debug("telemetry call failed", exc_info=True)

    def decision(
        self, decision: Decision, duration_s: float, start_time_ns: int | None = None
    ) -> None:
        if self.trace is not None:
            with self._guard():
                self.trace.decision(decision, duration_s=duration_s, start_time_ns=start_time_ns)

    def fallback(self, kind: str, reason: str, error_type: str | None = None) -> None:
        if self.trace is not None:
            with self._guard():
                self.trace.fallback(kind, reason=reason, error_type=error_type)

    def observer(self) -> RLMTraceObserver | None:
        if self.trace is None:
            return None
        with self._guard():
            return self.trace.rlm_observer()
        return None

    def chat(self, model: str, messages: Sequence[Mapping[str, object]]) -> ChatCall | None:
        if self.trace is None:
            return None
        with self._guard():
            return self.trace.chat(model=model, messages=messages)
        return None

    def chat_done(
        self,
        call: ChatCall | None,
        response: object = None,
        error: BaseException | None = None,
        *,
        cost_usd: float | None = None,
    ) -> None:
        if call is None:
            return
        with self._guard():
            if error is not None:
                call.record_error(error)
            elif response is not None:
                usage = getattr(response, "usage", None)
                choices = getattr(response, "choices", None) or []
                call.record_response(
                    response_model=getattr(response, "model", None),
                    response_id=getattr(response, "id", None),
                    finish_reasons=[str(c.finish_reason) for c in choices if c.finish_reason],
                    input_tokens=getattr(usage, "prompt_tokens", None),
                    output_tokens=getattr(usage, "completion_tokens", None),
                    cost_usd=cost_usd if cost_usd is not None else response_cost(response),
                )
            call.end()

    def finish(
        self,
        outcome: Outcome | None,
        error: BaseException | None = None,
        *,
        end_time_ns: int | None = None,
    ) -> None:
        if self.trace is None:
            return
        with self._guard():
            if outcome is not None:
                self.trace.outcome(
                    route_served=outcome.route.route,
                    cost_usd=outcome.cost_usd,
                    input_tokens=outcome.input_tokens,
                    output_tokens=outcome.output_tokens,
                    stopped_reason=outcome.stopped_reason,
                    error_type=outcome.error_type,
                    rlm_iterations=outcome.rlm_iterations,
                    rlm_sub_calls=outcome.rlm_sub_calls,
                    latency_ms=outcome.latency_ms,
                    fallback=outcome.route.fallback,
                )
            self.trace.end(error, end_time_ns=end_time_ns)
