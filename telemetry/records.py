"""One record per routed request, joined from its spans: the data the trainer and report use.

A request's ``rlm_router.decide`` span (decision, features) and its parent
``rlm_router.request`` span (outcome) are joined by span id; quality comes from feedback
(the latest report for the decision id) or else from the outcome attribute. Everything else
in the trace (model calls, RLM iterations, inner sub-calls) is ignored, so nothing
downstream trains on inner calls.

Reading is one pass per file (``RequestScan``): only decide, request and feedback spans are
decoded (``telemetry.span_scan``), only the decide/request spans still waiting for their
partner are held, and feedback spans are collected on the way. Since a report may come after
its request in the files, the records of a scan carry the outcome's quality, and consumers
that aggregate as they read (the report, the trainer's data set) look the latest report up
in ``RequestScan.feedback`` once the pass is over (``reported_quality``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from rlm_router.telemetry import semconv as sc
from rlm_router.telemetry.feedback import FeedbackRecord, feedback_of, merge_feedback, read_feedback
from rlm_router.telemetry.otlp_json import SpanLike, Value
from rlm_router.telemetry.span_scan import scan_spans
from rlm_router.telemetry.trace_files import bulk_reading

T = TypeVar("T")


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
    spans: Iterable[SpanLike], feedback: Mapping[str, FeedbackRecord] | None = None
) -> Iterator[RequestRecord]:
    """Request records from spans in any order; requests without a decision come last."""
    pairing: SpanPairing[None] = SpanPairing()
    for span in spans:
        pair = pairing.add(span, None)
        if pair is not None:
            yield request_record(*pair, feedback)
    # A request that failed before deciding still counts (e.g. an invalid body).
    for request in pairing.unmatched_requests():
        yield request_record(request, None, feedback)


class SpanPairing(Generic[T]):
    """Joins each request's decide span to its request span as they come, in any order.

    Keyed by (trace id, request span id): one trace may hold several requests. A span that
    waits for its partner is held with a caller's ``tag`` (a parallel reader keeps where in
    its part of the files the span was met, to join it later in the order a serial pass would).
    """

    def __init__(self) -> None:
        self._decides: dict[tuple[str, str], tuple[SpanLike, T]] = {}
        self._requests: dict[tuple[str, str], tuple[SpanLike, T]] = {}

    def add(self, span: SpanLike, tag: T) -> tuple[SpanLike, SpanLike] | None:
        """``(request, decide)`` when ``span`` completes a pair, else None (held or ignored)."""
        if span.name == sc.SPAN_DECIDE and span.parent_span_id is not None:
            key = (span.trace_id, span.parent_span_id)
            if key in self._requests:
                return self._requests.pop(key)[0], span
            self._decides[key] = (span, tag)
        elif span.name == sc.SPAN_REQUEST:
            key = (span.trace_id, span.span_id)
            if key in self._decides:
                return span, self._decides.pop(key)[0]
            self._requests[key] = (span, tag)
        return None

    def waiting(self) -> list[tuple[T, SpanLike]]:
        """The spans still waiting for their partner, with their tags, decides first."""
        held = [*self._decides.values(), *self._requests.values()]
        return [(tag, span) for span, tag in held]

    def unmatched_requests(self) -> list[SpanLike]:
        """The request spans without a decision, in the order they came."""
        return [span for span, _ in self._requests.values()]


class RequestScan:
    """The request records of trace files (or directories, gzip), read in one pass.

    Iterating yields records in file order with the quality their outcome recorded;
    ``feedback`` starts with the reports of ``feedback_paths`` and gains those of the
    ``rlm_router.feedback`` spans as the pass meets them, so it is complete once the
    iteration is over. A scan can be iterated again (it reads the files again).

    With ``workers`` > 1 (default: the CPUs this process may use) and more than one chunk
    of input (``telemetry.parallel_scan``), parts of the files are decoded in that many
    worker processes; the records and the feedback are the same, in the same order.
    """

    def __init__(
        self,
        trace_paths: Iterable[str | os.PathLike[str]],
        feedback_paths: Iterable[str | os.PathLike[str]] = (),
        *,
        workers: int | None = None,
    ) -> None:
        self.trace_paths = list(trace_paths)
        self.feedback_paths = list(feedback_paths)
        self.workers = workers
        self.feedback: dict[str, FeedbackRecord] = {}

    def __iter__(self) -> Iterator[RequestRecord]:
        from rlm_router.telemetry.parallel_scan import ParallelScan

        self.feedback = read_feedback(self.feedback_paths)
        parallel = ParallelScan.plan(self.trace_paths, workers=self.workers)
        with bulk_reading():
            if parallel is not None:
                yield from parallel.records(self.feedback)
            else:
                yield from iter_request_records(self._record_spans())

    def _record_spans(self) -> Iterator[SpanLike]:
        for span in scan_spans(self.trace_paths):
            report = feedback_of(span)
            if report is not None:
                merge_feedback(self.feedback, report)
            elif span.name != sc.SPAN_FEEDBACK:
                yield span

    def reported_quality(self, decision_id: str) -> float | None:
        """The latest reported quality of a decision (complete once the pass is over)."""
        report = self.feedback.get(decision_id)
        return report.quality if report is not None else None


def load_request_records(
    trace_paths: Iterable[str | os.PathLike[str]],
    feedback_paths: Iterable[str | os.PathLike[str]] = (),
) -> list[RequestRecord]:
    """All request records in OTLP-JSON-lines files, sorted by start time.

    Feedback comes from ``feedback_paths`` (JSON lines) and from ``rlm_router.feedback``
    spans in the trace files; the latest report per decision wins. This holds every record;
    the report and the trainer aggregate a ``RequestScan`` as it streams instead.
    """
    scan = RequestScan(trace_paths, feedback_paths)
    records = list(scan)
    out = [
        replace(r, quality=scan.feedback[r.decision_id].quality)
        if r.decision_id is not None and r.decision_id in scan.feedback
        else r
        for r in records
    ]
    out.sort(key=lambda r: r.start_time_unix_nano)
    return out


def request_record(
    request: SpanLike,
    decide: SpanLike | None,
    feedback: Mapping[str, FeedbackRecord] | None,
) -> RequestRecord:
    """The record of a request span and its decide span (None: it failed before deciding)."""
    out = request.attributes
    dec = decide.attributes if decide is not None else {}
    decision_id = _str(dec.get(sc.DECISION_ID)) or _str(out.get(sc.DECISION_ID))
    quality = _float(out.get(sc.OUTCOME_QUALITY))
    if feedback is not None and decision_id is not None and decision_id in feedback:
        quality = feedback[decision_id].quality
    # type() in a set, not isinstance: the same for decoded values (bool counts, as an int
    # subclass), at a third of the cost on the ~25 attributes of every decision.
    features = {
        key[_PREFIX_LEN:]: float(value)  # type: ignore[arg-type]
        for key, value in dec.items()
        if type(value) in _NUMBERS and key.startswith(sc.FEATURE_PREFIX)
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


_PREFIX_LEN = len(sc.FEATURE_PREFIX)
_NUMBERS = frozenset({int, float, bool})


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
