"""One record per routed request, joined from its spans: the data the trainer and report use.

A request's ``rlm_router.decide`` span (decision, features) and its parent
``rlm_router.request`` span (outcome) are joined by span id; quality comes from feedback
(the latest report for the decision id) or else from the outcome attribute. Everything else
in the trace (model calls, RLM iterations, inner sub-calls) is ignored, so nothing
downstream trains on inner calls. Reading streams: only the decide/request spans still
waiting for their partner are held.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from telemetry import semconv as sc
from telemetry.feedback import FeedbackRecord, feedback_from_spans, merge_feedback, read_feedback
from telemetry.otlp_json import SpanRecord, Value, read_spans


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """A request's decision and outcome, as plain values (None = not recorded).

    For off-policy learning the action is ``decided_route`` (taken with ``propensity``);
    ``route_served`` differs from it after a fallback, which is part of that action's outcome.
    """

    trace_id: str
    start_time_unix_nano: int
    decision_id: str | None
    decided_route: str | None
    score: float | None
    threshold: float | None
    rule: str | None
    policy_version: str | None
    exploration: bool
    propensity: float | None
    features: Mapping[str, float] = field(default_factory=dict)
    route_served: str | None = None
    fallback: str = sc.FALLBACK_NONE
    cost_usd: float | None = None
    latency_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    stopped_reason: str | None = None
    error_type: str | None = None
    quality: float | None = None
    rlm_iterations: int | None = None
    rlm_sub_calls: int | None = None

    @property
    def escalated(self) -> bool:
        """Whether the decision chose the RLM route."""
        return self.decided_route == sc.ROUTE_RLM


def iter_request_records(
    spans: Iterable[SpanRecord], feedback: Mapping[str, FeedbackRecord] | None = None
) -> Iterator[RequestRecord]:
    """Request records from spans in any order; requests without a decision come last."""
    # Keyed by (trace id, request span id): one trace may hold several requests.
    decides: dict[tuple[str, str], SpanRecord] = {}
    requests: dict[tuple[str, str], SpanRecord] = {}
    for span in spans:
        if span.name == sc.SPAN_DECIDE and span.parent_span_id is not None:
            key = (span.trace_id, span.parent_span_id)
            if key in requests:
                yield _record(requests.pop(key), span, feedback)
            else:
                decides[key] = span
        elif span.name == sc.SPAN_REQUEST:
            key = (span.trace_id, span.span_id)
            if key in decides:
                yield _record(span, decides.pop(key), feedback)
            else:
                requests[key] = span
    # A request that failed before deciding still counts (e.g. an invalid body).
    for request in requests.values():
        yield _record(request, None, feedback)


def load_request_records(
    trace_paths: Iterable[str | os.PathLike[str]],
    feedback_paths: Iterable[str | os.PathLike[str]] = (),
) -> list[RequestRecord]:
    """All request records in OTLP-JSON-lines files, sorted by start time.

    Feedback comes from ``feedback_paths`` (JSON lines) and from ``rlm_router.feedback``
    spans in the trace files; the latest report per decision wins.
    """
    trace_paths = list(trace_paths)
    feedback = read_feedback(feedback_paths)
    for record in feedback_from_spans(read_spans(trace_paths)):
        merge_feedback(feedback, record)
    records = list(iter_request_records(read_spans(trace_paths), feedback))
    records.sort(key=lambda r: r.start_time_unix_nano)
    return records


def _record(
    request: SpanRecord,
    decide: SpanRecord | None,
    feedback: Mapping[str, FeedbackRecord] | None,
) -> RequestRecord:
    out = request.attributes
    dec = decide.attributes if decide is not None else {}
    decision_id = _str(dec.get(sc.DECISION_ID)) or _str(out.get(sc.DECISION_ID))
    quality = _float(out.get(sc.OUTCOME_QUALITY))
    if feedback is not None and decision_id is not None and decision_id in feedback:
        quality = feedback[decision_id].quality
    features = {
        key.removeprefix(sc.FEATURE_PREFIX): float(value)
        for key, value in dec.items()
        if key.startswith(sc.FEATURE_PREFIX) and isinstance(value, int | float)
    }
    return RequestRecord(
        trace_id=request.trace_id,
        start_time_unix_nano=request.start_time_unix_nano,
        decision_id=decision_id,
        decided_route=_str(dec.get(sc.DECISION_ROUTE)),
        score=_float(dec.get(sc.DECISION_SCORE)),
        threshold=_float(dec.get(sc.DECISION_THRESHOLD)),
        rule=_str(dec.get(sc.DECISION_RULE)),
        policy_version=_str(dec.get(sc.DECISION_POLICY_VERSION)),
        exploration=dec.get(sc.DECISION_EXPLORATION) is True,
        propensity=_float(dec.get(sc.DECISION_PROPENSITY)),
        features=features,
        route_served=_str(out.get(sc.ROUTE_SERVED)),
        fallback=_str(out.get(sc.FALLBACK)) or sc.FALLBACK_NONE,
        cost_usd=_float(out.get(sc.OUTCOME_COST_USD)),
        latency_ms=_float(out.get(sc.OUTCOME_LATENCY_MS)),
        input_tokens=_int(out.get(sc.OUTCOME_INPUT_TOKENS)),
        output_tokens=_int(out.get(sc.OUTCOME_OUTPUT_TOKENS)),
        stopped_reason=_str(out.get(sc.OUTCOME_STOPPED_REASON)),
        error_type=_str(out.get(sc.OUTCOME_ERROR_TYPE)),
        quality=quality,
        rlm_iterations=_int(out.get(sc.RLM_ITERATIONS)),
        rlm_sub_calls=_int(out.get(sc.RLM_SUB_CALLS)),
    )


def _str(value: Value) -> str | None:
    return value if isinstance(value, str) and value else None


def _float(value: Value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: Value) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)
