"""OTLP-JSON lines: the span exporter rlm-router embeds, and the reader for it.

The format is the OpenTelemetry Collector ``file`` exporter's: one
``{"resourceSpans": [...]}`` object per line, trace/span ids as hex, int64 values as
strings, enums as integers. The released Python SDK has no such exporter; we write the JSON
that OTel's OTLP protobuf encoder plus ``MessageToDict`` would give (with the ids in hex, as
the OTLP/JSON specification requires), directly from the SDK's spans.

The reader accepts what a Collector writes too (and what a protobuf-JSON encoder writes
without the id rewrite): ids in hex or base64, int64 as strings or numbers, enums as
integers or names. It streams: files of any size are read one line at a time.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeAlias

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from rlm_router.rlm_core.errors import RequestError
from rlm_router.telemetry.trace_files import expand_paths, iter_lines

logger = logging.getLogger(__name__)

# A decoded OTLP AnyValue: scalars, lists (arrayValue) and dicts (kvlistValue).
Value: TypeAlias = str | bool | int | float | bytes | list["Value"] | dict[str, "Value"] | None

_SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUS_CODES = ("UNSET", "OK", "ERROR")
_OTHER_SIGNALS = frozenset({"resourceMetrics", "resourceLogs", "resourceProfiles"})


def encode_spans_line(spans: Sequence[ReadableSpan]) -> str:
    """One OTLP-JSON line (without the newline) holding ``spans``.

    Written directly from the SDK's spans: the same JSON that OTel's protobuf encoder plus
    ``MessageToDict`` gives (tests/telemetry/test_otlp_json.py checks the two agree), at a
    fifth of the CPU, which matters because export shares the GIL with the request path.
    """
    grouped: dict[Any, dict[Any, list[dict[str, Any]]]] = {}
    # A Resource hashes by JSON-dumping its attributes (~0.035 ms per span in the proxy at
    # 50 clients, py-spy), and a batch's spans share one Resource object: hash each distinct
    # object once. Equal but distinct Resources still land in one group.
    by_object: dict[int, dict[Any, list[dict[str, Any]]]] = {}
    for span in spans:
        resource = span.resource
        scopes = by_object.get(id(resource))
        if scopes is None:
            scopes = by_object[id(resource)] = grouped.setdefault(resource, {})
        scopes.setdefault(span.instrumentation_scope, []).append(_span_json(span))
    resource_spans = []
    for resource, scopes in grouped.items():
        scope_spans = []
        for scope, encoded in scopes.items():
            entry: dict[str, Any] = {"scope": _scope_json(scope), "spans": encoded}
            if scope is not None and scope.schema_url:
                entry["schemaUrl"] = scope.schema_url
            scope_spans.append(entry)
        out: dict[str, Any] = {"resource": _with_attributes({}, resource.attributes)}
        out["scopeSpans"] = scope_spans
        if resource.schema_url:
            out["schemaUrl"] = resource.schema_url
        resource_spans.append(out)
    return json.dumps({"resourceSpans": resource_spans}, separators=(",", ":"), ensure_ascii=False)


# OTLP's SpanFlags: the parent's is-remote bit is known (0x100) / set (0x200).
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200


def _span_json(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None  # the SDK's spans always have one
    out: dict[str, Any] = {
        "traceId": f"{context.trace_id:032x}",
        "spanId": f"{context.span_id:016x}",
    }
    if context.trace_state:
        out["traceState"] = ",".join(f"{k}={v}" for k, v in context.trace_state.items())
    if span.parent is not None:
        out["parentSpanId"] = f"{span.parent.span_id:016x}"
    out["flags"] = _flags(span.parent)
    if span.name:
        out["name"] = span.name
    out["kind"] = span.kind.value + 1  # OTLP numbers INTERNAL as 1, the SDK as 0
    if span.start_time:
        out["startTimeUnixNano"] = str(span.start_time)
    if span.end_time:
        out["endTimeUnixNano"] = str(span.end_time)
    _with_attributes(out, span.attributes)
    if span.dropped_attributes:
        out["droppedAttributesCount"] = span.dropped_attributes
    if span.events:
        out["events"] = [_event_json(event) for event in span.events]
    if span.dropped_events:
        out["droppedEventsCount"] = span.dropped_events
    if span.links:
        out["links"] = [_link_json(link) for link in span.links]
    if span.dropped_links:
        out["droppedLinksCount"] = span.dropped_links
    status: dict[str, Any] = {}
    if span.status.description:
        status["message"] = span.status.description
    if span.status.status_code.value:
        status["code"] = span.status.status_code.value
    out["status"] = status
    return out


def _flags(parent: Any) -> int:
    return _HAS_IS_REMOTE | (_IS_REMOTE if parent is not None and parent.is_remote else 0)


def _event_json(event: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if event.timestamp:
        out["timeUnixNano"] = str(event.timestamp)
    if event.name:
        out["name"] = event.name
    _with_attributes(out, event.attributes)
    if event.dropped_attributes:
        out["droppedAttributesCount"] = event.dropped_attributes
    return out


def _link_json(link: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": f"{link.context.trace_id:032x}",
        "spanId": f"{link.context.span_id:016x}",
    }
    _with_attributes(out, link.attributes)
    if link.dropped_attributes:
        out["droppedAttributesCount"] = link.dropped_attributes
    out["flags"] = _flags(link.context)
    return out


def _scope_json(scope: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if scope is None:
        return out
    if scope.name:
        out["name"] = scope.name
    if scope.version:
        out["version"] = scope.version
    _with_attributes(out, getattr(scope, "attributes", None))
    return out


def _with_attributes(out: dict[str, Any], attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    if attributes:
        out["attributes"] = [{"key": k, "value": _value_json(v)} for k, v in attributes.items()]
    return out


def _value_json(value: Any) -> dict[str, Any]:
    # bool before int: bool is an int subclass.
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value if math.isfinite(value) else _NON_FINITE[str(value)]}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, Mapping):
        kv = [{"key": str(k), "value": _value_json(v)} for k, v in value.items()]
        return {"kvlistValue": {"values": kv} if kv else {}}
    if isinstance(value, Sequence):
        values = [_value_json(v) for v in value]
        return {"arrayValue": {"values": values} if values else {}}
    return {"stringValue": str(value)}


# proto3 JSON spells non-finite doubles as strings.
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


class OtlpJsonLinesSpanExporter(SpanExporter):
    """Appends each exported batch to ``path`` as one OTLP-JSON line.

    Raises nothing: a failed write returns ``FAILURE`` (the caller's processor logs it), so a
    full disk or a read-only path never reaches the request path.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._shutdown = False
        self.last_error: OSError | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown or not spans:
            return SpanExportResult.FAILURE if self._shutdown else SpanExportResult.SUCCESS
        line = encode_spans_line(spans) + "\n"
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(line)
            except OSError as exc:
                self.last_error = exc
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._shutdown = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every export is written through


@dataclass(frozen=True, slots=True)
class SpanEvent:
    """An event recorded on a span (e.g. a fallback)."""

    name: str
    time_unix_nano: int
    attributes: Mapping[str, Value]


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One span read back from OTLP-JSON, with ids as lowercase hex."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str  # INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER or UNSPECIFIED
    start_time_unix_nano: int
    end_time_unix_nano: int
    attributes: Mapping[str, Value]
    events: tuple[SpanEvent, ...] = ()
    status_code: str = "UNSET"  # UNSET, OK or ERROR
    status_message: str = ""
    resource: Mapping[str, Value] = field(default_factory=dict)
    scope_name: str = ""

    @property
    def duration_ms(self) -> float:
        return (self.end_time_unix_nano - self.start_time_unix_nano) / 1e6


class SpanLike(Protocol):
    """What readers of spans use: ``SpanRecord`` and the scanner's lighter spans have it."""

    @property
    def trace_id(self) -> str: ...
    @property
    def span_id(self) -> str: ...
    @property
    def parent_span_id(self) -> str | None: ...
    @property
    def name(self) -> str: ...
    @property
    def start_time_unix_nano(self) -> int: ...
    @property
    def attributes(self) -> Mapping[str, Value]: ...


class TraceFormatError(RequestError):
    """A line is JSON but not OTLP trace data as we can read it."""


def read_spans(paths: Iterable[str | os.PathLike[str]]) -> Iterator[SpanRecord]:
    """Every span in the given OTLP-JSON-lines files (or directories, gzip), in file order.

    Lines that are not JSON (a line cut short by a crash) or not span data (metrics or logs
    written by the same Collector) are skipped, with one warning per file naming how many.
    """
    for path in expand_paths(paths):
        skipped = 0
        for line in iter_lines(path):
            try:
                yield from parse_line(line)
            except (ValueError, TraceFormatError):  # JSONDecodeError and bad UTF-8 are ValueErrors
                skipped += 1
        if skipped:
            logger.warning("%s: skipped %d line(s) that are not OTLP-JSON spans", path, skipped)


def parse_line(line: str | bytes) -> Iterator[SpanRecord]:
    """The spans of one OTLP-JSON line (``{"resourceSpans": [...]}``)."""
    message = json.loads(line)
    if not isinstance(message, dict):
        raise TraceFormatError("line is not a JSON object")
    if "resourceSpans" not in message:
        if _OTHER_SIGNALS.intersection(message):
            return  # metrics/logs a Collector wrote to the same file: not ours to read
        raise TraceFormatError("no resourceSpans in line")
    try:
        for resource_spans in message["resourceSpans"]:
            resource = _attributes(resource_spans.get("resource", {}).get("attributes", []))
            for scope_spans in resource_spans.get("scopeSpans", []):
                scope_name = scope_spans.get("scope", {}).get("name", "")
                for span in scope_spans.get("spans", []):
                    yield _span(span, resource, scope_name)
    except (KeyError, TypeError, AttributeError, ValueError, binascii.Error) as exc:
        raise TraceFormatError(str(exc)) from exc


def _span(span: dict[str, Any], resource: Mapping[str, Value], scope_name: str) -> SpanRecord:
    status = span.get("status", {})
    return SpanRecord(
        trace_id=hex_id(span["traceId"], 16),
        span_id=hex_id(span["spanId"], 8),
        parent_span_id=hex_id(span["parentSpanId"], 8) if span.get("parentSpanId") else None,
        name=span.get("name", ""),
        kind=_enum(span.get("kind", 0), _SPAN_KINDS, "SPAN_KIND_"),
        start_time_unix_nano=int(span.get("startTimeUnixNano", 0)),
        end_time_unix_nano=int(span.get("endTimeUnixNano", 0)),
        attributes=_attributes(span.get("attributes", [])),
        events=tuple(
            SpanEvent(
                name=event.get("name", ""),
                time_unix_nano=int(event.get("timeUnixNano", 0)),
                attributes=_attributes(event.get("attributes", [])),
            )
            for event in span.get("events", [])
        ),
        status_code=_enum(status.get("code", 0), _STATUS_CODES, "STATUS_CODE_"),
        status_message=status.get("message", ""),
        resource=resource,
        scope_name=scope_name,
    )


def hex_id(raw: str, n_bytes: int) -> str:
    """An id as lowercase hex, whether written as hex (OTLP/JSON) or base64 (protobuf JSON)."""
    if len(raw) == 2 * n_bytes:
        try:
            bytes.fromhex(raw)
            return raw.lower()
        except ValueError:
            pass
    decoded = base64.b64decode(raw, validate=True)
    if len(decoded) != n_bytes:
        raise TraceFormatError(f"id {raw!r} is not {n_bytes} bytes")
    return decoded.hex()


def _enum(raw: int | str, names: tuple[str, ...], prefix: str) -> str:
    if isinstance(raw, int):
        return names[raw] if 0 <= raw < len(names) else names[0]
    name = raw.removeprefix(prefix)
    return name if name in names else names[0]


def _attributes(pairs: list[dict[str, Any]]) -> dict[str, Value]:
    return {pair["key"]: any_value(pair.get("value", {})) for pair in pairs}


def any_value(value: Mapping[str, Any]) -> Value:
    """A decoded OTLP AnyValue (``{"stringValue": ...}`` and the other forms)."""
    if "stringValue" in value:
        return str(value["stringValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        raw = value["doubleValue"]
        # ProtoJSON writes non-finite doubles as strings; whole doubles may come as ints.
        return float(raw) if not isinstance(raw, str) else _float_string(raw)
    if "arrayValue" in value:
        return [any_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return _attributes(value["kvlistValue"].get("values", []))
    if "bytesValue" in value:
        return base64.b64decode(value["bytesValue"])
    return None


def _float_string(raw: str) -> float:
    special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
    return special[raw] if raw in special else float(raw)
