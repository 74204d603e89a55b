"""A corpus of production-shaped traces of any size, for the trace-analytics benchmark.

A *template* of routed requests is recorded through the real code: ``policies.decide`` on
synthetic features under the shipped prior with exploration, and the real ``Telemetry``
(request and decide spans, the direct call's ``chat`` span, the RLM run's spans through the
engine observer seam, fallback events, errors, feedback spans and the feedback file) written
by our ``OtlpJsonLinesSpanExporter`` behind a ``BatchSpanProcessor``. The corpus repeats the
template's lines, each copy with fresh trace, span and decision ids and moved later in time, so
``requests`` is reached at a few microseconds per span and every line has the exporter's shape.
Trace files are rotated every ``requests_per_file`` requests
(``traces/traces-00000.jsonl[.gz]``), as a rotating file exporter leaves them; the feedback
file (``feedback.jsonl``) lies beside that directory.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import msgspec

TEMPLATE_REQUESTS = 1000
# The template's requests are spread this far apart (s), so the corpus covers a time range
# like a gateway's: 1M requests at 0.1 s is ~28 hours.
INTERVAL_S = 0.1


@dataclass(frozen=True, kw_only=True)
class Corpus:
    """The files of a generated corpus."""

    traces: tuple[Path, ...]
    feedback: Path
    requests: int
    spans: int
    bytes: int


def policy_yaml(directory: Path, artifact: str = "default") -> Path:
    path = directory / "policy.yaml"
    path.write_text(
        "version: 1\nname: corpus\n"
        "models:\n  direct: {model: openai/sim-large, context_window: 272000}\n"
        "  rlm_root: {model: openai/sim-large, context_window: 272000}\n"
        "  rlm_sub: {model: openai/sim-mini, context_window: 272000}\n"
        f"classifier: {{artifact: {artifact}, threshold: 0.5}}\n"
        "exploration: {rate: 0.05, seed: 1}\n"
    )
    return path


def _features(rng: random.Random) -> Any:
    from rlm_router.policies.features import RequestFeatures

    n_tokens = int(2 ** rng.uniform(8, 18))
    aggregation = rng.random() < 0.4
    pairs = aggregation and rng.random() < 0.3
    multihop = rng.random() < 0.1
    values: dict[str, Any] = {f.name: 0 for f in dataclasses.fields(RequestFeatures)}
    values.update(
        n_tokens=n_tokens,
        tokens_estimated=int(n_tokens > 100_000),
        n_chars=4 * n_tokens,
        question_chars=rng.randint(20, 400),
        context_window=272_000,
        window_ratio=n_tokens / 272_000,
        log2_tokens=math.log2(1 + n_tokens),
        compress_ratio=rng.uniform(0.2, 0.7),
        record_line_frac=rng.uniform(0.6, 1.0) if aggregation else rng.uniform(0.0, 0.2),
        line_density=rng.uniform(0.0, 0.05),
        digit_rate=rng.uniform(0.0, 0.2),
        entity_rate=rng.uniform(0.0, 0.1),
        lexical_diversity=rng.uniform(0.1, 0.9),
        prose_line_frac=rng.uniform(0.0, 0.4) if aggregation else rng.uniform(0.5, 1.0),
        dense_frac=rng.uniform(0.5, 1.0) if aggregation else rng.uniform(0.0, 0.3),
        task_aggregate=float(aggregation and not pairs),
        task_pairwise=float(pairs),
        task_multihop=float(multihop),
        task_lookup=float(not aggregation and not multihop),
        task_compositional=float(aggregation or multihop),
        task_confidence=rng.uniform(0.5, 1.0),
        agg_cues=int(aggregation),
        pair_cues=int(pairs),
        multihop_cues=int(multihop),
        lookup_cues=int(not aggregation),
        stream=int(rng.random() < 0.2),
        n_messages=rng.randint(1, 3),
        n_turns=1,
    )
    known = {f.name for f in dataclasses.fields(RequestFeatures)}
    return RequestFeatures(**{k: v for k, v in values.items() if k in known})


def record_template(directory: Path, *, requests: int = TEMPLATE_REQUESTS, seed: int = 0) -> Path:
    """Serve ``requests`` synthetic requests through the real telemetry; the traces file."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from rlm_router.policies import LinearClassifier, decide, parse_policy
    from rlm_router.rlm_core.trajectory import Execution, Iteration, ModelCall, Node
    from rlm_router.telemetry import OtlpJsonLinesSpanExporter, Telemetry

    directory.mkdir(parents=True, exist_ok=True)
    traces = directory / "template-traces.jsonl"
    traces.unlink(missing_ok=True)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OtlpJsonLinesSpanExporter(traces)))
    telemetry = Telemetry(tracer_provider=provider)
    policy = parse_policy(policy_yaml(directory).read_text())
    prior = LinearClassifier.load(
        Path(__file__).parents[1] / "policies" / "default_classifier.json"
    )
    rng = random.Random(seed)
    for _ in range(requests):
        features = _features(rng)
        decision = decide(policy, prior, features, rng=rng)
        aggregation = features.agg_cues > 0
        with telemetry.request_span(model="auto") as req:
            req.decision(decision, duration_s=0.0004)
            served, fallback = decision.route, None
            if served == "rlm" and rng.random() < 0.03:
                fallback, served = "rlm_to_llm", "llm"
            error = "RateLimitError" if rng.random() < 0.02 else None
            iterations = sub_calls = None
            if decision.route == "rlm":
                iterations, sub_calls = _rlm_run(req.rlm_observer(), features, rng, ModelCall,
                                                 Execution, Iteration, Node)  # fmt: skip
            if fallback:
                req.fallback(fallback, reason="budget")
            if served == "llm":
                with req.chat(model="openai/sim-large") as call:
                    if error:
                        call.record_error(error)
                    else:
                        call.record_response(input_tokens=features.n_tokens, output_tokens=200)
            if served == "rlm":
                quality = 0.9
                cost = (iterations or 0) * 0.007 + (sub_calls or 0) * 0.0013
                latency = rng.uniform(3000, 9000) * (iterations or 1) / 3
            else:
                long_agg = aggregation and features.n_tokens > 16_000
                quality = 0.2 if long_agg else 0.95
                cost = features.n_tokens * 1.25e-6 + 200 * 1e-5
                latency = rng.uniform(300, 1500) + features.n_tokens / 200
            req.outcome(
                route_served=served,
                cost_usd=cost,
                latency_ms=latency,
                input_tokens=features.n_tokens,
                output_tokens=200,
                error_type=error,
                stopped_reason="final" if served == "rlm" else "stop",
                rlm_iterations=iterations if served == "rlm" else None,
                rlm_sub_calls=sub_calls if served == "rlm" else None,
            )
        if error is None and rng.random() < 0.6:
            telemetry.record_feedback(
                decision.id, round(min(1.0, max(0.0, rng.gauss(quality, 0.05))), 2)
            )
    telemetry.shutdown()
    return traces


