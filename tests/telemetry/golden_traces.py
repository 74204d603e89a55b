"""Deterministic traces (seeded ids, fixed times) for the reader's before/after golden files.

The golden report and training output in ``tests/telemetry/data`` were written by the code
before the streaming reader on exactly these traces (``python -m
tests.telemetry.golden_traces DIR`` in that checkout); the streaming reader must reproduce
them byte for byte.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import msgspec
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator

from rlm_router.telemetry import OtlpJsonLinesSpanExporter, Telemetry
from tests.telemetry.telemetry_support import simulate_traffic

BASE_NS = 1_780_000_000 * 10**9
INTERVAL_NS = 30 * 10**9


class SeededIds(IdGenerator):
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def generate_span_id(self) -> int:
        return self._rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._rng.getrandbits(128) or 1


def write_golden_traces(directory: Path, *, n: int = 240) -> tuple[Path, Path]:
    """(traces, feedback): ``simulate_traffic`` with seeded ids at fixed times."""
    raw = directory / "raw-traces.jsonl"
    feedback = directory / "feedback.jsonl"
    for path in (raw, feedback):
        path.unlink(missing_ok=True)  # both exporters append
    provider = TracerProvider(id_generator=SeededIds(7))
    provider.add_span_processor(BatchSpanProcessor(OtlpJsonLinesSpanExporter(raw)))
    telemetry = Telemetry(tracer_provider=provider, feedback_path=feedback)
    simulate_traffic(telemetry, n, seed=3)
    telemetry.shutdown()
    messages = [msgspec.json.decode(line) for line in raw.read_bytes().splitlines() if line.strip()]

    def spans(message: dict) -> list[dict]:  # type: ignore[type-arg]
        return [s for r in message["resourceSpans"] for sc in r["scopeSpans"] for s in sc["spans"]]

    # Trace of request i starts at BASE + i * 30 s (its feedback 15 s later): placed by the
    # decision id simulate_traffic gives it (d-<seed>-<i>), not by when it happened to run.
    place: dict[str, int] = {}
    first: dict[str, int] = {}
    for message in messages:
        for span in spans(message):
            start = int(span["startTimeUnixNano"])
            first[span["traceId"]] = min(first.get(span["traceId"], start), start)
            for attribute in span.get("attributes", []):
                if attribute["key"] == "rlm_router.decision.id":
                    index = int(attribute["value"]["stringValue"].rsplit("-", 1)[1])
                    late = INTERVAL_NS // 2 if span["name"] == "rlm_router.feedback" else 0
                    place[span["traceId"]] = BASE_NS + index * INTERVAL_NS + late
    for message in messages:
        for span in spans(message):
            shift = place[span["traceId"]] - first[span["traceId"]]
            for key in ("startTimeUnixNano", "endTimeUnixNano"):
                span[key] = str(int(span[key]) + shift)
            for event in span.get("events", []):
                event["timeUnixNano"] = str(int(event["timeUnixNano"]) + shift)
    traces = directory / "traces.jsonl"
    traces.write_bytes(b"".join(msgspec.json.encode(m) + b"\n" for m in messages))
    return traces, feedback


def golden_outputs(out: Path) -> None:
    """Write the dashboard page and the training report of the golden traces into ``out``."""
    import contextlib
    import io

    from rlm_router.router.cli import main
    from tests.policies.test_training import long_aggregation_needs_rlm, write_traffic

    out.mkdir(parents=True, exist_ok=True)
    traces, feedback = write_golden_traces(out)
    main(["dashboard", "--traces", str(traces), "--feedback", str(feedback), "-o",
          str(out / "report.html"), "--title", "golden"])  # fmt: skip
    learning = out / "learning"
    learning.mkdir(exist_ok=True)
    for path in learning.glob("*.jsonl"):
        path.unlink()
    traces, feedback = write_traffic(
        learning, n=400, exploration=0.2, truth=long_aggregation_needs_rlm, seed=5
    )
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        main(["train", "--traces", str(traces), "--feedback", str(feedback), "--out",
              str(learning / "artifact.json"), "--version", "golden", "--config",
              str(learning / "policy.yaml")])  # fmt: skip
    (out / "train.txt").write_text(stdout.getvalue().replace(str(learning), "LEARNING"))


if __name__ == "__main__":
    golden_outputs(Path(sys.argv[1]))
