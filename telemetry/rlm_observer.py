"""Spans for an RLM run: the telemetry side of ``rlm_core.EngineObserver``.

::

    invoke_agent rlm                 (one per recursion node; depth 0 under the request span)
    └── rlm.iteration                (one per loop turn)
        ├── chat {root_model}        (the root model's turn, CLIENT)
        └── execute_tool repl        (one per executed code block)
            ├── chat {sub_model}     (llm_query sub-calls, rlm_router.inner=true)
            └── invoke_agent rlm     (rlm_query child run, depth + 1)

The engine reports model calls and REPL executions after they finish, but sub-calls and child
runs arrive while their REPL execution is still running. So the REPL span is opened at the
first thing that happens inside it, starting when the previous model call or execution of that
node ended (when the code started running), and ended when the execution is reported; an
execution with nothing inside is recorded after the fact from its duration.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from rlm_router.telemetry import semconv as sc
from rlm_router.telemetry.metrics import ChatCallMeasurement

if TYPE_CHECKING:
    from rlm_router.rlm_core.trajectory import Execution, Iteration, ModelCall, Node
    from rlm_router.telemetry.setup import Telemetry

ROLE_ROOT = "root"
ROLE_SUB = "sub"


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


@dataclass
class _NodeSpans:
    run: Span
    depth: int
    iteration: Span | None = None
    repl: Span | None = None
    # time.time() when the next REPL execution of this node can have started.
    cursor_s: float = field(default_factory=time.time)
    model_set: bool = False


class RLMTraceObserver:
    """Implements ``rlm_core.EngineObserver``: turns engine events into the span tree above.

    One observer per request (``RequestTrace.rlm_observer()``); it keeps the open spans of
    every recursion node, keyed by node id.
    """

    def __init__(self, telemetry: Telemetry, *, parent: otel_context.Context) -> None:
        self._telemetry = telemetry
        self._parent = parent
        self._nodes: dict[int, _NodeSpans] = {}
        self._lock = threading.Lock()
        self.calls = 0

    # -- EngineObserver -----------------------------------------------------------------------

    def on_run_start(self, node: Node) -> None:
        with self._lock:
            parent = self._parent
            if node.parent_id is not None and node.parent_id in self._nodes:
                parent = trace.set_span_in_context(self._repl_span(self._nodes[node.parent_id]))
            attributes = sc.drop_unset(
                {
                    sc.GEN_AI_OPERATION_NAME: sc.OPERATION_INVOKE_AGENT,
                    sc.GEN_AI_AGENT_NAME: sc.AGENT_NAME_RLM,
                    sc.RLM_DEPTH: node.depth,
                    sc.INNER: True if node.depth > 0 else None,
                    "rlm_router.rlm.context_chars": node.context_chars,
                }
            )
            if self._telemetry.capture_content:
                message = {"role": "user", "content": node.query}
                attributes[sc.GEN_AI_INPUT_MESSAGES] = sc.messages_attribute([message])
            span = self._telemetry.tracer.start_span(
                sc.SPAN_RLM_RUN, context=parent, kind=SpanKind.INTERNAL, attributes=attributes
            )
            self._nodes[node.node_id] = _NodeSpans(run=span, depth=node.depth)

    def on_run_end(self, node: Node, result: object | None, error: BaseException | None) -> None:
        with self._lock:
            state = self._nodes.pop(node.node_id, None)
            if state is None:
                return
            self._end_repl(state)
            if state.iteration is not None:
                state.iteration.end()
            span = state.run
            stopped = node.stopped_reason or _stopped_reason(result)
            usage = getattr(result, "usage", None)
            span.set_attributes(
                sc.drop_unset(
                    {
                        sc.OUTCOME_STOPPED_REASON: stopped,
                        sc.RLM_ITERATIONS: getattr(usage, "iterations", None),
                        sc.RLM_SUB_CALLS: getattr(usage, "sub_calls", None),
                        sc.GEN_AI_USAGE_INPUT_TOKENS: getattr(usage, "input_tokens", None),
                        sc.GEN_AI_USAGE_OUTPUT_TOKENS: getattr(usage, "output_tokens", None),
                        sc.COST_USD: getattr(usage, "cost_usd", None),
                    }
                )
            )
            if node.answer is not None and self._telemetry.capture_content:
                message = {"role": "assistant", "content": node.answer}
                span.set_attribute(sc.GEN_AI_OUTPUT_MESSAGES, sc.messages_attribute([message]))
            if error is not None:
                error_type = getattr(error, "error_type", "") or sc.error_type_of(error)
                span.set_attribute(sc.ERROR_TYPE, error_type)
                span.set_status(Status(StatusCode.ERROR, error_type))
            span.end()

    def on_iteration_start(self, node: Node, index: int) -> None:
        with self._lock:
            state = self._nodes.get(node.node_id)
            if state is None:
                return
            self._end_repl(state)
            if state.iteration is not None:
                state.iteration.end()
            state.iteration = self._telemetry.tracer.start_span(
                sc.SPAN_RLM_ITERATION,
                context=trace.set_span_in_context(state.run),
                kind=SpanKind.INTERNAL,
                attributes={sc.RLM_ITERATION_INDEX: index, sc.RLM_DEPTH: node.depth},
            )
            state.cursor_s = time.time()

    def on_iteration_end(self, node: Node, iteration: Iteration) -> None:
        with self._lock:
            state = self._nodes.get(node.node_id)
            if state is None or state.iteration is None:
                return
            self._end_repl(state)
            span = state.iteration
            span.set_attributes(
                {
                    sc.GEN_AI_USAGE_INPUT_TOKENS: iteration.input_tokens,
                    sc.GEN_AI_USAGE_OUTPUT_TOKENS: iteration.output_tokens,
                    sc.COST_USD: iteration.cost_usd,
                    "rlm_router.rlm.executions": len(iteration.executions),
                }
            )
            if iteration.feedback is not None:
                span.set_attribute("rlm_router.rlm.malformed", True)
            span.end()
            state.iteration = None

    def on_repl_execution(self, node: Node, execution: Execution) -> None:
        with self._lock:
            state = self._nodes.get(node.node_id)
            if state is None:
                return
            now = time.time()
            span = state.repl
            if span is None:  # nothing happened inside it: record it after the fact
                span = self._start_repl(state, start_s=now - execution.duration_s)
            span.set_attributes(
                sc.drop_unset(
                    {
                        sc.REPL_DURATION_MS: execution.duration_s * 1000.0,
                        "rlm_router.repl.subcall_ms": execution.subcall_s * 1000.0,
                        sc.RLM_SUB_CALLS: execution.sub_calls,
                        sc.REPL_TRUNCATED: execution.truncated,
                        sc.REPL_LIMIT: execution.limit,
                        sc.REPL_ERROR: self._error_summary(execution.error),
                    }
                )
            )
            if self._telemetry.capture_content:
                span.set_attribute("rlm_router.repl.code", execution.code)
                span.set_attribute("rlm_router.repl.output", execution.output)
            if execution.limit is not None:
                span.set_attribute(sc.ERROR_TYPE, f"limit:{execution.limit}")
                span.set_status(Status(StatusCode.ERROR, execution.limit))
            span.end(end_time=_ns(now))
            state.repl = None
            state.cursor_s = now

    def on_model_call(self, call: ModelCall) -> None:
        with self._lock:
            self.calls += 1
            state = self._nodes.get(call.node_id)
            inner = call.role == ROLE_SUB or call.depth > 0
            if state is None:
                parent = self._parent
            elif call.role == ROLE_SUB and state.iteration is not None:
                parent = trace.set_span_in_context(self._repl_span(state, call.started_s))
            else:
                parent = trace.set_span_in_context(state.iteration or state.run)
            if state is not None and call.role == ROLE_ROOT and not state.model_set:
                state.run.set_attribute(sc.GEN_AI_REQUEST_MODEL, call.model)
                state.model_set = True
            end_s = call.started_s + call.duration_s
            span = self._telemetry.tracer.start_span(
                sc.chat_span_name(call.model),
                context=parent,
                kind=SpanKind.CLIENT,
                attributes={
                    **sc.chat_request_attributes(
                        model=call.model, provider=call.provider or None, inner=inner
                    ),
                    **sc.chat_response_attributes(
                        input_tokens=call.input_tokens,
                        output_tokens=call.output_tokens,
                        cost_usd=call.cost_usd,
                    ),
                    sc.RLM_ROLE: call.role,
                    sc.RLM_DEPTH: call.depth,
                    "rlm_router.attempts": call.attempts,
                },
                start_time=_ns(call.started_s),
            )
            if call.error_type:
                span.set_attribute(sc.ERROR_TYPE, call.error_type)
                span.set_status(Status(StatusCode.ERROR, call.error_type))
            span.end(end_time=_ns(end_s))
            if state is not None and call.role == ROLE_ROOT:
                state.cursor_s = max(state.cursor_s, end_s)
        self._telemetry.metrics.chat_call(
            ChatCallMeasurement(
                model=call.model,
                provider=call.provider or None,
                duration_s=call.duration_s,
                input_tokens=call.input_tokens,
                output_tokens=call.output_tokens,
                error_type=call.error_type,
                inner=inner,
            )
        )

    def close(self) -> None:
        """End every span still open (a run cancelled before the engine reported its end)."""
        with self._lock:
            nodes, self._nodes = list(self._nodes.values()), {}
        for state in reversed(nodes):  # children were started after their parents
            self._end_repl(state)
            if state.iteration is not None:
                state.iteration.end()
            state.run.set_attribute(sc.ERROR_TYPE, "cancelled")
            state.run.set_status(Status(StatusCode.ERROR, "run did not report its end"))
            state.run.end()

    # -- helpers ------------------------------------------------------------------------------

    def _repl_span(self, state: _NodeSpans, not_after_s: float | None = None) -> Span:
        if state.repl is None:
            start = state.cursor_s if not_after_s is None else min(state.cursor_s, not_after_s)
            state.repl = self._start_repl(state, start_s=start)
        return state.repl

    def _start_repl(self, state: _NodeSpans, *, start_s: float) -> Span:
        parent = state.iteration or state.run
        return self._telemetry.tracer.start_span(
            sc.SPAN_REPL,
            context=trace.set_span_in_context(parent),
            kind=SpanKind.INTERNAL,
            attributes={
                sc.GEN_AI_OPERATION_NAME: sc.OPERATION_EXECUTE_TOOL,
                sc.GEN_AI_TOOL_NAME: sc.TOOL_NAME_REPL,
                sc.RLM_DEPTH: state.depth,
            },
            start_time=_ns(start_s),
        )

    def _error_summary(self, error: str | None) -> str | None:
        """A REPL error's last line; its message (may quote data) only with capture on."""
        if not error:
            return None
        lines = error.strip().splitlines()
        last = lines[-1] if lines else ""
        if not self._telemetry.capture_content:
            last = last.partition(":")[0]
        return last[:200]

    def _end_repl(self, state: _NodeSpans) -> None:
        if state.repl is not None:
            state.repl.end()
            state.repl = None


def _stopped_reason(result: object | None) -> str | None:
    reason = getattr(result, "stopped_reason", None)
    if reason is None:
        return None
    value = getattr(reason, "value", reason)
    return str(value)
