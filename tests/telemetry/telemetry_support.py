"""Test support: Telemetry wired to in-memory exporters, sample decisions as plain data.

A uniquely named module (not conftest) so other test folders' helpers never shadow it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rlm_router.telemetry import Telemetry


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


def simulate_traffic(telemetry: Telemetry, n: int = 240, seed: int = 0) -> list[str]:
    """Record ``n`` routed requests through the public tracing API; returns decision ids.

    Plain data shaped like production: long or compositional requests escalate to the RLM
    (reported through the engine observer seam), a few explore the other route, some fall
    back, a few fail; about a third get feedback.
    """
    import random
    import time as _time

    from rlm_router.rlm_core.trajectory import Execution, Iteration, ModelCall, Node

    rng = random.Random(seed)
    ids = []
    for i in range(n):
        tokens = int(rng.lognormvariate(8.5, 1.6))
        density = rng.random()
        score = 1 / (1 + math.exp(-(math.log(tokens) - 10.0) - 2.0 * (density - 0.5)))
        chosen = "rlm" if score >= 0.5 else "llm"
        exploration = rng.random() < 0.05
        if exploration:
            chosen = "llm" if chosen == "rlm" else "rlm"
        rule = "over_window" if tokens > 250_000 else None
        decision = SampleDecision(
            id=f"d-{seed}-{i}",
            route=chosen,
            score=score,
            threshold=0.5,
            rule=rule,
            policy_version="default@1",
            exploration=exploration,
            propensity=0.05 if exploration else 0.95,
            features=SampleFeatures({"input_tokens": tokens, "density": density}),
        )
        ids.append(decision.id)
        with telemetry.request_span(model="auto") as req:
            req.decision(decision, duration_s=0.001)
            served, fallback = chosen, None
            if chosen == "llm" and tokens > 200_000:
                fallback, served = "llm_to_rlm", "rlm"
            elif chosen == "rlm" and rng.random() < 0.04:
                fallback, served = "rlm_to_llm", "llm"
            if chosen == "llm":
                with req.chat(model="openai/sim-large") as call:
                    if fallback:
                        call.record_error("ContextWindowExceededError")
                    else:
                        call.record_response(input_tokens=tokens, output_tokens=200)
            if fallback:
                req.fallback(fallback, reason="simulated")
            iterations = sub_calls = None
            if served == "rlm":
                observer = req.rlm_observer()
                node = Node(0, None, 0, "query", tokens * 4)
                observer.on_run_start(node)
                iterations = rng.randint(2, 7)
                sub_calls = 0
                for index in range(iterations):
                    observer.on_iteration_start(node, index)
                    now = _time.time()
                    observer.on_model_call(
                        ModelCall(0, 0, "root", "openai/sim-large", "openai", 3000, 300,
                                  0.007, now, 0.002)
                    )  # fmt: skip
                    batch = rng.randint(0, 4)
                    for _ in range(batch):
                        observer.on_model_call(
                            ModelCall(0, 0, "sub", "openai/sim-mini", "openai", 20000, 150,
                                      0.0053, _time.time(), 0.001)
                        )  # fmt: skip
                    sub_calls += batch
                    execution = Execution("...", "...", None, 0.003, 0.002, False, None, batch)
                    observer.on_repl_execution(node, execution)
                    observer.on_iteration_end(node, Iteration(0, 0, index, "..."))
                node.stopped_reason = "final"
                observer.on_run_end(node, None, None)
            error = "RateLimitError" if rng.random() < 0.02 else None
            if served == "rlm":
                cost = (iterations or 0) * 0.007 + (sub_calls or 0) * 0.0053
                latency = rng.uniform(4000, 9000) * (iterations or 1) / 3
            else:
                cost = tokens * 1.25e-6 + 200 * 1e-5
                latency = rng.uniform(400, 1500) + tokens / 200
            req.outcome(
                route_served=served,
                cost_usd=cost,
                latency_ms=latency,
                input_tokens=tokens,
                output_tokens=200,
                error_type=error,
                stopped_reason="final" if served == "rlm" else "stop",
                rlm_iterations=iterations,
                rlm_sub_calls=sub_calls,
            )
        if rng.random() < 0.3:
            telemetry.record_feedback(decision.id, round(rng.random(), 2))
    return ids


def spread_in_time(source: Path, target: Path, *, interval_s: float) -> None:
    """Copy an OTLP-JSON-lines file, moving trace ``k`` to start ``k * interval_s`` later.

    Traffic simulated in a fraction of a second then looks like hours of production; each
    trace keeps its internal timing.
    """
    import json

    def spans(message: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for resource_spans in message.get("resourceSpans", []):
            for scope_spans in resource_spans.get("scopeSpans", []):
                yield from scope_spans.get("spans", [])

    lines = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    first: dict[str, int] = {}
    for message in lines:
        for span in spans(message):
            start = int(span["startTimeUnixNano"])
            first[span["traceId"]] = min(first.get(span["traceId"], start), start)
    order = sorted(first, key=first.__getitem__)
    base = first[order[0]] if order else 0
    shift = {
        trace: base + int(rank * interval_s * 1e9) - first[trace]
        for rank, trace in enumerate(order)
    }
    for message in lines:
        for span in spans(message):
            delta = shift[span["traceId"]]
            for key in ("startTimeUnixNano", "endTimeUnixNano"):
                span[key] = str(int(span[key]) + delta)
            for event in span.get("events", []):
                event["timeUnixNano"] = str(int(event["timeUnixNano"]) + delta)
    target.write_text("".join(json.dumps(m) + "\n" for m in lines))


def write_sample_traces(directory: Path, *, n: int = 240, seed: int = 0) -> tuple[Path, Path]:
    """Simulated traffic written as our exporter writes it: (traces file, feedback file)."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from rlm_router.telemetry import OtlpJsonLinesSpanExporter

    raw = directory / "raw-traces.jsonl"
    feedback = directory / "feedback.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OtlpJsonLinesSpanExporter(raw)))
    telemetry = Telemetry(tracer_provider=provider, feedback_path=feedback)
    simulate_traffic(telemetry, n, seed)
    telemetry.shutdown()
    traces = directory / "traces.jsonl"
    spread_in_time(raw, traces, interval_s=30.0)  # two hours of traffic at n=240
    return traces, feedback


def scrape_names(port: int) -> set[str]:
    """Series names our Prometheus endpoint exposes (what a scrape sees)."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        line.split("{", 1)[0].split(" ", 1)[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
