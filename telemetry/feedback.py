"""Outcome feedback: an app reports how good the answer to a decision was.

A report becomes a ``rlm_router.feedback`` span (so it travels with the traces to whatever
backend the user runs) and, when the telemetry has a feedback file, one JSON line
(``FeedbackRecord.to_json``), so the trainer can join it by decision id without a backend.
``read_feedback`` reads both forms; the latest report for a decision wins.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry.trace import SpanKind

from rlm_router.telemetry import semconv as sc
from rlm_router.telemetry.otlp_json import SpanLike
from rlm_router.telemetry.trace_files import expand_paths, iter_lines

if TYPE_CHECKING:
    from rlm_router.telemetry.setup import Telemetry

logger = logging.getLogger(__name__)
_write_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """One quality report for a decision."""

    decision_id: str
    quality: float
    time_unix_nano: int
    source: str = "app"
    trace_id: str | None = None
    comment: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {k: v for k, v in asdict(self).items() if v is not None}, ensure_ascii=False
        )

    @classmethod
    def from_json(cls, line: str | bytes) -> FeedbackRecord:
        data = json.loads(line)
        return cls(
            decision_id=str(data["decision_id"]),
            quality=float(data["quality"]),
            time_unix_nano=int(data.get("time_unix_nano", 0)),
            source=str(data.get("source", "app")),
            trace_id=data.get("trace_id"),
            comment=data.get("comment"),
        )


def validate_quality(quality: float) -> float:
    """``quality`` as a float in [0, 1], or ValueError saying what is wrong."""
    value = float(quality)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"quality must be a number in [0, 1], got {quality!r}")
    return value


def record_feedback(
    telemetry: Telemetry,
    decision_id: str,
    quality: float,
    *,
    source: str = "app",
    trace_id: str | None = None,
    comment: str | None = None,
) -> FeedbackRecord:
    """Record a quality report as a span, a metric and (if configured) a JSON line.

    ``comment`` is free text from the app: written to the feedback file, and onto the span
    only when message-content capture is on.
    """
    if not decision_id:
        raise ValueError("decision_id must be a non-empty string")
    record = FeedbackRecord(
        decision_id=decision_id,
        quality=validate_quality(quality),
        time_unix_nano=time.time_ns(),
        source=source,
        trace_id=trace_id,
        comment=comment,
    )
    span = telemetry.tracer.start_span(
        sc.SPAN_FEEDBACK,
        kind=SpanKind.INTERNAL,
        attributes=sc.drop_unset(
            {
                sc.DECISION_ID: decision_id,
                sc.OUTCOME_QUALITY: record.quality,
                sc.FEEDBACK_SOURCE: source,
                "rlm_router.feedback.trace_id": trace_id,
                "rlm_router.feedback.comment": comment if telemetry.capture_content else None,
            }
        ),
        start_time=record.time_unix_nano,
    )
    span.end(end_time=record.time_unix_nano)
    telemetry.metrics.feedback(record.quality)
    if telemetry.feedback_path is not None:
        _append(telemetry.feedback_path, record)
    return record


def _append(path: Path, record: FeedbackRecord) -> None:
    try:
        with _write_lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as handle:
                handle.write(record.to_json() + "\n")
    except OSError as exc:
        # The span already carries the report; a broken file must not fail the caller.
        logger.warning("telemetry: could not append feedback to %s: %s", path, exc)


def feedback_from_spans(spans: Iterable[SpanLike]) -> Iterator[FeedbackRecord]:
    """Feedback reports carried by ``rlm_router.feedback`` spans."""
    for span in spans:
        record = feedback_of(span)
        if record is not None:
            yield record


def feedback_of(span: SpanLike) -> FeedbackRecord | None:
    """The report a ``rlm_router.feedback`` span carries (None for other or broken spans)."""
    if span.name != sc.SPAN_FEEDBACK:
        return None
    decision_id = span.attributes.get(sc.DECISION_ID)
    quality = span.attributes.get(sc.OUTCOME_QUALITY)
    if not isinstance(decision_id, str) or not isinstance(quality, int | float):
        return None
    source = span.attributes.get(sc.FEEDBACK_SOURCE)
    return FeedbackRecord(
        decision_id=decision_id,
        quality=float(quality),
        time_unix_nano=span.start_time_unix_nano,
        source=source if isinstance(source, str) else "app",
        trace_id=span.trace_id,
    )


def read_feedback(paths: Iterable[str | os.PathLike[str]]) -> dict[str, FeedbackRecord]:
    """Decision id -> latest report, from feedback JSON-lines files (bad lines skipped).

    A path may be a directory of rotated files; gzip is read as such.
    """
    latest: dict[str, FeedbackRecord] = {}
    for path in expand_paths(paths):
        for line in iter_lines(path):
            try:
                record = FeedbackRecord.from_json(line)
            except (ValueError, KeyError, TypeError):
                logger.warning("%s: skipped a line that is not a feedback record", path)
                continue
            merge_feedback(latest, record)
    return latest


def merge_feedback(latest: dict[str, FeedbackRecord], record: FeedbackRecord) -> None:
    """Keep ``record`` in ``latest`` if it is the newest for its decision."""
    current = latest.get(record.decision_id)
    if current is None or record.time_unix_nano >= current.time_unix_nano:
        latest[record.decision_id] = record
