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
- records travel as rows with their features as a value tuple plus a shared key tuple: a
  feature dict per record cost more than decoding it (~2 s per 100K vs ~0.4 s, pickled);
- memory stays bounded by the chunk size and the worker count, not the input size.

Jobs and chunks cross the pipes as length-prefixed ``msgspec.msgpack`` frames decoded into
the typed structs below, never pickle: a frame can only become these structs' plain values,
so whatever a worker (or anything else on its pipe) writes, the parent runs no code of its
choosing; a frame that does not fit is a ``TraceWorkerError`` naming what was wrong.
"""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import fields
from operator import attrgetter
from pathlib import Path
from typing import IO, Literal, cast

import msgspec

from rlm_router.rlm_core.errors import RLMRouterError
from rlm_router.telemetry import semconv as sc
from rlm_router.telemetry.feedback import FeedbackRecord, feedback_of, merge_feedback
from rlm_router.telemetry.otlp_json import SpanLike, Value
from rlm_router.telemetry.records import RequestRecord, SpanPairing, request_record
from rlm_router.telemetry.span_scan import FileScan, ScannedSpan, warn_skipped
from rlm_router.telemetry.trace_files import bulk_reading, expand_paths, line_ranges

# ~8K requests of our exporter's lines: big enough that a chunk's fixed cost (a task, a
# result message) is noise, small enough that two workers stay busy to the end.
CHUNK_BYTES = 64 * 1024 * 1024

_FIELDS = tuple(f.name for f in fields(RequestRecord) if f.name != "features")
_get_fields = attrgetter(*_FIELDS)
# Where features go back in among the other fields (the constructor's order).
_FEATURES_AT = [f.name for f in fields(RequestRecord)].index("features")


# A frame's length prefix; a frame over the bound is garbage, not a chunk (a 64 MB chunk
# makes frames of a few MB; a whole gzip file is one chunk, hence the generous bound).
_LENGTH = struct.Struct(">Q")
_MAX_FRAME = 1 << 40
_READ_STEP = 1 << 24  # a frame is read in steps: a garbage length allocates nothing up front


class TraceWorkerError(RLMRouterError, OSError):
    """A trace-reading worker exited, or sent a frame that is not a chunk."""


class _Job(msgspec.Struct, array_like=True):
    """One chunk to decode: the lines of ``path`` in ``[start, end)`` bytes."""

    path: str
    start: int
    end: int | None


# The types of ``RequestRecord``'s fields other than ``features`` (in constructor order).
_Field = str | int | float | bool | None


class _Row(msgspec.Struct, array_like=True):
    """A record: its other fields, which key tuple its features use, their values."""

    fields: tuple[_Field, ...]
    keys: int
    values: tuple[float, ...]


class _Span(msgspec.Struct, array_like=True):
    """A ``ScannedSpan`` on the wire. Attribute values are untyped leaves (msgspec cannot
    type a union holding both ``str`` and ``bytes``): msgpack decodes them to plain str,
    bytes, numbers, lists and dicts only, the values the scan produced."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_time_unix_nano: int
    attributes: dict[str, object]

    @classmethod
    def of(cls, span: SpanLike) -> _Span:
        return cls(span.trace_id, span.span_id, span.parent_span_id, span.name,
                   span.start_time_unix_nano, dict(span.attributes))  # fmt: skip

    def scanned(self) -> ScannedSpan:
        attributes = cast(Mapping[str, Value], self.attributes)
        return ScannedSpan(self.trace_id, self.span_id, self.parent_span_id, self.name,
                           self.start_time_unix_nano, attributes)  # fmt: skip


class _Waiting(msgspec.Struct, array_like=True):
    """A span whose partner lies in another chunk, and where in this chunk it was met."""

    records_before: int
    order: int
    span: _Span


class Chunk(msgspec.Struct, array_like=True, tag="chunk"):
    """What a worker sends back for one chunk (see the module docstring)."""

    path: str
    rows: list[_Row]
    feature_keys: list[tuple[str, ...]]
    waiting: list[_Waiting]
    feedback: list[FeedbackRecord]
    skipped: int

    def records(self) -> list[RequestRecord]:
        keys = self.feature_keys
        out = []
        for row in self.rows:
            args: list[object] = list(row.fields)
            args.insert(_FEATURES_AT, dict(zip(keys[row.keys], row.values, strict=True)))
            out.append(RequestRecord(*args))  # type: ignore[arg-type]
        return out


