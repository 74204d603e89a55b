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
from collections.abc import Iterator, Mapping
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
from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import NoOpTracerProvider, Tracer, TracerProvider

from rlm_router.telemetry import semconv as sc
from rlm_router.telemetry.exporters import (
    DEFAULT_FEEDBACK_FILE,
    DEFAULT_PROMETHEUS_PORT,
    FEEDBACK_FILE_ENV,
    GuardedSpanExporter,
    TelemetryConfigError,
    int_setting,
    metric_exporter,
    metric_exporter_names,
    optional_int,
    span_exporter,
    trace_exporter_names,
)
from rlm_router.telemetry.metrics import RouterMetrics
from rlm_router.telemetry.tracing import RequestTrace

if TYPE_CHECKING:
    from rlm_router.telemetry.feedback import FeedbackRecord

logger = logging.getLogger("rlm_router.telemetry")

TRACER_NAME: Final = "rlm_router"


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
    def from_api(cls) -> Telemetry:
        """The OpenTelemetry API's global providers: whatever SDK the application configured
        (``trace.set_tracer_provider`` / ``metrics.set_meter_provider``, also when it does so
        later), else no-op. What the library uses when it is given no ``Telemetry``."""
        from opentelemetry import metrics, trace

        return cls(
            tracer_provider=trace.get_tracer_provider(),
            meter_provider=metrics.get_meter_provider(),
        )

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
            GuardedSpanExporter(span_exporter(name, env), name)
            for name in trace_exporter_names(env)
        ]
        for guarded in exporters:
            tracer_provider.add_span_processor(
                BatchSpanProcessor(
                    guarded,
                    max_queue_size=optional_int(env, "OTEL_BSP_MAX_QUEUE_SIZE"),
                    schedule_delay_millis=optional_int(env, "OTEL_BSP_SCHEDULE_DELAY"),
                    max_export_batch_size=optional_int(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
                    export_timeout_millis=optional_int(env, "OTEL_BSP_EXPORT_TIMEOUT"),
                )
            )

        readers: list[MetricReader] = []
        metric_exporters: list[MetricExporter] = []
        prometheus_address: tuple[str, int] | None = None
        registry = None
        for name in metric_exporter_names(env):
            if name == "prometheus":
                from opentelemetry.exporter.prometheus import PrometheusMetricReader
                from prometheus_client import CollectorRegistry

                registry = CollectorRegistry(auto_describe=True)
                readers.append(PrometheusMetricReader(registry=registry))
                prometheus_address = (
                    env.get("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1"),
                    int_setting(env, "OTEL_EXPORTER_PROMETHEUS_PORT", DEFAULT_PROMETHEUS_PORT),
                )
            else:
                exporter = metric_exporter(name, env)
                interval = int_setting(env, "OTEL_METRIC_EXPORT_INTERVAL", 60000)
                readers.append(
                    PeriodicExportingMetricReader(exporter, export_interval_millis=interval)
                )
                metric_exporters.append(exporter)
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
            host, port = prometheus_address
            try:
                telemetry.start_prometheus_server(host, port)
            except OSError as exc:
                # Only the scrape endpoint is lost: traces and feedback go on being recorded.
                logger.warning(
                    "telemetry: metrics disabled: cannot serve Prometheus on %s:%d (%s); "
                    "set OTEL_EXPORTER_PROMETHEUS_PORT to a free port. Traces and feedback "
                    "are still recorded.",
                    host,
                    port,
                    exc.strerror or exc,
                )
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
        start_time_ns: int | None = None,
    ) -> RequestTrace:
        """Start the ``rlm_router.request`` span; the caller must ``end()`` it.

        For requests that outlive the calling frame (streams); otherwise prefer
        ``request_span()``. ``parent`` defaults to the current context; the span is not
        made current. ``start_time_ns`` (wall clock) when the request arrived, if earlier.
        """
        return RequestTrace(
            self,
            parent=parent,
            attributes={
                sc.GEN_AI_REQUEST_MODEL: model,
                sc.REQUEST_STREAM: stream,
                **(attributes or {}),
            },
            start_time_ns=start_time_ns,
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
        from rlm_router.telemetry.feedback import record_feedback

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
