"""Dispatch: carry out a routing decision, with fallbacks and a latency budget.

::

    decide ─┬─ llm ─► direct call ──(context window exceeded)──► RLM        [llm_to_rlm]
            └─ rlm ─► RLM engine ──(failure, budget exhausted)──► direct    [rlm_to_llm]
                        │                                          (only when the input fits)
                        └─(deadline)──► per policy: direct call, or the partial answer

Provider errors (429, 5xx, timeouts, dropped connections) are retried per ``RetryPolicy`` on
the direct route; the engine retries its own calls. A latency budget (``x-latency-budget-ms``)
becomes a deadline: the direct call's timeout, the engine's deadline (minus a reserve when the
policy degrades to the direct route), and a hard stop on both. Past the deadline the router
answers with what it has and says so (``degraded``); it never silently overruns.

Every request gets an ``Outcome`` (route served, fallback, cost, tokens, latency) recorded on
its telemetry trace; telemetry errors never fail a request.

The same machinery serves the library (``Dispatcher.acompletion``) and the proxy plugin
(``Dispatcher.serve_rlm``, called by the ``CustomLLM`` that serves ``rlm/*``).

This module orchestrates; each concept has its own module: ``router.fallback`` (the rule, pure),
``router.direct`` (the direct call with retries), ``router.rlm_run`` (the engine run and its
inner sub-calls), ``router.streaming`` (routed streams, keep-alives), ``router.call`` (one
request's parts, deadline and route), ``router.errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from rlm_router.policies.decision import Decision
from rlm_router.rlm_core.errors import PartialAnswerError, RLMError
from rlm_router.rlm_core.litellm_api import response_cost, token_cost
from rlm_router.router import fallback as fallback_rule
from rlm_router.router.call import Deadline, RequestCall, error_type, failed_outcome, headers_of
from rlm_router.router.direct import call_direct
from rlm_router.router.dispatch_settings import DispatchSettings
from rlm_router.router.errors import DispatchError, EscalationFailed, LatencyBudgetExceeded
from rlm_router.router.outcome import Outcome, RequestTelemetry
from rlm_router.router.params import check_params
from rlm_router.router.request import ChatRequest
from rlm_router.router.responses import (
    ChunkFactory,
    Fallback,
    Route,
    RouteInfo,
    Served,
    TokenUsage,
    attach_route,
    model_response,
    served_from_response,
    split_text,
)
from rlm_router.router.rlm_run import (
    INNER_METADATA_KEY,
    INNER_TAG,
    RLM_PREFIX,
    failure_cost,
    result_cost,
    rlm_served,
    run_engine,
    stop_name,
    usage_int,
    usage_int0,
)
from rlm_router.router.streaming import RoutedStream, empty, keepalives

if TYPE_CHECKING:
    from rlm_router.rlm_core import RLMResult
    from rlm_router.rlm_core.litellm_api import Completion, ModelResponse, ModelResponseStream
    from rlm_router.router.judge import Judge
    from rlm_router.telemetry import Telemetry
    from rlm_router.telemetry.tracing import RequestTrace

__all__ = [
    "INNER_METADATA_KEY",
    "INNER_TAG",
    "RLM_PREFIX",
    "DispatchError",
    "DispatchSettings",
    "Dispatcher",
    "EscalationFailed",
    "LatencyBudgetExceeded",
    "RoutedStream",
]

log = logging.getLogger(__name__)

Decide = Callable[[Mapping[str, object], Mapping[str, str] | None], Decision]
DecideParsed = Callable[[ChatRequest], Decision]


# ── the dispatcher ────────────────────────────────────────────────────────────────────────


class Dispatcher:
    """Decides and dispatches chat completions; see the module docstring.

    ``completion`` is the async callable that reaches providers (``litellm.acompletion`` by
    default; the proxy passes its router's ``acompletion``). ``telemetry`` is a
    ``telemetry.Telemetry`` (anything with ``request_span()``) or None.
    """

    def __init__(
        self,
        *,
        decide: Decide,
        settings: DispatchSettings,
        completion: Completion | None = None,
        telemetry: Telemetry | None = None,
        decide_parsed: DecideParsed | None = None,
        judge: Judge | None = None,
    ) -> None:
        self._decide = decide
        self._decide_parsed = decide_parsed
        self.settings = settings
        self._completion = completion
        self._telemetry = telemetry
        # Grades a sampled share of answered (non-streamed) requests in the background.
        self.judge = judge

    # ── public API ──

    async def acompletion(self, **kwargs: object) -> ModelResponse | RoutedStream:
        """Route an OpenAI-style request; returns a ``ModelResponse`` or, with
        ``stream=True``, a ``RoutedStream`` of chunks.

        Raises ``router.request.InvalidRequest`` for a malformed request and
        ``DispatchError`` when no allowed route could answer.
        """
        started = time.monotonic()
        headers = headers_of(kwargs)
        check_params(kwargs)
        request = ChatRequest.parse(kwargs, headers)
        trace = self._start_trace(request.model, request.stream)
        try:
            t0 = time.perf_counter()
            decision = (
                self._decide_parsed(request)
                if self._decide_parsed is not None
                else self._decide(kwargs, headers)
            )
            trace.decision(decision, time.perf_counter() - t0)
        except BaseException as exc:
            trace.finish(None, exc)
            raise
        call = RequestCall(
            request=request,
            decision=decision,
            kwargs=kwargs,
            started=started,
            deadline=Deadline.from_budget(started, request.latency_budget_ms),
            trace=trace,
        )
        if request.stream:
            return await self._stream(call)
        try:
            served, outcome, raw = await self._serve(call)
        except BaseException as exc:
            trace.finish(failed_outcome(call, exc), exc)
            raise
        trace.finish(outcome)
        if self.judge is not None and outcome.error_type is None:
            self.judge.submit(decision.id, request.messages, served.text)
        response = raw if raw is not None else model_response(served, outcome.route)
        attach_route(response, outcome.route)
        return response

    async def serve_rlm(
        self,
        request: ChatRequest,
        decision: Decision,
        kwargs: Mapping[str, object],
        *,
        started: float | None = None,
        decided: Route = "rlm",
        trace: RequestTrace | None = None,
    ) -> tuple[Served, Outcome]:
        """Serve a request on the RLM route (with its fallbacks); for the proxy's ``CustomLLM``.

        ``decided`` is the route the decision chose: "llm" when the proxy fell back here after
        a context-window error on the direct route. ``trace`` is the request's trace from
        ``open_trace`` (the decision already recorded); ``started`` its monotonic start.
        """
        started = time.monotonic() if started is None else started
        call = RequestCall(
            request=request,
            decision=decision,
            kwargs=dict(kwargs),
            started=started,
            deadline=Deadline.from_budget(started, request.latency_budget_ms),
            trace=RequestTelemetry(trace)
            if trace is not None
            else self._start_trace(request.model),
        )
        if trace is None:
            call.trace.decision(decision, 0.0)
        fallback: Fallback = "llm_to_rlm" if decided == "llm" else "none"
        if fallback != "none":
            call.trace.fallback(fallback, "context window exceeded on the direct route")
        try:
            served, outcome = await self._rlm_first(call, fallback=fallback)
        except BaseException as exc:
            call.trace.finish(failed_outcome(call, exc), exc)
            raise
        call.trace.finish(outcome)
        return served, outcome

    def open_trace(
        self,
        decision: Decision,
        *,
        decide_s: float,
        model: str | None = None,
        stream: bool | None = None,
        started_ns: int | None = None,
    ) -> RequestTrace | None:
        """Start a request's trace with its decision recorded (None without telemetry).

        ``started_ns``: when the request arrived and deciding began (wall clock), for a
        trace opened after the decision (the proxy's hook), so the spans nest in time."""
        trace = self._start_trace(model, stream, started_ns)
        trace.decision(decision, decide_s, started_ns)
        return trace.trace

    def close_trace(
        self,
        trace: RequestTrace | None,
        outcome: Outcome | None,
        error: BaseException | None = None,
        *,
        end_time_ns: int | None = None,
    ) -> None:
        """Record a request's outcome (or error) and end its trace; never raises."""
        RequestTelemetry(trace).finish(outcome, error, end_time_ns=end_time_ns)

    # ── internals ──

    def _start_trace(
        self,
        model: str | None = None,
        stream: bool | None = None,
        started_ns: int | None = None,
    ) -> RequestTelemetry:
        if self._telemetry is None:
            return RequestTelemetry(None)
        try:
            # start_request, not request_span(): a streamed answer outlives this frame.
            return RequestTelemetry(
                self._telemetry.start_request(model=model, stream=stream, start_time_ns=started_ns)
            )
        except Exception:
            log.debug("telemetry request_span failed", exc_info=True)
            return RequestTelemetry(None)

    async def _serve(self, call: RequestCall) -> tuple[Served, Outcome, ModelResponse | None]:
        """Non-streaming: (served, outcome, the direct ModelResponse when it answered)."""
        if call.decision.route == "rlm":
            served, outcome = await self._rlm_first(call, fallback="none")
            return served, outcome, None
        try:
            response = await call_direct(self.settings, self._completion, call)
        except Exception as exc:
            if fallback_rule.after_direct_error(exc) == "raise":
                raise
            call.trace.fallback("llm_to_rlm", "context window exceeded", error_type(exc))
            served, outcome = await self._rlm_first(call, fallback="llm_to_rlm")
            return served, outcome, None
        served = served_from_response(response, cost_usd=response_cost(response))
        route = call.route("llm")
        return served, self._outcome(call, route, served), response

    def _outcome(
        self,
        call: RequestCall,
        route: RouteInfo,
        served: Served,
        result: RLMResult | None = None,
    ) -> Outcome:
        return Outcome(
            route=route,
            cost_usd=served.cost_usd,
            input_tokens=served.usage.input_tokens,
            output_tokens=served.usage.output_tokens,
            latency_ms=(time.monotonic() - call.started) * 1000.0,
            stopped_reason=stop_name(result) if result is not None else None,
            rlm_iterations=usage_int(result, "iterations"),
            rlm_sub_calls=usage_int(result, "sub_calls"),
        )

    # RLM route

    async def _rlm_first(self, call: RequestCall, *, fallback: Fallback) -> tuple[Served, Outcome]:
        """RLM, then (on failure, exhaustion or deadline) the direct route or the partial answer."""
        latency = self.settings.latency
        fits = call.fits_direct() and fallback != "llm_to_rlm"
        engine_deadline = call.deadline.at
        if engine_deadline is not None and latency.on_deadline == "direct" and fits:
            budget_s = (engine_deadline - call.started) if call.started else 0.0
            reserve = min(latency.direct_reserve_ms / 1000.0, budget_s / 2)
            engine_deadline -= reserve

        result: RLMResult | None = None
        partial: str | None = None
        stopped = "error"
        error: BaseException | None = None
        try:
            result = await run_engine(self.settings, self._completion, call, engine_deadline)
        except PartialAnswerError as exc:  # ProviderFailure: a model call failed for good
            error, partial, stopped = exc, exc.partial_answer, "provider_failure"
        except (RLMError, DispatchError) as exc:  # SandboxError (no REPL), a refused sub-call
            error, stopped = exc, "engine_error"
        except TimeoutError as exc:
            error, stopped = exc, "deadline"
        else:
            stopped = stop_name(result)
            partial = result.answer

        hit = fallback_rule.deadline_hit(
            stopped, engine_deadline=engine_deadline, now=time.monotonic()
        )
        action = fallback_rule.after_rlm(
            answered=result is not None and result.ok and result.answer is not None,
            deadline_hit=hit,
            fits=fits,
            on_deadline=latency.on_deadline,
            budget_partial=bool(partial) and result is not None and error is None,
        )
        if action == "answer" and result is not None and result.answer is not None:
            served = rlm_served(self.settings, result.answer, result, "stop")
            route = call.route("rlm", fallback=fallback)
            return served, self._outcome(call, route, served, result)
        spent = result_cost(result) + failure_cost(error)
        if action == "partial":
            return self._partial(call, partial, result, spent, fallback, "partial_at_deadline")
        if action == "direct":
            reason = f"RLM route ended without a final answer ({stopped})"
            call.trace.fallback("rlm_to_llm", reason, error_type(error) if error else None)
            try:
                response = await call_direct(self.settings, self._completion, call)
            except Exception as exc:
                if fallback_rule.after_fallback_direct_error(exc, deadline_hit=hit) == "partial":
                    return self._partial(
                        call, partial, result, spent, fallback, "partial_at_deadline"
                    )
                raise
            direct = served_from_response(response, cost_usd=response_cost(response))
            served = replace(
                direct,
                cost_usd=direct.cost_usd + spent,
                usage=TokenUsage(
                    input_tokens=direct.usage.input_tokens + usage_int0(result, "input_tokens"),
                    output_tokens=direct.usage.output_tokens + usage_int0(result, "output_tokens"),
                ),
            )
            degraded = "direct_at_deadline" if hit else None
            route = call.route("llm", fallback="rlm_to_llm", degraded=degraded)
            outcome = self._outcome(call, route, served, result)
            outcome.stopped_reason = stopped
            return served, outcome
        if action == "budget_partial":
            # Out of budget on an input no direct model can take: the best answer the run
            # reached, marked degraded with the reason, beats an error that loses it.
            return self._partial(
                call, partial, result, spent, fallback, "partial_at_budget", stopped=stopped
            )
        route = call.route("rlm", fallback=fallback)
        message = (
            f"the RLM route ended without a final answer ({stopped}) and the input does not fit "
            "the direct model's context window, so there is no fallback"
        )
        if partial:
            message += f"; partial answer: {partial[:500]!r}"
        raise EscalationFailed(message, partial_answer=partial, stopped_reason=stopped, route=route)

    def _partial(
        self,
        call: RequestCall,
        partial: str | None,
        result: RLMResult | None,
        spent: float,
        fallback: Fallback,
        degraded: str,
        *,
        stopped: str = "deadline",
    ) -> tuple[Served, Outcome]:
        served = rlm_served(self.settings, partial or "", result, "length")
        served = replace(served, cost_usd=spent)
        route = call.route("rlm", fallback=fallback, degraded=degraded)
        outcome = self._outcome(call, route, served, result)
        outcome.stopped_reason = stopped
        return served, outcome

    # streaming

    async def _stream(self, call: RequestCall) -> RoutedStream:
        """Direct streams pass through; the RLM route streams its answer when it has one."""
        if call.decision.route != "rlm":
            try:
                upstream = await call_direct(self.settings, self._completion, call, stream=True)
            except Exception as exc:
                if fallback_rule.after_direct_error(exc) == "raise":
                    call.trace.finish(failed_outcome(call, exc), exc)
                    raise
                call.trace.fallback("llm_to_rlm", "context window exceeded", error_type(exc))
                return self._rlm_stream(call, fallback="llm_to_rlm")
            route = call.route("llm")
            stream = RoutedStream(empty(), route)
            stream._chunks = self._pass_through(call, upstream, route, stream)
            return stream
        return self._rlm_stream(call, fallback="none")

    async def _pass_through(
        self,
        call: RequestCall,
        upstream: AsyncIterable[object],
        route: RouteInfo,
        stream: RoutedStream,
    ) -> AsyncIterator[object]:
        output_chars = 0
        usage: object = None
        error: BaseException | None = None
        try:
            async for chunk in upstream:
                usage = getattr(chunk, "usage", None) or usage
                for choice in getattr(chunk, "choices", ()) or ():
                    content = getattr(getattr(choice, "delta", None), "content", None)
                    output_chars += len(content or "")
                yield chunk
        except BaseException as exc:
            error = exc
            raise
        finally:
            outcome = Outcome(
                route=route,
                input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                latency_ms=(time.monotonic() - call.started) * 1000.0,
                error_type=error_type(error) if error is not None else None,
            )
            outcome.cost_usd = token_cost(
                self.settings.models.direct.model, outcome.input_tokens, outcome.output_tokens
            )
            stream.outcome = outcome
            call.trace.chat_done(call.direct_chat, error=error)
            call.trace.finish(outcome, error)

    def _rlm_stream(self, call: RequestCall, *, fallback: Fallback) -> RoutedStream:
        factory = ChunkFactory(model=f"{RLM_PREFIX}{self.settings.models.rlm_name}")
        stream = RoutedStream(empty(), call.route("rlm", fallback=fallback))
        stream._chunks = self._rlm_chunks(call, factory, stream, fallback)
        return stream

    async def _rlm_chunks(
        self, call: RequestCall, factory: ChunkFactory, stream: RoutedStream, fallback: Fallback
    ) -> AsyncIterator[ModelResponseStream]:
        # The role chunk goes out at once so clients and intermediaries see a live response;
        # keep-alive chunks follow while the engine works.
        yield factory.role()
        task = asyncio.ensure_future(self._rlm_first(call, fallback=fallback))
        try:
            async for _ in keepalives(task, self.settings.keepalive_s):
                yield factory.keepalive()
            try:
                served, outcome = task.result()
            except BaseException as exc:
                call.trace.finish(failed_outcome(call, exc), exc)
                raise
            attach_route(stream, outcome.route)
            stream.outcome = outcome
            call.trace.finish(outcome)
            for piece in split_text(served.text):
                yield factory.text(piece)
            yield factory.finish(served)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
