"""The span tree of one routed request, as the router builds it.

::

    rlm_router.request            (INTERNAL, root; outcome attributes, fallback events)
    ├── rlm_router.decide         (decision attributes, features)
    └── chat {model}              (CLIENT, direct route)
        or invoke_agent rlm       (RLM run; see ``telemetry.rlm_observer``)

Spans are always started with an explicit parent context and never made the current span.
LiteLLM's ``otel`` callback writes its attributes onto whatever span is current unless
``USE_OTEL_LITELLM_REQUEST_SPAN=true``; since ours are never current, its attributes cannot
land on them. ``ChatCall.litellm_metadata()`` hands LiteLLM an explicit parent so its own span
nests under our ``chat`` span, and ``shielded()`` makes a read-only stand-in of one of our
spans current (for code, like the RLM engine, whose LiteLLM calls we cannot annotate).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, Span, SpanKind, Status, StatusCode

from rlm_router.telemetry import semconv as sc
from rlm_router.telemetry.metrics import ChatCallMeasurement

if TYPE_CHECKING:
    from rlm_router.telemetry.rlm_observer import RLMTraceObserver
    from rlm_router.telemetry.setup import Telemetry


@contextmanager
def shielded(span: Span) -> Iterator[None]:
    """Make a non-recording stand-in for ``span`` current for the duration of the block.

    Anything that parents on the current span (LiteLLM's callback, other instrumentation)
    nests under ``span``; anything that writes attributes onto the current span writes
    nowhere. Enter and exit in the same task.
    """
    stand_in = NonRecordingSpan(span.get_span_context())
    token = otel_context.attach(trace.set_span_in_context(stand_in))
    try:
        yield
    finally:
        otel_context.detach(token)


class ChatCall:
    """A ``chat {model}`` span (CLIENT) around one model call, with its GenAI metrics.

    Use as a context manager: an exception leaving the block sets ``error.type``. Or call
    ``end()`` yourself (e.g. when a stream finishes in another task).
    """

    def __init__(
        self,
        telemetry: Telemetry,
        *,
        parent: otel_context.Context,
        model: str,
        provider: str | None = None,
        inner: bool = False,
        messages: Sequence[Mapping[str, object]] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        start_time_ns: int | None = None,
    ) -> None:
        self._telemetry = telemetry
        self.model = model
        self.provider = provider or sc.provider_from_model(model)
        self.inner = inner
        attributes = sc.chat_request_attributes(
            model=model,
            provider=self.provider,
            inner=inner,
            max_tokens=max_tokens,
            temperature=temperature,
        )
        if messages is not None and telemetry.capture_content:
            attributes[sc.GEN_AI_INPUT_MESSAGES] = sc.messages_attribute(messages)
        self.span = telemetry.tracer.start_span(
            sc.chat_span_name(model),
            context=parent,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=start_time_ns,
        )
        self._started = time.monotonic()
        self._response_model: str | None = None
        self._input_tokens: int | None = None
        self._output_tokens: int | None = None
        self.cost_usd: float | None = None
        self.error_type: str | None = None
        self._ended = False

    def litellm_metadata(self) -> dict[str, object]:
        """Entries for ``metadata=`` of the LiteLLM call, so LiteLLM's own span nests under ours."""
        return {"litellm_parent_otel_span": NonRecordingSpan(self.span.get_span_context())}

    def record_response(
        self,
        *,
        response_model: str | None = None,
        response_id: str | None = None,
        finish_reasons: Sequence[str] | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
        output_text: str | None = None,
    ) -> None:
        """What the call returned; ``output_text`` is recorded only if content capture is on."""
        self.span.set_attributes(
            sc.chat_response_attributes(
                response_model=response_model,
                response_id=response_id,
                finish_reasons=finish_reasons,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_usd=cost_usd,
            )
        )
        if output_text is not None and self._telemetry.capture_content:
            message = {"role": "assistant", "content": output_text}
            self.span.set_attribute(sc.GEN_AI_OUTPUT_MESSAGES, sc.messages_attribute([message]))
        self._response_model = response_model or self._response_model
        self._input_tokens = input_tokens if input_tokens is not None else self._input_tokens
        self._output_tokens = output_tokens if output_tokens is not None else self._output_tokens
        self.cost_usd = cost_usd if cost_usd is not None else self.cost_usd

    def record_error(self, error: BaseException | str) -> None:
        """Mark the call failed; ``error`` is the exception or an ``error.type`` string."""
        self.error_type = error if isinstance(error, str) else sc.error_type_of(error)
        self.span.set_attribute(sc.ERROR_TYPE, self.error_type)
        self.span.set_status(Status(StatusCode.ERROR, self.error_type))
        if isinstance(error, BaseException):
            self.span.record_exception(error)

    def end(self, *, end_time_ns: int | None = None, duration_s: float | None = None) -> None:
        """End the span and record the GenAI metrics (once)."""
        if self._ended:
            return
        self._ended = True
        self.span.end(end_time=end_time_ns)
        if duration_s is None:
            duration_s = time.monotonic() - self._started
        self._telemetry.metrics.chat_call(
            ChatCallMeasurement(
                model=self.model,
                provider=self.provider,
                duration_s=duration_s,
                response_model=self._response_model,
                input_tokens=self._input_tokens,
                output_tokens=self._output_tokens,
                error_type=self.error_type,
                inner=self.inner,
            )
        )

    def __enter__(self) -> ChatCall:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and self.error_type is None:
            self.record_error(exc)
        self.end()


class RequestTrace:
    """The ``rlm_router.request`` span of one request and the spans under it.

    Created by ``Telemetry.request_span()``; the router records the decision, wraps the
    direct call or the RLM run, records fallbacks and finally the outcome.
    """

    def __init__(
        self,
        telemetry: Telemetry,
        *,
        parent: otel_context.Context | None,
        attributes: Mapping[str, sc.AttributeValue | None],
        start_time_ns: int | None = None,
    ) -> None:
        self._telemetry = telemetry
        parent_context = parent if parent is not None else otel_context.get_current()
        self.span = telemetry.tracer.start_span(
            sc.SPAN_REQUEST,
            context=parent_context,
            kind=SpanKind.INTERNAL,
            attributes=sc.drop_unset(attributes),
            start_time=start_time_ns,
        )
        self._start_time_ns = start_time_ns if start_time_ns is not None else time.time_ns()
        self.context = trace.set_span_in_context(self.span, parent_context)
        self._started = time.monotonic()
        self.decision_id: str | None = None
        self.decided_route: str | None = None
        self.fallback_kind: str = sc.FALLBACK_NONE
        self._outcome_recorded = False
        self._observers: list[RLMTraceObserver] = []
        self._ended = False

    @property
    def trace_id(self) -> str:
        """The trace id as 32 hex digits (what the OTLP-JSON files hold)."""
        return format(self.span.get_span_context().trace_id, "032x")

    def decision(
        self,
        decision: sc.DecisionLike,
        *,
        duration_s: float | None = None,
        start_time_ns: int | None = None,
    ) -> None:
        """Record the routing decision as a ``rlm_router.decide`` child span.

        ``start_time_ns`` is when deciding began (wall clock) and ``duration_s`` how long it
        took; without a start, the span ends now and starts ``duration_s`` back. Either way
        it never starts before this request's span (a decision recorded after the fact,
        as the proxy does, would otherwise begin before its parent).
        """
        width = int(duration_s * 1e9) if duration_s is not None else 0
        if start_time_ns is None:
            start_time_ns = time.time_ns() - width
        start = max(start_time_ns, self._start_time_ns)
        span = self._telemetry.tracer.start_span(
            sc.SPAN_DECIDE,
            context=self.context,
            kind=SpanKind.INTERNAL,
            attributes=sc.decision_attributes(decision),
            start_time=start,
        )
        span.end(end_time=start + width)
        self.decision_id = decision.id
        self.decided_route = decision.route
        self.span.set_attribute(sc.DECISION_ID, decision.id)
        self._telemetry.metrics.decision(
            route=decision.route, rule=decision.rule, exploration=bool(decision.exploration)
        )

    def chat(
        self,
        *,
        model: str,
        provider: str | None = None,
        messages: Sequence[Mapping[str, object]] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        start_time_ns: int | None = None,
    ) -> ChatCall:
        """Start the ``chat {model}`` span of the direct call (end it, or use ``with``).

        ``start_time_ns`` places the start in the past, for a call recorded after it ran
        (the proxy's direct route, from LiteLLM's success and failure events)."""
        return ChatCall(
            self._telemetry,
            parent=self.context,
            model=model,
            provider=provider,
            messages=messages,
            max_tokens=max_tokens,
            temperature=temperature,
            start_time_ns=start_time_ns,
        )

    def rlm_observer(self) -> RLMTraceObserver:
        """An ``rlm_core.EngineObserver`` whose ``invoke_agent rlm`` span is a child of this one."""
        from rlm_router.telemetry.rlm_observer import RLMTraceObserver

        observer = RLMTraceObserver(self._telemetry, parent=self.context)
        self._observers.append(observer)
        return observer

    def shielded(self) -> AbstractContextManager[None]:
        """``shielded(self.span)``: wrap code whose LiteLLM calls we cannot annotate."""
        return shielded(self.span)

    def fallback(
        self, kind: str, *, reason: str | None = None, error_type: str | None = None
    ) -> None:
        """Record a fallback (``rlm_to_llm`` or ``llm_to_rlm``) as an event on the root span."""
        source, _, target = kind.partition("_to_")
        self.fallback_kind = kind
        self.span.add_event(
            sc.EVENT_FALLBACK,
            sc.drop_unset(
                {
                    sc.FALLBACK: kind,
                    sc.FALLBACK_FROM: source or None,
                    sc.FALLBACK_TO: target or None,
                    sc.FALLBACK_REASON: reason,
                    sc.ERROR_TYPE: error_type,
                }
            ),
        )

    def outcome(
        self,
        *,
        route_served: str,
        cost_usd: float | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        stopped_reason: str | None = None,
        error_type: str | None = None,
        quality: float | None = None,
        rlm_iterations: int | None = None,
        rlm_sub_calls: int | None = None,
        latency_ms: float | None = None,
        fallback: str | None = None,
    ) -> None:
        """Record the outcome on the root span and in the router metrics (first call wins).

        ``latency_ms`` defaults to the time since the request span started; ``fallback`` to
        the last one recorded with ``fallback()`` (else ``none``).
        """
        if self._outcome_recorded:
            return
        self._outcome_recorded = True
        if latency_ms is None:
            latency_ms = (time.monotonic() - self._started) * 1000.0
        fallback_kind = fallback or self.fallback_kind
        self.span.set_attributes(
            sc.drop_unset(
                {
                    sc.ROUTE_SERVED: route_served,
                    sc.FALLBACK: fallback_kind,
                    sc.OUTCOME_COST_USD: cost_usd,
                    sc.OUTCOME_LATENCY_MS: latency_ms,
                    sc.OUTCOME_INPUT_TOKENS: input_tokens,
                    sc.OUTCOME_OUTPUT_TOKENS: output_tokens,
                    sc.OUTCOME_STOPPED_REASON: stopped_reason,
                    sc.OUTCOME_ERROR_TYPE: error_type,
                    sc.OUTCOME_QUALITY: quality,
                    sc.RLM_ITERATIONS: rlm_iterations,
                    sc.RLM_SUB_CALLS: rlm_sub_calls,
                    sc.ERROR_TYPE: error_type,
                }
            )
        )
        if error_type is not None:
            self.span.set_status(Status(StatusCode.ERROR, error_type))
        self._telemetry.metrics.request(
            route_served=route_served,
            fallback=fallback_kind,
            duration_s=latency_ms / 1000.0,
            cost_usd=cost_usd,
            error_type=error_type,
            rlm_iterations=rlm_iterations,
            rlm_sub_calls=rlm_sub_calls,
        )

    def end(self, error: BaseException | None = None, *, end_time_ns: int | None = None) -> None:
        """End the root span (once); without a recorded outcome, record a minimal one.

        ``error`` is the exception that ended the request, if any; ``end_time_ns`` when it
        ended, if that was before now (a request whose end is learnt from a later event).
        Spans of an RLM run that never reported its end (cancelled) are closed first.
        """
        if self._ended:
            return
        self._ended = True
        for observer in self._observers:
            observer.close()
        if error is not None:
            self.span.record_exception(error)
        if not self._outcome_recorded:
            self.outcome(
                route_served=self.decided_route or "unknown",
                error_type=sc.error_type_of(error) if error is not None else None,
            )
        self.span.end(end_time=end_time_ns)
