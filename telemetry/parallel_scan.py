"""Trace files read by several worker processes: the records a serial pass gives, sooner.

Decoding spans is CPU-bound Python, so one process reads at the speed of one core. The
input is cut into chunks (``trace_files.line_ranges``: byte ranges of plain files starting at
a line's start; a gzip file is one chunk), each chunk is decoded into records by a worker
process (spawned: the parent may hold threads, e.g. a BLAS pool, that ``fork`` would copy in
a bad state), and the parent puts them back together in chunk order:

- a decide span whose request span lies in another chunk (rotation and batching split them)
  comes back unpaired with its position among the chunk's records; the parent pairs it at
  that position, so records come in the order a serial pass yields them;
- feedback spans come back in file order and are merged in that order (the latest wins);
- records travel as tuples with their features as a value tuple plus a shared key tuple: a
  pickled feature dict per record cost more than decoding it (~2 s per 100K vs ~0.4 s);
- memory stays bounded by the chunk size and the worker count, not the input size.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from operator import attrgetter
from pathlib import Path

from rlm_router.telemetry import semconv as sc
from rlm_router.telemetry.feedback import FeedbackRecord, feedback_of, merge_feedback
from rlm_router.telemetry.otlp_json import SpanLike
from rlm_router.telemetry.records import RequestRecord, SpanPairing, request_record
from rlm_router.telemetry.span_scan import FileScan, warn_skipped
from rlm_router.telemetry.trace_files import bulk_reading, expand_paths, line_ranges

# ~8K requests of our exporter's lines: big enough that a chunk's fixed cost (a task, a
# result message) is noise, small enough that two workers stay busy to the end.
CHUNK_BYTES = 64 * 1024 * 1024

_FIELDS = tuple(f.name for f in fields(RequestRecord) if f.name != "features")
_get_fields = attrgetter(*_FIELDS)
# Where features go back in among the other fields (the constructor's order).
_FEATURES_AT = [f.name for f in fields(RequestRecord)].index("features")


@dataclass(frozen=True, slots=True)
class Chunk:
    """What a worker sends back for one chunk (see the module docstring)."""

    path: Path
    rows: list[tuple[tuple[object, ...], int, tuple[float, ...]]]  # fields, key tuple, values
    feature_keys: list[tuple[str, ...]]
    waiting: list[tuple[tuple[int, int], SpanLike]]  # ((records before it, order), span)
    feedback: list[FeedbackRecord]
    skipped: int

    def records(self) -> list[RequestRecord]:
        keys = self.feature_keys
        out = []
        for row, key_index, values in self.rows:
            args = list(row)
            args.insert(_FEATURES_AT, dict(zip(keys[key_index], values, strict=True)))
            out.append(RequestRecord(*args))  # type: ignore[arg-type]
        return out


def read_chunk(path: Path, start: int, end: int | None) -> Chunk:
    """Decode one chunk into records (runs in a worker process)."""
    rows: list[tuple[tuple[object, ...], int, tuple[float, ...]]] = []
    key_index: dict[tuple[str, ...], int] = {}
    feedback: list[FeedbackRecord] = []
    pairing: SpanPairing[tuple[int, int]] = SpanPairing()
    scan = FileScan(path, start=start, end=end)
    with bulk_reading():
        for order, span in enumerate(scan):
            report = feedback_of(span)
            if report is not None:
                feedback.append(report)
                continue
            if span.name == sc.SPAN_FEEDBACK:
                continue
            pair = pairing.add(span, (len(rows), order))
            if pair is None:
                continue
            record = request_record(*pair, None)
            keys = tuple(record.features)
            index = key_index.setdefault(keys, len(key_index))
            rows.append((_get_fields(record), index, tuple(record.features.values())))
    waiting = sorted(pairing.waiting(), key=lambda item: item[0])
    return Chunk(path, rows, list(key_index), waiting, feedback, scan.skipped)


class ParallelScan:
    """The chunks of some trace files and the worker count to read them with."""

    def __init__(self, chunks: list[tuple[Path, int, int | None]], workers: int) -> None:
        self.chunks = chunks
        self.workers = workers

    @classmethod
    def plan(
        cls,
        paths: Iterable[str | os.PathLike[str]],
        *,
        workers: int | None = None,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> ParallelScan | None:
        """How to read ``paths`` in parallel, or None when one process is as good (one
        CPU, ``workers=1``, a busy machine when ``workers`` is None, or input that makes a
        single chunk)."""
        count = default_workers() if workers is None else workers
        if count <= 1:
            return None
        chunks = [(p, a, b) for p in expand_paths(paths) for a, b in line_ranges(p, chunk_bytes)]
        if len(chunks) <= 1:
            return None
        return cls(chunks, min(count, len(chunks)))

    def records(self, feedback: dict[str, FeedbackRecord]) -> Iterator[RequestRecord]:
        """The records in serial order; ``feedback`` gains the trace files' reports."""
        pairing: SpanPairing[None] = SpanPairing()
        skipped: dict[Path, int] = {}  # per file, warned once its last chunk is in
        with _Workers(self.workers) as workers:
            for index, job in enumerate(self.chunks):
                workers.send(index, job)
            for index in range(len(self.chunks)):
                chunk = workers.receive(index)
                for report in chunk.feedback:
                    merge_feedback(feedback, report)
                yield from _in_serial_order(chunk, pairing)
                for path in [p for p in skipped if p != chunk.path]:
                    warn_skipped(path, skipped.pop(path))  # chunks of a file are adjacent
                skipped[chunk.path] = skipped.get(chunk.path, 0) + chunk.skipped
        for path, count in skipped.items():
            warn_skipped(path, count)
        for request in pairing.unmatched_requests():
            yield request_record(request, None, None)


