"""The telemetry package's public names are exactly the intended ones."""

from __future__ import annotations

import rlm_router.telemetry as telemetry


def test_exported_members() -> None:
    assert sorted(telemetry.__all__) == [
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
    for name in telemetry.__all__:
        assert getattr(telemetry, name).__module__.startswith("rlm_router.telemetry.")


def test_observer_implements_the_engine_protocol() -> None:
    from opentelemetry import context

    from rlm_router.rlm_core import EngineObserver

    observer = telemetry.RLMTraceObserver(telemetry.Telemetry(), parent=context.Context())
    assert isinstance(observer, EngineObserver)
