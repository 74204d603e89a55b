"""Tracing, metrics and reports for rlm-router: observes every step, never decides.

``Telemetry`` owns the providers and exporters; ``Telemetry.request_span()`` opens a request's
span tree (``RequestTrace``); ``RLMTraceObserver`` implements the RLM engine's observer seam;
``read_spans`` reads OTLP-JSON lines (ours or a Collector's) back as ``SpanRecord``.
"""

from rlm_router.telemetry.exporters import TelemetryConfigError
from rlm_router.telemetry.feedback import FeedbackRecord, read_feedback, record_feedback
from rlm_router.telemetry.otlp_json import (
    OtlpJsonLinesSpanExporter,
    SpanEvent,
    SpanRecord,
    read_spans,
)
from rlm_router.telemetry.records import RequestRecord, load_request_records
from rlm_router.telemetry.rlm_observer import RLMTraceObserver
from rlm_router.telemetry.setup import Telemetry
from rlm_router.telemetry.tracing import ChatCall, RequestTrace, shielded

__all__ = [
    "ChatCall",
    "FeedbackRecord",
    "OtlpJsonLinesSpanExporter",
    "RLMTraceObserver",
    "RequestRecord",
    "RequestTrace",
    "SpanEvent",
    "SpanRecord",
    "Telemetry",
    "TelemetryConfigError",
    "load_request_records",
    "read_feedback",
    "read_spans",
    "record_feedback",
    "shielded",
]
