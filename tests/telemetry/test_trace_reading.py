"""The streaming trace reader: same records, report and training as before, from any layout.

``golden_*`` in ``data/`` were written by the code before the streaming reader (two passes,
every span decoded, records held and sorted) on the deterministic traces of
``golden_traces``; the reader, the columnar report and the columnar data set must give the
same bytes.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import io
import json
import logging
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlm_router.policies.learning import Utility, build_dataset
from rlm_router.policies.learning.estimators import compare
from rlm_router.policies.learning.sampling import sample_rows
from rlm_router.router.cli import main
from rlm_router.router.features import FEATURE_NAMES
from rlm_router.telemetry.feedback import feedback_from_spans, merge_feedback, read_feedback
from rlm_router.telemetry.otlp_json import read_spans
from rlm_router.telemetry.parallel_scan import (
    ParallelScan,
    TraceWorkerError,
    decode_result,
    read_frame,
)
from rlm_router.telemetry.records import RequestRecord, RequestScan, iter_request_records
from rlm_router.telemetry.records import load_request_records as load
from rlm_router.telemetry.report import write_report
from tests.policies.test_training import long_aggregation_needs_rlm, write_traffic
from tests.telemetry.golden_traces import golden_outputs, write_golden_traces

DATA = Path(__file__).parent / "data"


def two_pass_records(traces: list[Path], feedback: list[Path]) -> list[RequestRecord]:
    """The reader before: feedback from a first pass over every span, records from a second."""
    reports = read_feedback(feedback)
    for report in feedback_from_spans(read_spans(traces)):
        merge_feedback(reports, report)
    records = list(iter_request_records(read_spans(traces), reports))
    records.sort(key=lambda r: r.start_time_unix_nano)
    return records


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("golden")
    golden_outputs(out)
    return out


def test_report_is_byte_for_byte_what_the_reader_before_wrote(golden: Path) -> None:
    assert (golden / "report.html").read_text() == (DATA / "golden_report.html").read_text()


def test_training_is_byte_for_byte_what_it_was_before(golden: Path) -> None:
    assert (golden / "train.txt").read_text() == (DATA / "golden_train.txt").read_text()
    artifact = json.loads((golden / "learning" / "artifact.json").read_text())
    assert_same_json(artifact, json.loads((DATA / "golden_artifact.json").read_text()))


def assert_same_json(got: object, want: object, path: str = "$") -> None:
    """Equal JSON, except that floats may differ in their last digits.

    The artifact's fitted weights come out of floating-point reductions whose rounding
    depends on the CPU's vector units: on one machine an intercept came out
    -7.960738839097756, on another -7.960738839097546 (1 part in 10^13), from the same
    code, data and library versions. Every other value, and the printed report, must match
    exactly."""
    if isinstance(want, float) and isinstance(got, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), path
    elif isinstance(want, dict) and isinstance(got, dict):
        assert sorted(got) == sorted(want), path
        for key in want:
            assert_same_json(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, list) and isinstance(got, list):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_json(g, w, f"{path}[{i}]")
    else:
        assert type(got) is type(want) and got == want, path


def test_one_pass_gives_the_records_of_two_passes(tmp_path: Path) -> None:
    traces, feedback = write_golden_traces(tmp_path)
    records = load([traces], [feedback])
    assert records == two_pass_records([traces], [feedback])
    assert sum(r.quality is not None for r in records) > 50  # feedback was joined


def _collector_style(source: Path, target: Path) -> None:
    """The same spans as another encoder writes them: base64 ids, int64 and enums as JSON
    numbers/names, doubles that are whole as ints (our schema does not fit: general reader)."""
    out = []
    for line in source.read_text().splitlines():
        message = json.loads(line)
        for resource in message["resourceSpans"]:
            for scope in resource["scopeSpans"]:
                for span in scope["spans"]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in span:
                            span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
                    span["kind"] = "SPAN_KIND_INTERNAL"
                    for attribute in span.get("attributes", []):
                        value = attribute["value"]
                        if "intValue" in value:
                            value["intValue"] = int(value["intValue"])
        out.append(json.dumps(message, indent=None, separators=(", ", ": ")))
    target.write_text("\n".join(out) + "\n")


def test_lines_of_other_encoders_read_the_same(tmp_path: Path) -> None:
    traces, feedback = write_golden_traces(tmp_path)
    other = tmp_path / "collector.jsonl"
    _collector_style(traces, other)
    assert load([other], [feedback]) == load([traces], [feedback])


def test_a_directory_of_rotated_and_gzipped_files_reads_as_one_file(tmp_path: Path) -> None:
    traces, feedback = write_golden_traces(tmp_path)
    lines = traces.read_bytes().splitlines(keepends=True)
    rotated = tmp_path / "rotated"
    rotated.mkdir()
    thirds = [lines[: len(lines) // 3], lines[len(lines) // 3 : 2 * len(lines) // 3]]
    thirds.append(lines[2 * len(lines) // 3 :])
    (rotated / "traces-0.jsonl.gz").write_bytes(gzip.compress(b"".join(thirds[0])))
    (rotated / "traces-1.jsonl").write_bytes(b"".join(thirds[1]))
    (rotated / "traces-2").write_bytes(gzip.compress(b"".join(thirds[2])))  # named anyhow
    feedback_dir = tmp_path / "feedback"
    feedback_dir.mkdir()
    (feedback_dir / "feedback.jsonl.gz").write_bytes(gzip.compress(feedback.read_bytes()))
    assert load([rotated], [feedback_dir]) == load([traces], [feedback])
    one, many = tmp_path / "one.html", tmp_path / "many.html"
    assert write_report([traces], one, feedback_paths=[feedback], title="t") == 240
    assert write_report([rotated], many, feedback_paths=[feedback_dir], title="t") == 240
    assert one.read_text().replace("traces.jsonl", "rotated") == many.read_text()


def test_broken_lines_are_skipped_and_counted_once_per_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    traces, feedback = write_golden_traces(tmp_path)
    good = traces.read_bytes()
    cut = good[: good.index(b"\n") // 2]  # a line cut short by a crash
    broken = tmp_path / "broken.jsonl"
    metrics = b'{"resourceMetrics": [{"scopeMetrics": []}]}\n'
    broken.write_bytes(metrics + cut + b"\n" + b"[1, 2]\n\n" + good)
    with caplog.at_level(logging.WARNING):
        records = load([broken], [feedback])
    assert records == load([traces], [feedback])
    warnings = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert warnings == [f"{broken}: skipped 2 line(s) that are not OTLP-JSON spans"]


def test_the_cli_reads_directories_and_names_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traces, _ = write_golden_traces(tmp_path)
    rotated = tmp_path / "rotated"
    rotated.mkdir()
    traces.rename(rotated / "traces.jsonl.1")
    assert main(["dashboard", "--traces", str(rotated), "-o", str(tmp_path / "r.html")]) == 0
    assert "240 requests from 1 trace file(s)" in capsys.readouterr().out
    assert main(["dashboard", "--traces", str(tmp_path / "nope")]) == 2
    assert f"no such file or directory: {tmp_path / 'nope'}" in capsys.readouterr().err


# ── sampling the rows of a large log ──


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_traffic(
        tmp_path_factory.mktemp("log"), n=1500, exploration=0.1, truth=long_aggregation_needs_rlm
    )


def test_a_sample_keeps_every_explored_row_and_stands_for_the_whole_log(
    logged: tuple[Path, Path],
) -> None:
    scan = RequestScan([logged[0]], [logged[1]])
    data, _ = build_dataset(scan, Utility(), FEATURE_NAMES, reported=scan.reported_quality)
    sample, summary = sample_rows(data, 400, seed=1)
    assert summary is not None and summary.kept == len(sample) <= 401
    assert summary.explored_kept == summary.explored == int(data.exploration.sum()) > 100
    assert sample.weight is not None
    assert np.all(sample.weight[sample.exploration] == 1.0)
    # Each stratum's weights add up to its count in the log, so weighted means estimate it.
    for action in (0, 1):
        mine = (sample.action == action) & ~sample.exploration
        full = (data.action == action) & ~data.exploration
        assert sample.weight[mine].sum() == pytest.approx(full.sum())
    # Rows stay in time order (a subsequence of the log's).
    positions = [data.decision_ids.index(i) for i in sample.decision_ids]
    assert positions == sorted(positions)
    # The weighted mean is a stratified estimate of the log's mean: within 3 of its standard
    # errors (~0.015 here; a fixed 0.02 was ~1.3 of them, so any change of the traffic's
    # routes could break it by chance).
    variance = 0.0
    for action in (0, 1):
        for forced in (False, True):
            mine = (sample.action == action) & (sample.forced == forced) & ~sample.exploration
            full = int(
                ((data.action == action) & (data.forced == forced) & ~data.exploration).sum()
            )
            kept = int(mine.sum())
            if kept > 1:
                variance += full**2 * (1 - kept / full) * sample.utility[mine].var(ddof=1) / kept
    standard_error = variance**0.5 / len(data)
    weighted = np.average(sample.utility, weights=sample.weight)
    assert abs(weighted - data.utility.mean()) <= 3 * standard_error
    small, none = sample_rows(data, len(data), seed=1)
    assert none is None and small is data


def test_weighted_comparison_with_unit_weights_is_the_plain_one() -> None:
    rng = np.random.default_rng(0)
    new, current = rng.normal(0.6, 0.2, 500), rng.normal(0.5, 0.2, 500)
    plain = compare(new, current, estimator="dr", disagreements=10, resamples=300, seed=2)
    weighted = compare(
        new, current, estimator="dr", disagreements=10, resamples=300, seed=2,
        weights=np.ones(500),
    )  # fmt: skip
    for field in ("new_value", "current_value", "improvement", "improvement_normal"):
        a, b = getattr(plain, field), getattr(weighted, field)
        assert dataclasses.astuple(a) == pytest.approx(dataclasses.astuple(b), abs=1e-9)


def test_train_on_a_sample_reaches_the_full_logs_decision(
    logged: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traces, feedback = logged
    policy = traces.parent / "policy.yaml"
    outcomes = []
    for max_rows in (100_000, 600):
        code = main(["train", "--traces", str(traces), "--feedback", str(feedback), "--config",
                     str(policy), "--out", str(tmp_path / f"{max_rows}.json"), "--max-rows",
                     str(max_rows), "--version", "v"])  # fmt: skip
        outcomes.append((code, capsys.readouterr().out))
    (full_code, full), (sampled_code, sampled) = outcomes
    assert "sampled" not in full
    assert "sampled 60" in sampled and "of 1500 usable rows" in sampled
    assert full_code == sampled_code == 0  # both promote the classifier the truth favours


# ── reading in parallel ──


def _children() -> set[int]:
    """The live child processes of this one (worker processes of a parallel read)."""
    path = Path(f"/proc/self/task/{os.getpid()}/children")
    return {int(pid) for pid in path.read_text().split()} if path.exists() else set()


def test_parts_of_a_file_read_in_parallel_give_the_serial_records_in_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    traces, feedback = write_golden_traces(tmp_path)
    good = traces.read_bytes()
    broken = tmp_path / "broken.jsonl"  # two lines to skip, counted once for the file
    broken.write_bytes(good[: good.index(b"\n") // 2] + b"\n" + b"[1, 2]\n" + good)
    serial_scan = RequestScan([broken], [feedback], workers=1)
    with caplog.at_level(logging.WARNING):
        serial = list(serial_scan)
    expected_warnings = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    caplog.clear()
    # Parts of a few lines each: splits between decide and request spans, as rotation makes.
    plan = ParallelScan.plan([broken], workers=3, chunk_bytes=len(good) // 9)
    assert plan is not None and len(plan.chunks) >= 4 and plan.workers == 3
    reports = read_feedback([feedback])
    with caplog.at_level(logging.WARNING):
        parallel = list(plan.records(reports))
    assert parallel == serial  # the same records in the same order
    assert reports == serial_scan.feedback  # feedback spans merged in file order
    warnings = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert (
        warnings
        == expected_warnings
        == [f"{broken}: skipped 2 line(s) that are not OTLP-JSON spans"]
    )
    assert not _children()


def test_a_parallel_read_stopped_early_leaves_no_worker(tmp_path: Path) -> None:
    traces, _ = write_golden_traces(tmp_path)
    plan = ParallelScan.plan([traces], workers=2, chunk_bytes=traces.stat().st_size // 5)
    assert plan is not None
    records = plan.records({})
    next(records)
    assert len(_children()) == 2
    records.close()
    assert not _children()


def test_one_cpu_or_one_part_reads_in_this_process(tmp_path: Path) -> None:
    traces, _ = write_golden_traces(tmp_path)
    assert ParallelScan.plan([traces], workers=1, chunk_bytes=100) is None
    assert ParallelScan.plan([traces], workers=4) is None  # smaller than one part


def test_the_cli_reads_with_the_workers_it_is_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traces, feedback = write_golden_traces(tmp_path)
    rotated = tmp_path / "rotated"
    rotated.mkdir()
    lines = traces.read_bytes().splitlines(keepends=True)
    for index in range(3):  # three files: three parts, read by two workers
        (rotated / f"traces-{index}.jsonl").write_bytes(b"".join(lines[index::3]))
    pages = []
    for workers in ("1", "2"):
        out = tmp_path / f"report-{workers}.html"
        argv = ["dashboard", "--traces", str(rotated), "--feedback", str(feedback)]
        assert main([*argv, "--workers", workers, "-o", str(out)]) == 0
        pages.append(out.read_text())
    assert pages[0] == pages[1]
    assert "240 requests from 3 trace file(s)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["dashboard", "--traces", str(traces), "--workers", "0"])
    assert "--workers: must be at least 1, got 0" in capsys.readouterr().err


# What a frame a worker sends can hold: each is one length-prefixed payload on a real pipe.
_EXPLOIT = "pickle.dumps(Exploit())"  # would create the marker file if it were unpickled
_GARBAGE = {
    "a pickle": f"payload = {_EXPLOIT}",
    "msgpack of another shape": "payload = bytes([0x82, 0xa1, 0x61, 0x01, 0xa1, 0x62, 0x02])",
    "not msgpack": "payload = bytes([0xc1]) * 40",
}


@pytest.mark.parametrize("kind", list(_GARBAGE))
def test_a_garbage_frame_from_a_worker_is_a_clear_error_and_runs_no_code(
    tmp_path: Path, kind: str
) -> None:
    marker = tmp_path / "pwned"
    writer = f"""