class _Failure(msgspec.Struct, array_like=True, tag="failure"):
    """A chunk that could not be read: the parent raises it as a serial pass would."""

    kind: Literal["os", "value"]
    message: str
    errno: int | None = None
    filename: str | None = None

    @classmethod
    def of(cls, exc: OSError | ValueError) -> _Failure:
        if isinstance(exc, OSError):
            name = None if exc.filename is None else str(exc.filename)
            return cls("os", exc.strerror or str(exc), exc.errno, name)
        return cls("value", str(exc))

    def error(self) -> OSError | ValueError:
        if self.kind == "value":
            return ValueError(self.message)
        if self.errno is None:
            return OSError(self.message)
        return OSError(self.errno, self.message, self.filename)  # its errno's subclass


_job_decoder = msgspec.msgpack.Decoder(_Job)
_result_decoder = msgspec.msgpack.Decoder(Chunk | _Failure)
_encoder = msgspec.msgpack.Encoder()


def write_frame(stream: IO[bytes], message: msgspec.Struct) -> None:
    """``message`` as one length-prefixed msgpack frame, flushed."""
    payload = _encoder.encode(message)
    stream.write(_LENGTH.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def read_frame(stream: IO[bytes]) -> bytes | None:
    """One frame's payload, or None at a clean end of the stream (between frames)."""
    head = stream.read(_LENGTH.size)
    if not head:
        return None
    if len(head) < _LENGTH.size:
        raise TraceWorkerError(f"a frame's length was cut short ({len(head)} bytes)")
    (size,) = _LENGTH.unpack(head)
    if size > _MAX_FRAME:
        raise TraceWorkerError(f"a frame claims {size} bytes, over the {_MAX_FRAME} bound")
    parts, left = [], size
    while left:
        part = stream.read(min(left, _READ_STEP))
        if not part:
            raise TraceWorkerError(f"a frame was cut short ({size - left} of {size} bytes)")
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def decode_result(payload: bytes) -> Chunk:
    """A worker's frame as its chunk; a failure it reports is raised, garbage is a
    ``TraceWorkerError``."""
    try:
        result = _result_decoder.decode(payload)
    except msgspec.DecodeError as exc:  # ValidationError included: valid msgpack, wrong shape
        raise TraceWorkerError(f"a trace-reading worker sent a malformed frame: {exc}") from None
    if isinstance(result, _Failure):
        raise result.error()
    return result


def read_chunk(path: Path, start: int, end: int | None) -> Chunk:
    """Decode one chunk into records (runs in a worker process)."""
    rows: list[_Row] = []
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
            rows.append(_Row(_get_fields(record), index, tuple(record.features.values())))
    waiting = [
        _Waiting(before, order, _Span.of(span))
        for (before, order), span in sorted(pairing.waiting(), key=lambda item: item[0])
    ]
    return Chunk(str(path), rows, list(key_index), waiting, feedback, scan.skipped)


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
                path = Path(chunk.path)
                for done in [p for p in skipped if p != path]:
                    warn_skipped(done, skipped.pop(done))  # chunks of a file are adjacent
                skipped[path] = skipped.get(path, 0) + chunk.skipped
        for path, count in skipped.items():
            warn_skipped(path, count)
        for request in pairing.unmatched_requests():
            yield request_record(request, None, None)


class _Workers:
    """Worker processes that decode chunks; chunk ``i`` goes to worker ``i % n``.

    Plain subprocesses (``python -c``) fed job frames on stdin, not ``multiprocessing``:
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
        path, start, end = job
        write_frame(stdin, _Job(str(path), start, end))

    def receive(self, index: int) -> Chunk:
        proc = self._proc(index)
        assert proc.stdout is not None
        payload = read_frame(proc.stdout)
        if payload is None:
            raise TraceWorkerError(f"a trace-reading worker exited (status {proc.wait()})")
        return decode_result(payload)


def serve_chunks() -> None:
    """A worker's loop: read jobs from stdin until it closes, write each chunk to stdout."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while (payload := read_frame(stdin)) is not None:
        job = _job_decoder.decode(payload)
        try:
            result: Chunk | _Failure = read_chunk(Path(job.path), job.start, job.end)
        except (OSError, ValueError) as exc:  # the parent raises it as a serial pass would
            result = _Failure.of(exc)
        write_frame(stdout, result)


def _in_serial_order(chunk: Chunk, pairing: SpanPairing[None]) -> Iterator[RequestRecord]:
    waiting = deque(chunk.waiting)
    for index, record in enumerate(chunk.records()):
        while waiting and waiting[0].records_before <= index:
            pair = pairing.add(waiting.popleft().span.scanned(), None)
            if pair is not None:
                yield request_record(*pair, None)
        yield record
    for held in waiting:
        pair = pairing.add(held.span.scanned(), None)
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
