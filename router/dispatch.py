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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from policies.decision import Decision
from rlm_core import litellm_api
from rlm_core.errors import (
    PartialAnswerError,
    ProviderError,
    ProviderFailure,
    RLMError,
)
from rlm_core.litellm_api import response_cost, token_cost
from rlm_core.provider import call_with_retries
from router import fallback as fallback_rule
from router.dispatch_settings import DispatchSettings
from router.errors import DispatchError, EscalationFailed, LatencyBudgetExceeded
from router.outcome import Outcome, RequestTelemetry, reason_of
from router.request import ChatRequest
from router.responses import (
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
from router.streaming import RoutedStream, empty, keepalives

if TYPE_CHECKING:
    from rlm_core import RLMResult
    from rlm_core.litellm_api import Completion, ModelResponse, ModelResponseStream
    from telemetry import Telemetry
    from telemetry.tracing import ChatCall, RequestTrace

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

INNER_METADATA_KEY = "rlm_router_inner"
INNER_TAG = "rlm-router:inner"
RLM_PREFIX = "rlm/"
# Keyword arguments of litellm.acompletion that describe the request rather than the target.
Decide = Callable[[Mapping[str, Any], Mapping[str, str] | None], Decision]
DecideParsed = Callable[[ChatRequest], Decision]
_TARGET_KEYS = ("model", "api_base", "base_url", "api_key", "custom_llm_provider")


@dataclass
class _Deadline:
    """A monotonic deadline; ``None`` means no latency budget."""

    at: float | None

    @classmethod
    def from_budget(cls, started: float, budget_ms: float | None) -> _Deadline:
        return cls(None if budget_ms is None else started + budget_ms / 1000.0)

    def remaining(self) -> float | None:
        return None if self.at is None else self.at - time.monotonic()


# ── the dispatcher ────────────────────────────────────────────────────────────────────────


def _error_type(exc: BaseException) -> str:
    """``error.type`` of a failure: a provider error names the provider's own class."""
    return exc.error_type if isinstance(exc, ProviderError) else type(exc).__name__


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
    ) -> None:
        self._decide = decide
        self._decide_parsed = decide_parsed
        self.settings = settings
        self._completion = completion
        self._telemetry = telemetry

    # ── public API ──

    async def acompletion(self, **kwargs: object) -> ModelResponse | RoutedStream:
        """Route an OpenAI-style request; returns a ``ModelResponse`` or, with
        ``stream=True``, a ``RoutedStream`` of chunks.

        Raises ``router.request.InvalidRequest`` for a malformed request and
        ``DispatchError`` when no allowed route could answer.
        """
        started = time.monotonic()
        headers = _headers_of(kwargs)
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
        call = _CallContext(
            request=request,
            decision=decision,
            kwargs=kwargs,
            started=started,
            deadline=_Deadline.from_budget(started, request.latency_budget_ms),
            trace=trace,
        )
        if request.stream:
            return await self._stream(call)
        try:
            served, outcome, raw = await self._serve(call)
        except BaseException as exc:
            trace.finish(_failed_outcome(call, exc), exc)
            raise
        trace.finish(outcome)
        response = raw if raw is not None else model_response(served, outcome.route)
        attach_route(response, outcome.route)
        return response

    async def serve_rlm(
        self,
        request: ChatRequest,
        decision: Decision,
        kwargs: Mapping[str, Any],
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
        call = _CallContext(
            request=request,
            decision=decision,
            kwargs=dict(kwargs),
            started=started,
            deadline=_Deadline.from_budget(started, request.latency_budget_ms),
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
            call.trace.finish(_failed_outcome(call, exc), exc)
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
    ) -> RequestTrace | None:
        """Start a request's trace with its decision recorded (None without telemetry)."""
        trace = self._start_trace(model, stream)
        trace.decision(decision, decide_s)
        return trace.trace

    def close_trace(
        self,
        trace: RequestTrace | None,
        outcome: Outcome | None,
        error: BaseException | None = None,
    ) -> None:
        """Record a request's outcome (or error) and end its trace; never raises."""
        RequestTelemetry(trace).finish(outcome, error)

    # ── internals ──

    def _start_trace(
        self, model: str | None = None, stream: bool | None = None
    ) -> RequestTelemetry:
        if self._telemetry is None:
            return RequestTelemetry(None)
        try:
            # start_request, not request_span(): a streamed answer outlives this frame.
            return RequestTelemetry(self._telemetry.start_request(model=model, stream=stream))
        except Exception:
            log.debug("telemetry request_span failed", exc_info=True)
            return RequestTelemetry(None)

    def _route(self, call: _CallContext, served: Route, **changes: Any) -> RouteInfo:
        decision = call.decision
        info = RouteInfo(
            decision_id=decision.id,
            route=served,
            decided="rlm" if decision.route == "rlm" else "llm",
            reason=reason_of(decision),
            score=decision.score,
        )
        return replace(info, **changes) if changes else info

    async def _serve(self, call: _CallContext) -> tuple[Served, Outcome, ModelResponse | None]:
        """Non-streaming: (served, outcome, the direct ModelResponse when it answered)."""
        if call.decision.route == "rlm":
            served, outcome = await self._rlm_first(call, fallback="none")
            return served, outcome, None
        try:
            response = await self._direct(call)
        except Exception as exc:
            if fallback_rule.after_direct_error(exc) == "raise":
                raise
            call.trace.fallback("llm_to_rlm", "context window exceeded", _error_type(exc))
            served, outcome = await self._rlm_first(call, fallback="llm_to_rlm")
            return served, outcome, None
        served = served_from_response(response, cost_usd=response_cost(response))
        route = self._route(call, "llm")
        return served, self._outcome(call, route, served), response

    def _fits_direct(self, call: _CallContext) -> bool:
        features = call.decision.features
        if features.context_window > 0:
            return features.n_tokens < features.context_window
        return True

    def _outcome(
        self,
        call: _CallContext,
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
            stopped_reason=_stop_name(result) if result is not None else None,
            rlm_iterations=_usage_int(result, "iterations"),
            rlm_sub_calls=_usage_int(result, "sub_calls"),
        )

    # direct route

    def _direct_kwargs(self, call: _CallContext, *, stream: bool) -> dict[str, Any]:
        spec = self.settings.models.direct
        kwargs = {k: v for k, v in call.kwargs.items() if k not in _TARGET_KEYS}
        kwargs["model"] = spec.model
        if spec.api_base is not None:
            kwargs["api_base"] = spec.api_base
        if spec.api_key is not None:
            kwargs["api_key"] = spec.api_key
        kwargs["stream"] = stream
        # Retries are ours (RetryPolicy, bounded by the deadline), not the SDK's.
        kwargs.setdefault("num_retries", 0)
        kwargs.setdefault("max_retries", 0)
        return kwargs

    async def _direct(self, call: _CallContext, *, stream: bool = False) -> Any:
        """One direct call (retried per policy on provider errors), bounded by the deadline."""
        kwargs = self._direct_kwargs(call, stream=stream)
        retry = self.settings.retry
        model = str(kwargs["model"])
        chat = call.trace.chat(model, call.request.messages)
        if chat is not None:
            with contextlib.suppress(Exception):
                kwargs["metadata"] = {**(kwargs.get("metadata") or {}), **chat.litellm_metadata()}

        async def attempt(n: int) -> Any:
            remaining = call.deadline.remaining()
            if remaining is not None and remaining <= 0:
                raise LatencyBudgetExceeded(
                    "latency budget exhausted before the direct call could start",
                    route=self._route(call, "llm"),
                )
            # litellm caches its HTTP client per timeout value: a deadline-derived timeout
            # would build a new client and connection per request. A non-streaming call gets
            # the fixed timeout and the deadline from asyncio; a stream's reads are bounded by
            # the client timeout itself, so it keeps the deadline there.
            kwargs["timeout"] = (
                min(remaining, retry.timeout_s) if stream and remaining else retry.timeout_s
            )
            return await self._call_within(None if stream else remaining, kwargs)

        try:
            response = await call_with_retries(
                attempt, retry=retry, model=model, remaining_s=call.deadline.remaining
            )
        except Exception as exc:
            call.trace.chat_done(chat, error=exc)
            raise
        if stream:
            call.direct_chat = chat
        else:
            call.trace.chat_done(chat, response=response)
        return response

    async def _call_within(self, seconds: float | None, kwargs: dict[str, Any]) -> Any:
        """The direct call, bounded by ``seconds``; overrunning raises ``ProviderTimeout``."""
        try:
            async with asyncio.timeout(seconds):
                return await self._completion_fn()(**kwargs)
        except TimeoutError as exc:
            if seconds is None:  # not our deadline
                raise
            raise litellm_api.timeout_error(
                f"rlm-router: latency budget reached after {seconds:.3f}s",
                model=str(kwargs.get("model")),
            ) from exc

    def _completion_fn(self) -> Completion:
        return self._completion or litellm_api.acompletion

    # RLM route

    def _inner_completion(self, decision_id: str) -> Completion:
        """The engine's model calls: marked as inner, never routed back into ``rlm/*``."""
        completion = self._completion_fn()

        async def inner(**kwargs: Any) -> Any:
            model = str(kwargs.get("model", ""))
            if model.startswith(RLM_PREFIX):
                raise DispatchError(f"an RLM sub-call may not target {model!r} (would recurse)")
            metadata = dict(kwargs.get("metadata") or {})
            metadata[INNER_METADATA_KEY] = True
            metadata["rlm_router_decision_id"] = decision_id
            # For LiteLLM loggers that filter on tags (Langfuse, spend-by-tag reports).
            metadata["tags"] = [*metadata.get("tags", ()), INNER_TAG]
            kwargs["metadata"] = metadata
            return await completion(**kwargs)

        return inner

    async def _run_engine(self, call: _CallContext, deadline: float | None) -> RLMResult:
        engine = self.settings.engine(
            observer=call.trace.observer(),
            completion=self._inner_completion(call.decision.id),
        )
        run = engine.acompletion(
            call.request.question, call.request.context_text, deadline=deadline
        )
        if deadline is None:
            return await run
        grace = self.settings.latency.grace_ms / 1000.0
        return await asyncio.wait_for(run, timeout=max(0.0, deadline - time.monotonic()) + grace)

    async def _rlm_first(self, call: _CallContext, *, fallback: Fallback) -> tuple[Served, Outcome]:
        """RLM, then (on failure, exhaustion or deadline) the direct route or the partial answer."""
        latency = self.settings.latency
        fits = self._fits_direct(call) and fallback != "llm_to_rlm"
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
            result = await self._run_engine(call, engine_deadline)
        except PartialAnswerError as exc:  # ProviderFailure: a model call failed for good
            error, partial, stopped = exc, exc.partial_answer, "provider_failure"
        except (RLMError, DispatchError) as exc:  # SandboxError (no REPL), a refused sub-call
            error, stopped = exc, "engine_error"
        except TimeoutError as exc:
            error, stopped = exc, "deadline"
        else:
            stopped = _stop_name(result)
            partial = result.answer

        hit = fallback_rule.deadline_hit(
            stopped, engine_deadline=engine_deadline, now=time.monotonic()
        )
        action = fallback_rule.after_rlm(
            answered=result is not None and result.ok and result.answer is not None,
            deadline_hit=hit,
            fits=fits,
            on_deadline=latency.on_deadline,
        )
        if action == "answer" and result is not None and result.answer is not None:
            served = self._rlm_served(call, result.answer, result, "stop")
            route = self._route(call, "rlm", fallback=fallback)
            return served, self._outcome(call, route, served, result)
        spent = _result_cost(result) + _failure_cost(error)
        if action == "partial":
            return self._partial(call, partial, result, spent, fallback, "partial_at_deadline")
        if action == "direct":
            reason = f"RLM route ended without a final answer ({stopped})"
            call.trace.fallback("rlm_to_llm", reason, _error_type(error) if error else None)
            try:
                response = await self._direct(call)
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
                    input_tokens=direct.usage.input_tokens + _usage_int0(result, "input_tokens"),
                    output_tokens=direct.usage.output_tokens + _usage_int0(result, "output_tokens"),
                ),
            )
            degraded = "direct_at_deadline" if hit else None
            route = self._route(call, "llm", fallback="rlm_to_llm", degraded=degraded)
            outcome = self._outcome(call, route, served, result)
            outcome.stopped_reason = stopped
            return served, outcome
        route = self._route(call, "rlm", fallback=fallback)
        message = (
            f"the RLM route ended without a final answer ({stopped}) and the input does not fit "
            "the direct model's context window, so there is no fallback"
        )
        if partial:
            message += f"; partial answer: {partial[:500]!r}"
        raise EscalationFailed(message, partial_answer=partial, stopped_reason=stopped, route=route)

    def _partial(
        self,
        call: _CallContext,
        partial: str | None,
        result: RLMResult | None,
        spent: float,
        fallback: Fallback,
        degraded: str,
    ) -> tuple[Served, Outcome]:
        served = self._rlm_served(call, partial or "", result, "length")
        served = replace(served, cost_usd=spent)
        route = self._route(call, "rlm", fallback=fallback, degraded=degraded)
        outcome = self._outcome(call, route, served, result)
        outcome.stopped_reason = "deadline"
        return served, outcome

    def _rlm_served(
        self, call: _CallContext, text: str, result: RLMResult | None, finish_reason: str
    ) -> Served:
        return Served(
            text=text,
            model=f"{RLM_PREFIX}{self.settings.models.rlm_name}",
            finish_reason=finish_reason,
            usage=TokenUsage(
                input_tokens=_usage_int0(result, "input_tokens"),
                output_tokens=_usage_int0(result, "output_tokens"),
            ),
            cost_usd=_result_cost(result),
        )

    # streaming

    async def _stream(self, call: _CallContext) -> RoutedStream:
        """Direct streams pass through; the RLM route streams its answer when it has one."""
        if call.decision.route != "rlm":
            try:
                upstream = await self._direct(call, stream=True)
            except Exception as exc:
                if fallback_rule.after_direct_error(exc) == "raise":
                    call.trace.finish(_failed_outcome(call, exc), exc)
                    raise
                call.trace.fallback("llm_to_rlm", "context window exceeded", _error_type(exc))
                return self._rlm_stream(call, fallback="llm_to_rlm")
            route = self._route(call, "llm")
            stream = RoutedStream(empty(), route)
            stream._chunks = self._pass_through(call, upstream, route, stream)
            return stream
        return self._rlm_stream(call, fallback="none")

    async def _pass_through(
        self, call: _CallContext, upstream: Any, route: RouteInfo, stream: RoutedStream
    ) -> AsyncIterator[Any]:
        output_chars = 0
        usage: Any = None
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
                error_type=_error_type(error) if error is not None else None,
            )
            outcome.cost_usd = token_cost(
                self.settings.models.direct.model, outcome.input_tokens, outcome.output_tokens
            )
            stream.outcome = outcome
            call.trace.chat_done(call.direct_chat, error=error)
            call.trace.finish(outcome, error)

    def _rlm_stream(self, call: _CallContext, *, fallback: Fallback) -> RoutedStream:
        factory = ChunkFactory(model=f"{RLM_PREFIX}{self.settings.models.rlm_name}")
        stream = RoutedStream(empty(), self._route(call, "rlm", fallback=fallback))
        stream._chunks = self._rlm_chunks(call, factory, stream, fallback)
        return stream

    async def _rlm_chunks(
        self, call: _CallContext, factory: ChunkFactory, stream: RoutedStream, fallback: Fallback
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
                call.trace.finish(_failed_outcome(call, exc), exc)
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


@dataclass
class _CallContext:
    request: ChatRequest
    decision: Decision
    kwargs: Mapping[str, Any]
    started: float
    deadline: _Deadline
    trace: RequestTelemetry
    direct_chat: ChatCall | None = None


def _headers_of(kwargs: Mapping[str, Any]) -> dict[str, str] | None:
    headers = kwargs.get("extra_headers") or kwargs.get("headers")
    if isinstance(headers, Mapping):
        return {str(k): str(v) for k, v in headers.items()}
    return None


def _stop_name(result: RLMResult | None) -> str:
    return "error" if result is None else result.stopped_reason.value.lower()


def _usage_int(result: RLMResult | None, name: str) -> int | None:
    return None if result is None else int(getattr(result.usage, name))


def _usage_int0(result: RLMResult | None, name: str) -> int:
    return _usage_int(result, name) or 0


def _result_cost(result: RLMResult | None) -> float:
    return 0.0 if result is None else result.usage.cost_usd


def _failure_cost(error: BaseException | None) -> float:
    """What a failed RLM run spent before failing: the calls of its trajectory.

    (Read before as ``trajectory.cost_usd``, which does not exist, so it was always 0.)
    """
    if isinstance(error, ProviderFailure) and error.trajectory is not None:
        return sum(call.cost_usd for call in error.trajectory.calls)
    return 0.0


def _failed_outcome(call: _CallContext, exc: BaseException) -> Outcome:
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
        error_type=_error_type(exc),
        stopped_reason=exc.stopped_reason if isinstance(exc, PartialAnswerError) else None,
    )