class _Workers:
    """Worker processes that decode chunks; chunk ``i`` goes to worker ``i % n``.

    Plain subprocesses (``python -c``) fed pickled jobs on stdin, not ``multiprocessing``:
    its ``spawn`` re-imports the caller's main module (a script without a ``__main__`` guard
    would start again in every worker) and ``fork`` copies the parent's threads' locks.
    Results are read in chunk order; a worker blocks writing its next result until it is
    read, so at most about one chunk per worker is held, whatever the input's size.
    """

    def __init__(self, count: int) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # the parent's imports
        code = f"from {__name__} import serve_chunks; serve_chunks()"
        self._procs = [
            subprocess.Popen(
                [sys.executable, "-c", code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
            for _ in range(count)
        ]

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()  # an early stop (or an error) leaves nothing running
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            proc.wait()

    def _proc(self, index: int) -> subprocess.Popen[bytes]:
        return self._procs[index % len(self._procs)]

    def send(self, index: int, job: tuple[Path, int, int | None]) -> None:
        stdin = self._proc(index).stdin
        assert stdin is not None
        pickle.dump(job, stdin)
        stdin.flush()

    def receive(self, index: int) -> Chunk:
        proc = self._proc(index)
        assert proc.stdout is not None
        try:
            result = pickle.load(proc.stdout)
        except EOFError:
            raise OSError(f"a trace-reading worker exited (status {proc.wait()})") from None
        if isinstance(result, BaseException):
            raise result
        if not isinstance(result, Chunk):
            raise OSError(f"a trace-reading worker sent {type(result).__name__}")
        return result


def serve_chunks() -> None:
    """A worker's loop: read jobs from stdin until it closes, write each chunk to stdout."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            path, start, end = pickle.load(stdin)
        except EOFError:
            return
        try:
            result: Chunk | Exception = read_chunk(path, start, end)
        except (OSError, ValueError) as exc:  # the parent raises it as a serial pass would
            result = exc
        pickle.dump(result, stdout, protocol=pickle.HIGHEST_PROTOCOL)
        stdout.flush()


def _in_serial_order(chunk: Chunk, pairing: SpanPairing[None]) -> Iterator[RequestRecord]:
    waiting = deque(chunk.waiting)
    for index, record in enumerate(chunk.records()):
        while waiting and waiting[0][0][0] <= index:
            pair = pairing.add(waiting.popleft()[1], None)
            if pair is not None:
                yield request_record(*pair, None)
        yield record
    for _, span in waiting:
        pair = pairing.add(span, None)
        if pair is not None:
            yield request_record(*pair, None)


def default_workers() -> int:
    """The CPUs this process may use, or 1 when the machine's load already fills them.

    Reading in parallel costs ~10-40% more CPU in total (records travel between processes):
    on idle cores that buys wall time, on busy ones it only adds work (measured at a load
    average of ~15 on 2 cores: the 100K-request report took 89 s in parallel, 29 s serially).
    """
    cpus = available_cpus()
    try:
        busy = os.getloadavg()[0] >= cpus
    except OSError:  # no load average on this platform
        busy = False
    return 1 if busy else cpus


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
