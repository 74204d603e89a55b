"""The span tree and metrics of a direct request, through the public tracing API."""

from __future__ import annotations

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from rlm_router.telemetry import semconv as sc
from tests.telemetry.telemetry_support import SampleDecision, Wired

MESSAGES = [{"role": "user", "content": "SECRET-PROMPT what is 2+2?"}]


def _direct_request(wired: Wired, *, decision: SampleDecision | None = None) -> None:
    with wired.telemetry.request_span(model="auto") as req:
        req.decision(decision or SampleDecision(), duration_s=0.002)
        with req.chat(model="openai/sim-large", messages=MESSAGES) as call:
            call.record_response(
                response_model="sim-large",
                response_id="chatcmpl-1",
                finish_reasons=["stop"],
                input_tokens=12,
                output_tokens=3,
                cost_usd=0.00005,
                output_text="SECRET-ANSWER 4",
            )
        req.outcome(
            route_served="llm",
            cost_usd=0.00005,
            input_tokens=12,
            output_tokens=3,
            stopped_reason="stop",
        )


def test_direct_request_span_tree(wired: Wired) -> None:
    _direct_request(wired)
    root = wired.one(sc.SPAN_REQUEST)
    decide = wired.one(sc.SPAN_DECIDE)
    chat = wired.one("chat openai/sim-large")
    assert root.parent is None
    assert root.kind is SpanKind.INTERNAL
    assert decide.parent is not None and decide.parent.span_id == root.context.span_id
    assert chat.parent is not None and chat.parent.span_id == root.context.span_id
    assert {s.context.trace_id for s in wired.finished()} == {root.context.trace_id}
    assert chat.kind is SpanKind.CLIENT
    assert decide.end_time - decide.start_time == pytest.approx(2_000_000, rel=0.01)


def test_decision_attributes(wired: Wired) -> None:
    _direct_request(wired, decision=SampleDecision(exploration=True, propensity=0.05))
    attrs = dict(wired.one(sc.SPAN_DECIDE).attributes or {})
    assert attrs[sc.DECISION_ID] == "d-1"
    assert attrs[sc.DECISION_ROUTE] == "llm"
    assert attrs[sc.DECISION_SCORE] == 0.25
    assert attrs[sc.DECISION_THRESHOLD] == 0.5
    assert attrs[sc.DECISION_POLICY_VERSION] == "default@1"
    assert attrs[sc.DECISION_EXPLORATION] is True
    assert attrs[sc.DECISION_PROPENSITY] == 0.05
    assert attrs["rlm_router.feature.input_tokens"] == 1200
    assert attrs["rlm_router.feature.stream"] is False
    assert sc.DECISION_RULE not in attrs  # unset values are dropped, not written as ""


