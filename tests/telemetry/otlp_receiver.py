"""A real OTLP/HTTP receiver on loopback: what a user's Collector would be, for tests.

It accepts ``POST /v1/traces`` and ``/v1/metrics`` (protobuf, optionally gzip), decodes them
with the OTLP protobuf classes and keeps the spans and metric points, so a test can read what
each process exported over the wire (the real OTLP exporters, not in-memory ones).
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

Value = str | bool | int | float | list[object] | None


def _value(any_value: AnyValue) -> Value:
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "int_value":
        return int(any_value.int_value)
    value = getattr(any_value, kind)
    return value if isinstance(value, str | bool | float) else str(value)


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived: who sent it (scope, service) and what it carries."""

    name: str
    scope: str
    service: str
    trace_id: str
    span_id: str
    parent_span_id: str
    start_ns: int
    end_ns: int
    kind: int
    status_code: int
    attributes: dict[str, Value]


@dataclass(frozen=True)
class ReceivedPoint:
    """One metric data point (sum/histogram count or gauge value) with its attributes."""

    metric: str
    scope: str
    attributes: dict[str, Value]
    count: float


@dataclass
class OTLPReceiver:
    """``with OTLPReceiver() as rx:``; ``rx.endpoint`` is for OTEL_EXPORTER_OTLP_ENDPOINT."""

    spans: list[ReceivedSpan] = field(default_factory=list)
    points: list[ReceivedPoint] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> OTLPReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path.endswith("/v1/traces"):
                    receiver._traces(body)
                elif self.path.endswith("/v1/metrics"):
                    receiver._metrics(body)
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _traces(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        got = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    got.append(
                        ReceivedSpan(
                            name=span.name,
                            scope=scope_spans.scope.name,
                            service=str(resource.get("service.name", "")),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            kind=span.kind,
                            status_code=span.status.code,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                        )
                    )
        with self._lock:
            self.spans.extend(got)

    def _metrics(self, body: bytes) -> None:
        request = ExportMetricsServiceRequest.FromString(body)
        got = []
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    if kind is None:
                        continue
                    for point in getattr(metric, kind).data_points:
                        if kind == "histogram":
                            count = float(point.count)
                        else:
                            count = float(point.as_double or point.as_int)
                        got.append(
                            ReceivedPoint(
                                metric=metric.name,
                                scope=scope_metrics.scope.name,
                                attributes={a.key: _value(a.value) for a in point.attributes},
                                count=count,
                            )
                        )
        with self._lock:
            self.points.extend(got)

    def wait_for(self, found: Callable[[OTLPReceiver], bool], *, timeout_s: float = 15.0) -> bool:
        """Poll until ``found(self)`` holds (True) or ``timeout_s`` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if found(self):
                    return True
            time.sleep(0.1)
        with self._lock:
            return found(self)
