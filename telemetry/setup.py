"""``Telemetry``: the tracer, the metric instruments and the exporters behind them.

``Telemetry(...)`` takes providers you pass in (tests wire in-memory exporters this way) and
never touches the global OpenTelemetry providers. ``Telemetry.from_env()`` builds providers
from the standard ``OTEL_*`` variables; with nothing configured, spans go to an OTLP-JSON-lines
file (``RLM_ROUTER_TRACES_FILE``, default ``./rlm-router-traces.jsonl``).

Exporting happens on background threads (``BatchSpanProcessor``, periodic metric reader):
a slow or failing exporter drops data, never fails or slows a request, and says so once in
the log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

from opentelemetry import context as otel_context
from opentelemetry.metrics import MeterProvider, NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider as SDKMeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import NoOpTracerProvider, Tracer, TracerProvider

from telemetry import semconv as sc
from telemetry.metrics import RouterMetrics
from telemetry.tracing import RequestTrace

if TYPE_CHECKING:
    from telemetry.feedback import FeedbackRecord

logger = logging.getLogger("telemetry")

TRACER_NAME: Final = "rlm_router"
TRACES_FILE_ENV: Final = "RLM_ROUTER_TRACES_FILE"
FEEDBACK_FILE_ENV: Final = "RLM_ROUTER_FEEDBACK_FILE"
DEFAULT_TRACES_FILE: Final = "rlm-router-traces.jsonl"
DEFAULT_FEEDBACK_FILE: Final = "rlm-router-feedback.jsonl"
DEFAULT_PROMETHEUS_PORT: Final = 9464
# Our name for the embedded exporter in OTEL_TRACES_EXPORTER lists.
FILE_EXPORTER_NAME: Final = "otlp_json_file"


class TelemetryConfigError(ValueError):
    """An ``OTEL_*`` / ``RLM_ROUTER_*`` setting has a value we cannot use."""


class GuardedSpanExporter(SpanExporter):
    """Wraps an exporter so that failures are contained and logged once.

    The batch processor already runs exports off the request path; this makes sure an
    exporter that raises or keeps failing (collector down, read-only file) produces one
    warning, not one per batch, and never an exception.
    """

    def __init__(self, inner: SpanExporter, name: str) -> None:
        self.inner = inner
        self.name = name
        self.failures = 0
        self._warned = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
            detail = getattr(self.inner, "last_error", None) or "export returned FAILURE"
        except Exception as exc:  # any exporter bug must stay off the request path
            result, detail = SpanExportResult.FAILURE, exc
        if result is not SpanExportResult.SUCCESS:
            self.failures += 1
            if not self._warned:
                self._warned = True
                logger.warning(
                    "telemetry: span exporter %s failed (%s); spans are being dropped, "
                    "further failures are not logged",
                    self.name,
                    detail,
                )
        return result

    def shutdown(self) -> None:
        try:
            self.inner.shutdown()
        except Exception as exc:
            logger.warning("telemetry: span exporter %s failed to shut down: %s", self.name, exc)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return self.inner.force_flush(timeout_millis)
        except Exception:
            return False


class Telemetry:
    """Tracer, metrics and settings shared by every request.

    Pass SDK providers to export somewhere; without them, everything is a no-op (cheap).
    ``capture_content`` defaults to the standard switch
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``, read once here.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        capture_content: bool | None = None,
        feedback_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.tracer_provider: TracerProvider = tracer_provider or NoOpTracerProvider()
        self.meter_provider: MeterProvider = meter_provider or NoOpMeterProvider()
        self.tracer: Tracer = self.tracer_provider.get_tracer(TRACER_NAME)
        self.metrics = RouterMetrics(self.meter_provider)
        self.capture_content = (
            sc.capture_content_from_env() if capture_content is None else capture_content
        )
        self.feedback_path = Path(feedback_path) if feedback_path is not None else None
        self.span_exporters: list[GuardedSpanExporter] = []
        self._prometheus_registry: object | None = None
        self._prometheus_server: object | None = None
        # The port the Prometheus endpoint listens on, once started.
        self.prometheus_port: int | None = None
        # Exporters whose shutdown() aborts a retry loop (see shutdown()).
        self._abortable: list[SpanExporter | MetricExporter] = []
        self._shutdown_lock = threading.Lock()
        self._shut_down = False

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        service_name: str = "rlm-router",
    ) -> Telemetry:
        """Providers and exporters configured by the standard environment variables.

        Traces: ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``, ``none``, ``otlp_json_file``;
        default ``otlp`` when an OTLP endpoint is set, else the JSON-lines file), protocol
        from ``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL`` (``http/protobuf`` or ``grpc``). The file
        is also written whenever ``RLM_ROUTER_TRACES_FILE`` is set. Endpoint, protocol and
        timeout are read from ``environ``; headers, certificates and compression the OTLP
        exporters read from the process environment themselves.
        Metrics: ``OTEL_METRICS_EXPORTER`` (``otlp``, ``prometheus``, ``console``, ``none``;
        default ``otlp`` when an OTLP endpoint is set, else none); Prometheus listens on
        ``OTEL_EXPORTER_PROMETHEUS_HOST``:``OTEL_EXPORTER_PROMETHEUS_PORT`` (default
        127.0.0.1:9464). ``OTEL_SDK_DISABLED=true`` turns everything off.
        """
        env = dict(os.environ if environ is None else environ)
        capture = sc.capture_content_from_env(env)
        feedback_path = env.get(FEEDBACK_FILE_ENV, DEFAULT_FEEDBACK_FILE)
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return cls(capture_content=capture, feedback_path=feedback_path)

        resource = Resource.create({SERVICE_NAME: env.get("OTEL_SERVICE_NAME", service_name)})
        tracer_provider = SDKTracerProvider(resource=resource)
        exporters = [
            GuardedSpanExporter(_span_exporter(name, env), name)
            for name in _trace_exporter_names(env)
        ]
        for span_exporter in exporters:
            tracer_provider.add_span_processor(
                BatchSpanProcessor(
                    span_exporter,
                    max_queue_size=_optional_int(env, "OTEL_BSP_MAX_QUEUE_SIZE"),
                    schedule_delay_millis=_optional_int(env, "OTEL_BSP_SCHEDULE_DELAY"),
                    max_export_batch_size=_optional_int(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
                    export_timeout_millis=_optional_int(env, "OTEL_BSP_EXPORT_TIMEOUT"),
                )
            )

        readers: list[MetricReader] = []
        metric_exporters: list[MetricExporter] = []
        prometheus_address: tuple[str, int] | None = None
        registry = None
        for name in _metric_exporter_names(env):
            if name == "prometheus":
                from opentelemetry.exporter.prometheus import PrometheusMetricReader
                from prometheus_client import CollectorRegistry

                registry = CollectorRegistry(auto_describe=True)
                readers.append(PrometheusMetricReader(registry=registry))
                prometheus_address = (
                    env.get("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1"),
                    _int_setting(env, "OTEL_EXPORTER_PROMETHEUS_PORT", DEFAULT_PROMETHEUS_PORT),
                )
            else:
                metric_exporter = _metric_exporter(name, env)
                interval = _int_setting(env, "OTEL_METRIC_EXPORT_INTERVAL", 60000)
                readers.append(
                    PeriodicExportingMetricReader(metric_exporter, export_interval_millis=interval)
                )
                metric_exporters.append(metric_exporter)
        meter_provider = SDKMeterProvider(resource=resource, metric_readers=readers)

        telemetry = cls(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            capture_content=capture,
            feedback_path=feedback_path,
        )
        telemetry.span_exporters = exporters
        telemetry._abortable = [e.inner for e in exporters] + metric_exporters
        telemetry._prometheus_registry = registry
        if prometheus_address is not None:
            telemetry.start_prometheus_server(*prometheus_address)
        return telemetry

    @classmethod
    def with_prometheus(
        cls,
        *,
        tracer_provider: TracerProvider | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        capture_content: bool | None = None,
    ) -> tuple[Telemetry, int]:
        """Telemetry whose metrics are served for Prometheus on ``host:port`` (0 = any port).

        Returns the telemetry and the port it listens on.
        """
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry

        registry = CollectorRegistry(auto_describe=True)
        meter_provider = SDKMeterProvider(
            metric_readers=[PrometheusMetricReader(registry=registry)]
        )
        telemetry = cls(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            capture_content=capture_content,
        )
        telemetry._prometheus_registry = registry
        return telemetry, telemetry.start_prometheus_server(host, port)

    def start_prometheus_server(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve the Prometheus reader's registry over HTTP; returns the bound port."""
        from prometheus_client import CollectorRegistry, start_http_server

        if not isinstance(self._prometheus_registry, CollectorRegistry):
            raise TelemetryConfigError("this Telemetry has no Prometheus metric reader")
        server, _thread = start_http_server(port, addr=host, registry=self._prometheus_registry)
        self._prometheus_server = server
        self.prometheus_port = int(server.server_port)
        return self.prometheus_port

    def start_request(
        self,
        *,
        model: str | None = None,
        stream: bool | None = None,
        parent: otel_context.Context | None = None,
        attributes: Mapping[str, sc.AttributeValue | None] | None = None,
    ) -> RequestTrace:
        """Start the ``rlm_router.request`` span; the caller must ``end()`` it.

        For requests that outlive the calling frame (streams); otherwise prefer
        ``request_span()``. ``parent`` defaults to the current context; the span is not
        made current.
        """
        return RequestTrace(
            self,
            parent=parent,
            attributes={
                sc.GEN_AI_REQUEST_MODEL: model,
                sc.REQUEST_STREAM: stream,
                **(attributes or {}),
            },
        )

    @contextmanager
    def request_span(
        self,
        *,
        model: str | None = None,
        stream: bool | None = None,
        parent: otel_context.Context | None = None,
        attributes: Mapping[str, sc.AttributeValue | None] | None = None,
    ) -> Iterator[RequestTrace]:
        """Open the ``rlm_router.request`` span for one request.

        ``parent`` defaults to the current context (e.g. an incoming ``traceparent``); the
        new span is not made current. An exception leaving the block is recorded as the
        outcome's ``error_type`` if no outcome was recorded, and re-raised.
        """
        request = self.start_request(
            model=model, stream=stream, parent=parent, attributes=attributes
        )
        try:
            yield request
        except BaseException as exc:
            request.end(exc)
            raise
        request.end()

    def record_feedback(
        self,
        decision_id: str,
        quality: float,
        *,
        source: str = "app",
        trace_id: str | None = None,
        comment: str | None = None,
    ) -> FeedbackRecord:
        """Report the outcome quality (0..1) of a decision; see ``telemetry.feedback``."""
        from telemetry.feedback import record_feedback

        return record_feedback(
            self, decision_id, quality, source=source, trace_id=trace_id, comment=comment
        )

    def force_flush(self, timeout_s: float = 5.0) -> None:
        """Export what is buffered now (bounded by ``timeout_s``)."""
        flush = getattr(self.tracer_provider, "force_flush", None)
        if flush is not None:
            flush(int(timeout_s * 1000))
        flush = getattr(self.meter_provider, "force_flush", None)
        if flush is not None:
            flush(int(timeout_s * 1000))

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Flush and stop the exporters and the Prometheus endpoint (idempotent).

        Bounded: an exporter still retrying against an unreachable backend after
        ``timeout_s`` is told to stop, and what it held is dropped with a warning.
        """
        with self._shutdown_lock:
            if self._shut_down:
                return
            self._shut_down = True
        stoppers = [
            stop
            for provider in (self.tracer_provider, self.meter_provider)
            if (stop := getattr(provider, "shutdown", None)) is not None
        ]
        worker = threading.Thread(
            target=lambda: [stop() for stop in stoppers], name="telemetry-shutdown", daemon=True
        )
        worker.start()
        worker.join(timeout_s)
        if worker.is_alive():
            for exporter in self._abortable:
                with contextlib.suppress(Exception):
                    exporter.shutdown()  # interrupts the exporters' retry back-off
            worker.join(1.0)
            logger.warning(
                "telemetry: exporters did not finish within %.1f s at shutdown; "
                "unsent telemetry was dropped",
                timeout_s,
            )
        server = self._prometheus_server
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
            server.server_close()  # type: ignore[attr-defined]


def _names(env: Mapping[str, str], key: str) -> list[str] | None:
    raw = env.get(key)
    if raw is None or not raw.strip():
        return None
    return [name.strip().lower() for name in raw.split(",") if name.strip()]


def _otlp_configured(env: Mapping[str, str], signal: str) -> bool:
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
    )


def _trace_exporter_names(env: Mapping[str, str]) -> list[str]:
    names = _names(env, "OTEL_TRACES_EXPORTER")
    if names is None:
        names = ["otlp"] if _otlp_configured(env, "TRACES") else [FILE_EXPORTER_NAME]
    if env.get(TRACES_FILE_ENV) and FILE_EXPORTER_NAME not in names:
        names.append(FILE_EXPORTER_NAME)
    return [name for name in names if name != "none"]


def _metric_exporter_names(env: Mapping[str, str]) -> list[str]:
    names = _names(env, "OTEL_METRICS_EXPORTER")
    if names is None:
        names = ["otlp"] if _otlp_configured(env, "METRICS") else []
    return [name for name in names if name != "none"]


def _protocol(env: Mapping[str, str], signal: str) -> str:
    protocol = (
        env.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol not in ("http/protobuf", "grpc"):
        raise TelemetryConfigError(
            f"OTLP protocol {protocol!r} is not supported (use http/protobuf or grpc)"
        )
    return protocol


def _endpoint(env: Mapping[str, str], signal: str, protocol: str) -> str | None:
    """The signal's endpoint from our ``environ`` (the exporters would read os.environ)."""
    specific = env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
    if specific:
        return specific
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not base:
        return None
    if protocol == "grpc":
        return base
    return base.rstrip("/") + f"/v1/{signal.lower()}"


def _timeout(env: Mapping[str, str], signal: str) -> float | None:
    """Export timeout in seconds (the Python exporters' unit), None = exporter default."""
    raw = env.get(f"OTEL_EXPORTER_OTLP_{signal}_TIMEOUT") or env.get("OTEL_EXPORTER_OTLP_TIMEOUT")
    if raw is None or not raw.strip():
        return None
    try:
        return float(raw)
    except ValueError as exc:
        raise TelemetryConfigError(f"OTLP timeout {raw!r} is not a number") from exc


def _optional_int(env: Mapping[str, str], key: str) -> int | None:
    return _int_setting(env, key, 0) if env.get(key, "").strip() else None


def _int_setting(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise TelemetryConfigError(f"{key}={raw!r} is not an integer") from exc


def _span_exporter(name: str, env: Mapping[str, str]) -> SpanExporter:
    if name == FILE_EXPORTER_NAME:
        from telemetry.otlp_json import OtlpJsonLinesSpanExporter

        return OtlpJsonLinesSpanExporter(env.get(TRACES_FILE_ENV) or DEFAULT_TRACES_FILE)
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name == "otlp":
        protocol = _protocol(env, "TRACES")
        endpoint = _endpoint(env, "TRACES", protocol)
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcSpanExporter,
            )

            return GrpcSpanExporter(endpoint=endpoint, timeout=_timeout(env, "TRACES"))
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpSpanExporter,
        )

        return HttpSpanExporter(endpoint=endpoint, timeout=_timeout(env, "TRACES"))
    raise TelemetryConfigError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r}")


def _metric_exporter(name: str, env: Mapping[str, str]) -> MetricExporter:
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

    exporter: MetricExporter
    if name == "console":
        exporter = ConsoleMetricExporter()
    elif name == "otlp":
        protocol = _protocol(env, "METRICS")
        endpoint = _endpoint(env, "METRICS", protocol)
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter as GrpcMetricExporter,
            )

            exporter = GrpcMetricExporter(endpoint=endpoint, timeout=_timeout(env, "METRICS"))
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter as HttpMetricExporter,
            )

            exporter = HttpMetricExporter(endpoint=endpoint, timeout=_timeout(env, "METRICS"))
    else:
        raise TelemetryConfigError(f"OTEL_METRICS_EXPORTER: unknown exporter {name!r}")
    return exporter
