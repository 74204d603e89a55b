"""RLMTraceObserver: the engine's events (rlm_core.trajectory records) become the RLM span tree.

The events are fed in the order rlm_core.loop emits them: run start, iteration start, the root
call (reported when it returns), sub-calls and child runs while a REPL block runs, the REPL
execution, iteration end, run end.
"""

from __future__ import annotations

import time

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from rlm_router.rlm_core import EngineObserver
from rlm_router.rlm_core.budget import StopReason, Usage
from rlm_router.rlm_core.trajectory import Execution, Iteration, ModelCall, Node
from rlm_router.telemetry import semconv as sc
from tests.telemetry.telemetry_support import SampleDecision, Wired


class _Result:
    """The fields of rlm_core.RLMResult the observer reads."""

    def __init__(self) -> None:
        self.stopped_reason = StopReason.FINAL
        self.usage = Usage(input_tokens=900, output_tokens=90, cost_usd=0.02, sub_calls=3)
        self.usage.iterations = 3


def _call(
    node: Node, role: str, model: str, started: float, *, error: str | None = None
) -> ModelCall:
    return ModelCall(
        node.node_id, node.depth, role, model, "openai", 100, 10, 0.001, started, 0.01,
        error_type=error,
    )  # fmt: skip


def _escalated_request(wired: Wired) -> None:
    with wired.telemetry.request_span(model="auto") as req:
        req.decision(SampleDecision(route="rlm", score=0.9))
        observer = req.rlm_observer()
        assert isinstance(observer, EngineObserver)
        root = Node(0, None, 0, "SECRET-QUERY", 50_000)
        observer.on_run_start(root)
        # Iteration 0: root turn, then a REPL block with two sub-calls and a child RLM.
        observer.on_iteration_start(root, 0)
        observer.on_model_call(_call(root, "root", "openai/sim-large", time.time()))
        observer.on_model_call(_call(root, "sub", "openai/sim-mini", time.time()))
        child = Node(1, 0, 1, "SECRET-CHILD-QUERY", 5_000)
        observer.on_run_start(child)
        observer.on_iteration_start(child, 0)
        observer.on_model_call(_call(child, "root", "openai/sim-large", time.time()))
        child_iteration = Iteration(1, 1, 0, "FINAL(x)")
        observer.on_iteration_end(child, child_iteration)
        observer.on_run_end(child, None, None)
        observer.on_model_call(
            _call(root, "sub", "openai/sim-mini", time.time(), error="RateLimitError")
        )
        execution = Execution(
            "SECRET-CODE", "SECRET-OUTPUT", "Traceback...\nKeyError: 'SECRET-KEY'", 0.05, 0.03,
            False, None, 3,
        )  # fmt: skip
        observer.on_repl_execution(root, execution)
        iteration = Iteration(0, 0, 0, "SECRET-REPLY", [execution], 100, 10, 0.001)
        observer.on_iteration_end(root, iteration)
        # Iteration 1: a block with no sub-calls (recorded after the fact), then the final.
        observer.on_iteration_start(root, 1)
        observer.on_model_call(_call(root, "root", "openai/sim-large", time.time()))
        observer.on_repl_execution(
            root, Execution("print(1)", "1", None, 0.01, 0.0, True, "output", 0)
        )
        observer.on_iteration_end(root, Iteration(0, 0, 1, "FINAL(42)"))
        root.stopped_reason, root.answer = "final", "SECRET-ANSWER"
        observer.on_run_end(root, _Result(), None)
        req.outcome(route_served="rlm", cost_usd=0.02, rlm_iterations=3, rlm_sub_calls=3)


def _children(wired: Wired, parent: ReadableSpan) -> list[ReadableSpan]:
    return sorted(
        (s for s in wired.finished() if s.parent and s.parent.span_id == parent.context.span_id),
        key=lambda s: s.start_time or 0,
    )


