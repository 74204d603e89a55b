"""Feedback: a quality report for a decision id, as a span, a metric and a JSON line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rlm_router.telemetry import FeedbackRecord, read_feedback, record_feedback
from rlm_router.telemetry import semconv as sc
from rlm_router.telemetry.feedback import feedback_from_spans
from rlm_router.telemetry.otlp_json import encode_spans_line, parse_line
from tests.telemetry.telemetry_support import Wired


def test_feedback_span_metric_and_file(wired: Wired, tmp_path: Path) -> None:
    wired.telemetry.feedback_path = tmp_path / "fb" / "feedback.jsonl"
    record = wired.telemetry.record_feedback("d-7", 0.8, source="judge", comment="SECRET-NOTE")
    span = wired.one(sc.SPAN_FEEDBACK)
    attrs = dict(span.attributes or {})
    assert attrs[sc.DECISION_ID] == "d-7"
    assert attrs[sc.OUTCOME_QUALITY] == 0.8
    assert attrs[sc.FEEDBACK_SOURCE] == "judge"
    assert "SECRET-NOTE" not in json.dumps(attrs)  # comments are content: opt-in only
    ((_, point),) = wired.metric_points("rlm_router.feedback.quality")
    assert point.sum == pytest.approx(0.8)  # type: ignore[attr-defined]
    (line,) = wired.telemetry.feedback_path.read_text().splitlines()
    assert FeedbackRecord.from_json(line) == record
    assert record.comment == "SECRET-NOTE"


def test_invalid_feedback_is_rejected(wired: Wired) -> None:
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            record_feedback(wired.telemetry, "d-1", bad)
    with pytest.raises(ValueError, match="decision_id"):
        record_feedback(wired.telemetry, "", 0.5)
    assert wired.by_name(sc.SPAN_FEEDBACK) == []


def test_latest_feedback_wins_and_bad_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    lines = [
        FeedbackRecord("d-1", 0.2, time_unix_nano=1).to_json(),
        "not json",
        FeedbackRecord("d-1", 0.9, time_unix_nano=3).to_json(),
        FeedbackRecord("d-2", 1.0, time_unix_nano=2).to_json(),
        FeedbackRecord("d-1", 0.5, time_unix_nano=2).to_json(),
    ]
    path.write_text("\n".join(lines) + "\n")
    latest = read_feedback([path])
    assert {k: v.quality for k, v in latest.items()} == {"d-1": 0.9, "d-2": 1.0}


def test_feedback_read_back_from_spans(wired: Wired) -> None:
    wired.telemetry.record_feedback("d-9", 0.25)
    records = [r for s in wired.finished() for r in parse_line(encode_spans_line([s]))]
    (feedback,) = feedback_from_spans(records)
    assert (feedback.decision_id, feedback.quality) == ("d-9", 0.25)


def test_unwritable_feedback_file_does_not_raise(wired: Wired, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    wired.telemetry.feedback_path = tmp_path / "file" / "feedback.jsonl"
    wired.telemetry.record_feedback("d-1", 1.0)
    assert len(wired.by_name(sc.SPAN_FEEDBACK)) == 1
