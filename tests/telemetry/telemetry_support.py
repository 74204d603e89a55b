"""Test support: Telemetry wired to in-memory exporters, sample decisions as plain data.

A uniquely named module (not conftest) so other test folders' helpers never shadow it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telemetry import Telemetry


@dataclass(frozen=True)
class SampleFeatures:
    values: Mapping[str, float | int | bool]

    def as_dict(self) -> Mapping[str, float | int | bool]:
        return self.values


@dataclass(frozen=True)
class SampleDecision:
    """The shape of ``policies.Decision`` that telemetry reads (``semconv.DecisionLike``)."""

    id: str = "d-1"
    route: str = "llm"
    score: float | None = 0.25
    threshold: float | None = 0.5
    rule: str | None = None
    policy_version: str | None = "default@1"
    exploration: bool = False
    propensity: float | None = 0.95
    features: SampleFeatures | None = field(
        default_factory=lambda: SampleFeatures(
            {"input_tokens": 1200, "window_ratio": 0.004, "density": 0.31, "stream": False}
        )
    )


@dataclass
class Wired:
    telemetry: Telemetry
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def by_name(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.finished() if span.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.by_name(name)
        assert len(found) == 1, (name, [s.name for s in self.finished()])
        return found[0]

    def metric_points(self, name: str) -> list[tuple[dict[str, object], object]]:
        """(attributes, point) of every data point of metric ``name``."""
        data = self.metrics.get_metrics_data()
        out: list[tuple[dict[str, object], object]] = []
        if data is None:
            return out
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == name:
                        out += [(dict(p.attributes or {}), p) for p in metric.data.data_points]
        return out


def wired_telemetry(capture_content: bool) -> Iterator[Wired]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry = Telemetry(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        capture_content=capture_content,
    )
    yield Wired(telemetry, spans, reader)
    telemetry.shutdown()