def _rlm_run(observer: Any, features: Any, rng: random.Random, ModelCall: Any, Execution: Any,
             Iteration: Any, Node: Any) -> tuple[int, int]:  # fmt: skip
    node = Node(0, None, 0, "query", features.n_chars)
    observer.on_run_start(node)
    iterations = rng.randint(2, 6)
    sub_calls = 0
    for index in range(iterations):
        observer.on_iteration_start(node, index)
        observer.on_model_call(
            ModelCall(0, 0, "root", "openai/sim-large", "openai", 3000, 300, 0.007,
                      time.time(), 0.002)
        )  # fmt: skip
        batch = rng.choice((0, 0, 1, 2, 4))
        for _ in range(batch):
            observer.on_model_call(
                ModelCall(0, 0, "sub", "openai/sim-mini", "openai", 20000, 150, 0.0013,
                          time.time(), 0.001)
            )  # fmt: skip
        sub_calls += batch
        observer.on_repl_execution(
            node, Execution("...", "...", None, 0.003, 0.002, False, None, batch)
        )
        observer.on_iteration_end(node, Iteration(0, 0, index, "..."))
    node.stopped_reason = "final"
    observer.on_run_end(node, None, None)
    return iterations, sub_calls


@dataclass
class _Template:
    lines: list[list[bytes | int | None]]  # literal bytes, time slots (an index), id slots (None)
    times: list[int]  # each time slot's value in copy 0
    requests: int  # request spans per copy
    spans: int
    feedback: list[tuple[int, str, float]]  # (time slot, decision id, quality) per report