import os, pickle, struct, sys
class Exploit:
    def __reduce__(self):
        return (os.system, ("touch {marker}",))
{_GARBAGE[kind]}
sys.stdout.buffer.write(struct.pack(">Q", len(payload)) + payload)
"""
    proc = subprocess.run([sys.executable, "-c", writer], capture_output=True, check=True)
    stream = io.BytesIO(proc.stdout)
    payload = read_frame(stream)
    assert payload is not None
    with pytest.raises(TraceWorkerError, match="a trace-reading worker sent a malformed frame"):
        decode_result(payload)
    assert not marker.exists()
    assert read_frame(stream) is None  # the stream ends cleanly after it


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x00\x00\x00", "a frame's length was cut short"),
        (struct.pack(">Q", 10) + b"abc", r"a frame was cut short \(3 of 10 bytes\)"),
        (struct.pack(">Q", 2**63), "over the 1099511627776 bound"),
    ],
)
def test_a_frame_cut_short_or_with_an_absurd_length_is_a_clear_error(
    raw: bytes, message: str
) -> None:
    with pytest.raises(TraceWorkerError, match=message):
        read_frame(io.BytesIO(raw))


def test_a_chunk_a_worker_cannot_read_raises_what_a_serial_read_raises(tmp_path: Path) -> None:
    traces, _ = write_golden_traces(tmp_path)
    plan = ParallelScan.plan([traces], workers=2, chunk_bytes=traces.stat().st_size // 3)
    assert plan is not None
    traces.unlink()  # gone between planning and reading: the workers' open fails
    with pytest.raises(FileNotFoundError) as raised:
        list(plan.records({}))
    assert raised.value.filename == str(traces)
    assert not _children()