def test_chat_and_outcome_attributes(wired: Wired) -> None:
    _direct_request(wired)
    chat = dict(wired.one("chat openai/sim-large").attributes or {})
    assert chat[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert chat[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert chat[sc.GEN_AI_REQUEST_MODEL] == "openai/sim-large"
    assert chat[sc.GEN_AI_RESPONSE_MODEL] == "sim-large"
    assert chat[sc.GEN_AI_USAGE_INPUT_TOKENS] == 12
    assert chat[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 3
    assert chat[sc.COST_USD] == pytest.approx(0.00005)
    assert tuple(chat[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ("stop",)  # type: ignore[arg-type]
    assert sc.INNER not in chat and sc.ERROR_TYPE not in chat
    root = dict(wired.one(sc.SPAN_REQUEST).attributes or {})
    assert root[sc.DECISION_ID] == "d-1"
    assert root[sc.ROUTE_SERVED] == "llm"
    assert root[sc.FALLBACK] == "none"
    assert root[sc.OUTCOME_COST_USD] == pytest.approx(0.00005)
    assert root[sc.OUTCOME_LATENCY_MS] >= 0  # type: ignore[operator]
    assert root[sc.OUTCOME_INPUT_TOKENS] == 12
    assert root[sc.OUTCOME_STOPPED_REASON] == "stop"
    assert sc.OUTCOME_ERROR_TYPE not in root and sc.OUTCOME_QUALITY not in root


def test_token_usage_buckets_are_the_genai_semconv_ones(wired: Wired) -> None:
    _direct_request(wired)
    points = wired.metric_points("gen_ai.client.token.usage")
    assert points
    for _, point in points:
        bounds = tuple(point.explicit_bounds)  # type: ignore[attr-defined]
        assert bounds == tuple(4**k for k in range(14))  # 1, 4, ..., 67108864
        assert bounds[-1] == 67_108_864


def test_no_message_content_by_default(wired: Wired) -> None:
    _direct_request(wired)
    for span in wired.finished():
        attrs = dict(span.attributes or {})
        assert sc.GEN_AI_INPUT_MESSAGES not in attrs
        assert sc.GEN_AI_OUTPUT_MESSAGES not in attrs
        assert not any("SECRET" in str(value) for value in attrs.values())


def test_message_content_when_opted_in(wired_capture: Wired) -> None:
    _direct_request(wired_capture)
    chat = dict(wired_capture.one("chat openai/sim-large").attributes or {})
    assert "SECRET-PROMPT" in str(chat[sc.GEN_AI_INPUT_MESSAGES])
    assert "SECRET-ANSWER" in str(chat[sc.GEN_AI_OUTPUT_MESSAGES])


def test_capture_switch_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sc.CAPTURE_CONTENT_ENV, "True")
    assert sc.capture_content_from_env() is True
    monkeypatch.setenv(sc.CAPTURE_CONTENT_ENV, "1")
    assert sc.capture_content_from_env() is False
    assert sc.capture_content_from_env({}) is False


def test_failed_call_sets_error_type_and_fallback_event(wired: Wired) -> None:
    class ContextWindowExceededError(Exception):
        pass

    with wired.telemetry.request_span() as req:
        req.decision(SampleDecision())
        with pytest.raises(ContextWindowExceededError), req.chat(model="openai/sim-large"):
            raise ContextWindowExceededError("too long")
        req.fallback("llm_to_rlm", reason="context_length", error_type="ContextWindowExceededError")
        req.outcome(route_served="rlm", cost_usd=0.01, rlm_iterations=3, rlm_sub_calls=4)
    chat = wired.one("chat openai/sim-large")
    assert chat.status.status_code is StatusCode.ERROR
    assert dict(chat.attributes or {})[sc.ERROR_TYPE] == "ContextWindowExceededError"
    root = wired.one(sc.SPAN_REQUEST)
    assert dict(root.attributes or {})[sc.FALLBACK] == "llm_to_rlm"
    assert dict(root.attributes or {})[sc.RLM_ITERATIONS] == 3
    (event,) = [e for e in root.events if e.name == sc.EVENT_FALLBACK]
    assert dict(event.attributes or {})[sc.FALLBACK_FROM] == "llm"
    assert dict(event.attributes or {})[sc.FALLBACK_TO] == "rlm"
    assert root.status.status_code is not StatusCode.ERROR  # the request itself succeeded
    (fallbacks,) = wired.metric_points("rlm_router.fallbacks")
    assert fallbacks[0] == {sc.FALLBACK: "llm_to_rlm"}


def test_exception_out_of_request_records_error_outcome(wired: Wired) -> None:
    with pytest.raises(TimeoutError), wired.telemetry.request_span() as req:
        req.decision(SampleDecision(route="rlm"))
        raise TimeoutError
    root = wired.one(sc.SPAN_REQUEST)
    attrs = dict(root.attributes or {})
    assert attrs[sc.OUTCOME_ERROR_TYPE] == "TimeoutError"
    assert attrs[sc.ERROR_TYPE] == "TimeoutError"
    assert attrs[sc.ROUTE_SERVED] == "rlm"
    assert root.status.status_code is StatusCode.ERROR
    ((labels, _),) = wired.metric_points("rlm_router.requests")
    assert labels[sc.ERROR_TYPE] == "TimeoutError"


def test_metrics_of_a_direct_request(wired: Wired) -> None:
    _direct_request(wired)
    tokens = wired.metric_points("gen_ai.client.token.usage")
    by_type = {labels[sc.GEN_AI_TOKEN_TYPE]: point for labels, point in tokens}
    assert by_type["input"].sum == 12  # type: ignore[attr-defined]
    assert by_type["output"].sum == 3  # type: ignore[attr-defined]
    for labels, _ in tokens:
        assert labels[sc.GEN_AI_REQUEST_MODEL] == "openai/sim-large"
        assert sc.ERROR_TYPE not in labels
    ((labels, duration),) = wired.metric_points("gen_ai.client.operation.duration")
    assert duration.count == 1  # type: ignore[attr-defined]
    ((labels, _),) = wired.metric_points("rlm_router.decisions")
    assert labels == {
        sc.DECISION_ROUTE: "llm",
        sc.DECISION_RULE: "classifier",
        sc.DECISION_EXPLORATION: False,
    }
    ((labels, cost),) = wired.metric_points("rlm_router.cost")
    assert labels == {sc.ROUTE_SERVED: "llm"}
    assert cost.value == pytest.approx(0.00005)  # type: ignore[attr-defined]
    ((labels, _),) = wired.metric_points("rlm_router.request.duration")
    assert labels == {sc.ROUTE_SERVED: "llm", sc.FALLBACK: "none"}
    assert wired.metric_points("rlm_router.explorations") == []
    assert wired.metric_points("rlm_router.fallbacks") == []


def test_outcome_recorded_once(wired: Wired) -> None:
    with wired.telemetry.request_span() as req:
        req.outcome(route_served="llm", cost_usd=1.0)
        req.outcome(route_served="rlm", cost_usd=2.0)
    assert dict(wired.one(sc.SPAN_REQUEST).attributes or {})[sc.ROUTE_SERVED] == "llm"
    ((_, requests),) = wired.metric_points("rlm_router.requests")
    assert requests.value == 1  # type: ignore[attr-defined]


def test_our_spans_are_never_current(wired: Wired) -> None:
    from opentelemetry import trace

    with wired.telemetry.request_span() as req:
        assert not trace.get_current_span().get_span_context().is_valid
        with req.chat(model="openai/sim-mini"):
            assert not trace.get_current_span().get_span_context().is_valid
        with req.shielded():
            current = trace.get_current_span()
            assert current.get_span_context() == req.span.get_span_context()
            assert not current.is_recording()  # writes to it go nowhere
        assert not trace.get_current_span().get_span_context().is_valid