def _spans(message: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for resource_spans in message.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            yield from scope_spans.get("spans", [])


_ID_MARK = "@@id@"  # stands for the first 7 characters of each id: the copy number
_SLOT = re.compile(rb"@@id@|@@t(\d+)@@")


def _compile(path: Path, base_ns: int) -> _Template:
    """The template's lines split around the ids and times each copy rewrites.

    Trace ``k`` of the corpus starts ``base_ns + k * INTERVAL_S``; the spans of a trace keep
    their offsets from its first span.
    """
    messages = [
        msgspec.json.decode(line) for line in path.read_bytes().splitlines() if line.strip()
    ]
    first: dict[str, int] = {}
    requests = spans = 0
    for message in messages:
        for span in _spans(message):
            spans += 1
            requests += span.get("name") == "rlm_router.request"
            start = int(span["startTimeUnixNano"])
            first[span["traceId"]] = min(first.get(span["traceId"], start), start)
    rank = {trace: i for i, trace in enumerate(sorted(first, key=first.__getitem__))}
    times: list[int] = []
    feedback: list[tuple[int, str, float]] = []

    def slot(value: str, trace: str) -> str:
        times.append(int(value) + base_ns + int(rank[trace] * INTERVAL_S * 1e9) - first[trace])
        return f"@@t{len(times) - 1}@@"

    lines = []
    for message in messages:
        for span in _spans(message):
            trace = span["traceId"]
            for key in ("traceId", "spanId", "parentSpanId"):
                if span.get(key):
                    span[key] = _ID_MARK + span[key][7:]
            for key in ("startTimeUnixNano", "endTimeUnixNano"):
                span[key] = slot(span[key], trace)
            for event in span.get("events", ()):
                event["timeUnixNano"] = slot(event["timeUnixNano"], trace)
            attributes = {a["key"]: a["value"] for a in span.get("attributes", ())}
            decision = attributes.get("rlm_router.decision.id")
            if decision is not None:
                decision["stringValue"] = decision["stringValue"][:25] + _ID_MARK
            if span.get("name") == "rlm_router.feedback" and decision is not None:
                quality = float(attributes["rlm_router.outcome.quality"]["doubleValue"])
                feedback.append((len(times) - 2, decision["stringValue"][:25], quality))
        encoded = msgspec.json.encode(message)
        pieces: list[bytes | int | None] = []
        at = 0
        for match in _SLOT.finditer(encoded):
            pieces.append(encoded[at : match.start()])
            pieces.append(int(match.group(1)) if match.group(1) is not None else None)
            at = match.end()
        pieces.append(encoded[at:])
        lines.append(pieces)
    return _Template(lines, times, requests, spans, feedback)


def _open(path: Path, gzipped: bool) -> IO[bytes]:
    return cast(IO[bytes], gzip.open(path, "wb", compresslevel=1)) if gzipped else path.open("wb")


def _render(pieces: list[bytes | int | None], times: list[bytes], prefix: bytes) -> bytes:
    return b"".join(
        piece if isinstance(piece, bytes) else prefix if piece is None else times[piece]
        for piece in pieces
    )


def generate(
    directory: Path,
    requests: int,
    *,
    requests_per_file: int = 100_000,
    gzipped: bool = False,
    template_requests: int = TEMPLATE_REQUESTS,
    seed: int = 0,
) -> Corpus:
    """Write a corpus of about ``requests`` requests (whole template copies) to ``directory``.

    The template is recorded once, beside ``directory`` (so corpora of several sizes share it).
    """
    from rlm_router.telemetry import FeedbackRecord

    manifest = directory / "corpus.json"
    key = {"requests": requests, "per_file": requests_per_file, "gzip": gzipped,
           "template": template_requests, "seed": seed}  # fmt: skip
    if manifest.exists():
        saved = json.loads(manifest.read_text())
        if saved.get("key") == key:
            return Corpus(
                traces=tuple(Path(p) for p in saved["traces"]),
                feedback=Path(saved["feedback"]),
                requests=saved["requests"],
                spans=saved["spans"],
                bytes=saved["bytes"],
            )
    (directory / "traces").mkdir(parents=True, exist_ok=True)
    template_dir = directory.parent / f"template-{template_requests}-{seed}"
    template_path = template_dir / "template-traces.jsonl"
    if not template_path.exists():
        record_template(template_dir, requests=template_requests, seed=seed)
    base_ns = 1_780_000_000 * 10**9  # 2026-05-28: a fixed origin, so runs compare
    template = _compile(template_path, base_ns)
    copies = max(1, round(requests / template.requests))
    per_file = max(1, requests_per_file // template.requests)
    step_ns = int(template.requests * INTERVAL_S * 1e9)
    traces: list[Path] = []
    feedback_path = directory / "feedback.jsonl"
    written = 0
    with feedback_path.open("wb") as feedback:
        for first in range(0, copies, per_file):
            name = f"traces-{len(traces):05d}.jsonl" + (".gz" if gzipped else "")
            path = directory / "traces" / name
            traces.append(path)
            with _open(path, gzipped) as handle:
                for copy in range(first, min(first + per_file, copies)):
                    prefix = f"{copy:07x}".encode()
                    shift = copy * step_ns
                    times = [str(t + shift).encode() for t in template.times]
                    for pieces in template.lines:
                        line = _render(pieces, times, prefix)
                        handle.write(line + b"\n")
                        written += len(line) + 1
                    for time_slot, decision, quality in template.feedback:
                        record = FeedbackRecord(
                            decision_id=decision + prefix.decode(),
                            quality=quality,
                            time_unix_nano=template.times[time_slot] + shift,
                        )
                        feedback.write(record.to_json().encode() + b"\n")
    corpus = Corpus(
        traces=tuple(traces),
        feedback=feedback_path,
        requests=copies * template.requests,
        spans=copies * template.spans,
        bytes=written,
    )
    manifest.write_text(
        json.dumps(
            {
                "key": key,
                "traces": [str(p) for p in traces],
                "feedback": str(feedback_path),
                "requests": corpus.requests,
                "spans": corpus.spans,
                "bytes": corpus.bytes,
            }
        )
    )
    return corpus
