"""Where trace and feedback lines come from: files, directories of rotated files, gzip.

A path may be a file or a directory; a directory stands for the regular files directly in it
(names not starting with ``.``), in name order, as a rotating file exporter (ours, or an
OpenTelemetry Collector's ``file`` exporter with rotation) leaves them. A file whose first
bytes are gzip's magic number is read through gzip whatever its name (``.gz`` rotations).
Lines are bytes: the decoders take UTF-8 bytes directly, so nothing is decoded twice.
"""

from __future__ import annotations

import gc
import gzip
import io
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

_GZIP_MAGIC = b"\x1f\x8b"
# Our exporter's lines are ~0.5 MB (one export batch each): with the default 8 KB buffer a
# line is assembled from ~60 reads, and reading a file took 4x longer than with this.
_BUFFER_BYTES = 4 * 1024 * 1024


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Each path as itself, or for a directory its files in name order."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        else:
            out.append(path)
    return out


def missing_paths(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """The paths that are neither a file nor a directory (for a CLI's one-line error)."""
    return [str(p) for p in paths if not (Path(p).is_file() or Path(p).is_dir())]


def iter_lines(path: Path, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """The non-blank lines of one file (gzip or plain), or of the lines of a plain file that
    start in ``[start, end)`` bytes (``start`` at a line's start, as ``line_ranges`` gives)."""
    with io.BufferedReader(io.FileIO(path), _BUFFER_BYTES) as raw:
        gzipped = raw.peek(2)[:2] == _GZIP_MAGIC
        if gzipped and (start or end is not None):
            raise ValueError(f"{path}: a gzip file is read whole, not by byte range")
        handle = io.BufferedReader(gzip.GzipFile(fileobj=raw), _BUFFER_BYTES) if gzipped else raw
        with handle:
            handle.seek(start)
            position = start
            for line in handle:
                if end is not None and position >= end:
                    break
                position += len(line)
                if not line.isspace():  # not strip(): that copies a line of ~1 MB to test it
                    yield line


def line_ranges(path: Path, chunk_bytes: int) -> list[tuple[int, int | None]]:
    """``path`` cut into byte ranges of about ``chunk_bytes`` that start at a line's start,
    for reading one file in several processes; a gzip file is one range (it cannot be cut)."""
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size <= chunk_bytes or handle.peek(2)[:2] == _GZIP_MAGIC:
            return [(0, None)]
        starts = [0]
        while starts[-1] + chunk_bytes < size:
            handle.seek(starts[-1] + chunk_bytes)
            handle.readline()  # to the start of the next line
            if handle.tell() >= size:
                break
            starts.append(handle.tell())
    ends: list[int | None] = [*starts[1:], None]
    return list(zip(starts, ends, strict=True))


@contextmanager
def bulk_reading() -> Iterator[None]:
    """The cyclic garbage collector paused while millions of acyclic objects are made.

    Reading allocates only trees without cycles (decoded JSON, records), so the collector's
    passes free nothing; at 100K requests they were ~half of the reading CPU. What existed
    before is frozen first so the pass after re-enabling does not rescan it.
    """
    if not gc.isenabled():
        yield
        return
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