def test_span_tree_of_an_escalated_request(wired: Wired) -> None:
    _escalated_request(wired)
    request = wired.one(sc.SPAN_REQUEST)
    assert [s.name for s in _children(wired, request)] == [sc.SPAN_DECIDE, sc.SPAN_RLM_RUN]
    runs = wired.by_name(sc.SPAN_RLM_RUN)
    root_run = next(s for s in runs if dict(s.attributes or {})[sc.RLM_DEPTH] == 0)
    iterations = _children(wired, root_run)
    assert [s.name for s in iterations] == [sc.SPAN_RLM_ITERATION] * 2
    first, second = iterations
    assert [s.name for s in _children(wired, first)] == ["chat openai/sim-large", sc.SPAN_REPL]
    repl = _children(wired, first)[1]
    inside = _children(wired, repl)
    assert [s.name for s in inside] == [
        "chat openai/sim-mini",
        sc.SPAN_RLM_RUN,
        "chat openai/sim-mini",
    ]
    for sub in (inside[0], inside[2]):
        assert dict(sub.attributes or {})[sc.INNER] is True
        assert sub.kind is SpanKind.CLIENT
    assert dict(inside[2].attributes or {})[sc.ERROR_TYPE] == "RateLimitError"
    assert inside[2].status.status_code is StatusCode.ERROR
    child_run = inside[1]
    assert dict(child_run.attributes or {})[sc.RLM_DEPTH] == 1
    child_iteration = _children(wired, child_run)[0]
    assert [s.name for s in _children(wired, child_iteration)] == ["chat openai/sim-large"]
    root_chat = _children(wired, first)[0]
    assert sc.INNER not in dict(root_chat.attributes or {})  # the root's own turn
    # The REPL span covers what ran inside it.
    assert repl.start_time is not None and repl.end_time is not None
    assert all(repl.start_time <= (s.start_time or 0) for s in inside)
    # The second iteration's block had nothing inside: recorded from its duration.
    (late_repl,) = [s for s in _children(wired, second) if s.name == sc.SPAN_REPL]
    assert dict(late_repl.attributes or {})[sc.REPL_LIMIT] == "output"
    assert dict(late_repl.attributes or {})[sc.REPL_TRUNCATED] is True
    assert late_repl.status.status_code is StatusCode.ERROR


def test_rlm_attributes_and_no_content_by_default(wired: Wired) -> None:
    _escalated_request(wired)
    root_run = next(
        s for s in wired.by_name(sc.SPAN_RLM_RUN) if dict(s.attributes or {})[sc.RLM_DEPTH] == 0
    )
    attrs = dict(root_run.attributes or {})
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert attrs[sc.GEN_AI_AGENT_NAME] == "rlm"
    assert attrs[sc.GEN_AI_REQUEST_MODEL] == "openai/sim-large"
    assert attrs[sc.OUTCOME_STOPPED_REASON] == "final"
    assert attrs[sc.RLM_ITERATIONS] == 3
    assert attrs[sc.RLM_SUB_CALLS] == 3
    assert attrs[sc.COST_USD] == 0.02
    repl = wired.by_name(sc.SPAN_REPL)[0]
    assert dict(repl.attributes or {})[sc.REPL_ERROR] == "KeyError"  # not the message
    for span in wired.finished():
        for key, value in (span.attributes or {}).items():
            assert "SECRET" not in str(value), (span.name, key)


def test_rlm_content_when_opted_in(wired_capture: Wired) -> None:
    _escalated_request(wired_capture)
    values = [str(v) for s in wired_capture.finished() for v in (s.attributes or {}).values()]
    for secret in ("SECRET-QUERY", "SECRET-ANSWER", "SECRET-CODE", "SECRET-OUTPUT", "SECRET-KEY"):
        assert any(secret in v for v in values), secret


def test_rlm_metrics(wired: Wired) -> None:
    _escalated_request(wired)
    durations = wired.metric_points("gen_ai.client.operation.duration")
    calls = sum(point.count for _, point in durations)  # type: ignore[attr-defined]
    assert calls == 5
    errors = [labels for labels, _ in durations if sc.ERROR_TYPE in labels]
    assert errors == [
        {
            sc.GEN_AI_OPERATION_NAME: "chat",
            sc.GEN_AI_PROVIDER_NAME: "openai",
            sc.GEN_AI_REQUEST_MODEL: "openai/sim-mini",
            sc.ERROR_TYPE: "RateLimitError",
            sc.INNER: True,
        }
    ]
    ((labels, iterations),) = wired.metric_points("rlm_router.rlm.iterations")
    assert labels == {sc.ROUTE_SERVED: "rlm"} and iterations.sum == 3  # type: ignore[attr-defined]


def test_cancelled_run_spans_are_closed_with_the_request(wired: Wired) -> None:
    with wired.telemetry.request_span() as req:
        observer = req.rlm_observer()
        node = Node(0, None, 0, "q", 10)
        observer.on_run_start(node)
        observer.on_iteration_start(node, 0)
        observer.on_model_call(_call(node, "sub", "openai/sim-mini", time.time()))
    run = wired.one(sc.SPAN_RLM_RUN)
    assert run.status.status_code is StatusCode.ERROR
    assert len(wired.by_name(sc.SPAN_REPL)) == 1
    assert len(wired.by_name(sc.SPAN_RLM_ITERATION)) == 1
