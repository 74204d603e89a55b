"""Exporters chosen from the standard ``OTEL_*`` variables, and the guard for their failures.

Only what rlm-router needs of the OTel SDK's autoconfiguration (which requires a distro):
trace exporters ``otlp`` (http/protobuf or grpc), ``console``, ``none`` and our
``otlp_json_file``; metric exporters ``otlp``, ``prometheus``, ``console``, ``none``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Final

from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from rlm_router.rlm_core.errors import ConfigError

logger = logging.getLogger("rlm_router.telemetry")

TRACES_FILE_ENV: Final = "RLM_ROUTER_TRACES_FILE"
FEEDBACK_FILE_ENV: Final = "RLM_ROUTER_FEEDBACK_FILE"
DEFAULT_TRACES_FILE: Final = "rlm-router-traces.jsonl"
DEFAULT_FEEDBACK_FILE: Final = "rlm-router-feedback.jsonl"
DEFAULT_PROMETHEUS_PORT: Final = 9464
# Our name for the embedded exporter in OTEL_TRACES_EXPORTER lists.
FILE_EXPORTER_NAME: Final = "otlp_json_file"


class TelemetryConfigError(ConfigError):
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
        detail: object = None
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # any exporter bug must stay off the request path
            result, detail = SpanExportResult.FAILURE, exc
        if result is not SpanExportResult.SUCCESS:
            detail = detail or getattr(self.inner, "last_error", None) or "export failed"
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


def _names(env: Mapping[str, str], key: str) -> list[str] | None:
    raw = env.get(key)
    if raw is None or not raw.strip():
        return None
    return [name.strip().lower() for name in raw.split(",") if name.strip()]


def _otlp_configured(env: Mapping[str, str], signal: str) -> bool:
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
    )


def trace_exporter_names(env: Mapping[str, str]) -> list[str]:
    names = _names(env, "OTEL_TRACES_EXPORTER")
    if names is None:
        names = ["otlp"] if _otlp_configured(env, "TRACES") else [FILE_EXPORTER_NAME]
    if env.get(TRACES_FILE_ENV) and FILE_EXPORTER_NAME not in names:
        names.append(FILE_EXPORTER_NAME)
    return [name for name in names if name != "none"]


def metric_exporter_names(env: Mapping[str, str]) -> list[str]:
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


def optional_int(env: Mapping[str, str], key: str) -> int | None:
    return int_setting(env, key, 0) if env.get(key, "").strip() else None


def int_setting(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise TelemetryConfigError(f"{key}={raw!r} is not an integer") from exc


def span_exporter(name: str, env: Mapping[str, str]) -> SpanExporter:
    if name == FILE_EXPORTER_NAME:
        from rlm_router.telemetry.otlp_json import OtlpJsonLinesSpanExporter

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


def metric_exporter(name: str, env: Mapping[str, str]) -> MetricExporter:
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
