"""OTLP-JSON lines: our exporter's output round-trips, and a Collector's file reads too."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rlm_router.telemetry import OtlpJsonLinesSpanExporter, Telemetry, read_spans
from rlm_router.telemetry import semconv as sc
from rlm_router.telemetry.otlp_json import parse_line
from tests.telemetry.telemetry_support import SampleDecision

COLLECTOR_FILE = Path(__file__).parent / "data" / "collector_traces.jsonl"


def _write_request(telemetry: Telemetry) -> None:
    with telemetry.request_span(model="auto") as req:
        req.decision(SampleDecision(id="d-rt", exploration=True, propensity=0.1))
        with req.chat(model="openai/sim-large") as call:
            call.record_response(input_tokens=2**40, output_tokens=7, cost_usd=0.5)
        req.fallback("rlm_to_llm", reason="budget")
        req.outcome(route_served="llm", cost_usd=0.5, quality=1.0)


def test_round_trip_through_file(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(OtlpJsonLinesSpanExporter(path)))
    _write_request(Telemetry(tracer_provider=provider))
    provider.shutdown()

    lines = path.read_text().splitlines()
    assert len(lines) == 3  # one line per exported batch (SimpleSpanProcessor: one span each)
    first = json.loads(lines[0])
    span = first["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(span["traceId"]) == 32 and int(span["traceId"], 16) > 0  # hex, not base64
    assert isinstance(span["startTimeUnixNano"], str)  # int64 as strings
    assert isinstance(span["kind"], int)

    records = {record.span_id: record for record in read_spans([path])}
    originals = memory.get_finished_spans()
    assert len(records) == len(originals) == 3
    for original in originals:
        record = records[format(original.context.span_id, "016x")]
        assert record.trace_id == format(original.context.trace_id, "032x")
        assert record.name == original.name
        assert record.kind == original.kind.name
        assert record.start_time_unix_nano == original.start_time
        assert record.end_time_unix_nano == original.end_time
        assert dict(record.attributes) == {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in (original.attributes or {}).items()
        }
        expected_parent = format(original.parent.span_id, "016x") if original.parent else None
        assert record.parent_span_id == expected_parent
        assert [e.name for e in record.events] == [e.name for e in original.events]
    chat = next(r for r in records.values() if r.name.startswith("chat "))
    assert chat.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 2**40
    assert chat.kind == "CLIENT"
    root = next(r for r in records.values() if r.name == sc.SPAN_REQUEST)
    assert root.events[0].attributes[sc.FALLBACK] == "rlm_to_llm"
    assert str(root.resource["service.name"]).startswith("unknown_service")


def test_reads_collector_file(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        records = list(read_spans([COLLECTOR_FILE]))
    # The metrics line is skipped silently; the truncated last line with one warning.
    assert [r.name for r in records] == [sc.SPAN_REQUEST, sc.SPAN_DECIDE, "chat sim-mini"]
    assert sum("skipped 1 line" in m for m in caplog.messages) == 1
    root, decide, chat = records
    assert root.trace_id == "5b8efff798038103d269b633813fc60c"
    assert root.parent_span_id is None
    assert root.resource == {"service.name": "checkout-app", "host.cpu.count": 8}
    assert root.attributes[sc.OUTCOME_INPUT_TOKENS] == 9007199254740993  # beyond float precision
    assert root.attributes[sc.OUTCOME_LATENCY_MS] == 2500.0
    assert root.duration_ms == 2500.0
    assert root.events[0].attributes[sc.ERROR_TYPE] == "ProviderFailure"
    assert root.status_code == "UNSET"
    assert decide.parent_span_id == "eee19b7ec3c1b173"
    assert decide.scope_name == "rlm_router"
    assert decide.attributes[sc.DECISION_EXPLORATION] is True
    assert decide.attributes[sc.DECISION_SCORE] == 0.8
    assert math.isnan(decide.attributes[sc.DECISION_PROPENSITY])  # type: ignore[arg-type]
    assert decide.attributes["rlm_router.feature.input_tokens"] == 123456
    assert decide.attributes["rlm_router.feature.tags"] == ["a", 2, False]
    assert decide.attributes["rlm_router.feature.map"] == {"k": 1.5}
    assert decide.attributes["rlm_router.feature.empty"] is None
    assert decide.status_code == "ERROR" and decide.status_message == "boom"
    # base64 ids (protobuf JSON without the OTLP/JSON hex rule) and enum names.
    assert chat.trace_id == root.trace_id
    assert chat.span_id == "eee19b7ec3c1b174"
    assert chat.parent_span_id == "eee19b7ec3c1b173"
    assert chat.kind == "CLIENT" and chat.status_code == "OK"


def test_parse_line_rejects_non_trace_json() -> None:
    from rlm_router.telemetry.otlp_json import TraceFormatError

    with pytest.raises(TraceFormatError):
        list(parse_line('{"hello": 1}'))
    with pytest.raises(TraceFormatError):
        list(parse_line("[1, 2]"))
    bad_id = '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abc","spanId":"x"}]}]}]}'
    with pytest.raises(TraceFormatError):
        list(parse_line(bad_id))


def test_exporter_write_failure_returns_failure(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace.export import SpanExportResult

    blocker = tmp_path / "file"
    blocker.write_text("")
    exporter = OtlpJsonLinesSpanExporter(blocker / "traces.jsonl")  # parent is a file
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.get_tracer("t").start_span("x").end()
    assert exporter.export(memory.get_finished_spans()) is SpanExportResult.FAILURE
    assert exporter.last_error is not None


def test_direct_encoding_equals_the_otlp_protobuf_encoding() -> None:
    """Our JSON is exactly what OTel's protobuf encoder + MessageToDict give (ids in hex)."""
    import base64

    from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import (
        Link,
        NonRecordingSpan,
        SpanContext,
        SpanKind,
        Status,
        StatusCode,
        TraceFlags,
        TraceState,
        set_span_in_context,
    )

    from rlm_router.telemetry.otlp_json import encode_spans_line

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "t", "n": 3}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("scope-a", "1.2")
    remote = SpanContext(
        trace_id=0xABC,
        span_id=0xDEF,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("k", "v")]),
    )
    attributes = {
        "s": "x",
        "empty": "",
        "b": True,
        "f": False,
        "i": 0,
        "big": 2**62,
        "d": 0.5,
        "nan": float("nan"),
        "inf": float("-inf"),
        "strs": ("a", "b"),
        "ints": [1, 2],
        "none": [],
    }
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER, attributes=attributes) as root:
        root.add_event("fallback", {"reason": "overflow", "n": 2})
        root.add_event("bare")
        root.set_status(Status(StatusCode.ERROR, "boom"))
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.OK))
    provider.get_tracer("scope-b").start_span(
        "remote-child",
        context=set_span_in_context(NonRecordingSpan(remote)),
        links=[Link(remote, {"why": "retry"})],
    ).end()
    spans = exporter.get_finished_spans()

    reference = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    for resource_spans in reference["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for obj in (span, *span.get("links", [])):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if obj.get(key):
                            obj[key] = base64.b64decode(obj[key]).hex()
    assert json.loads(encode_spans_line(spans)) == json.loads(json.dumps(reference))
