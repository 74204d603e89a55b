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
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_GZIP_MAGIC = b"\x1f\x8b"


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


def open_lines(path: Path) -> IO[bytes]:
    """``path`` opened for reading lines of bytes, through gzip if it is compressed."""
    handle = path.open("rb")
    if handle.peek(2)[:2] == _GZIP_MAGIC:
        return gzip.open(handle, "rb")  # type: ignore[return-value]
    return handle


def iter_lines(path: Path) -> Iterator[bytes]:
    """The non-blank lines of one file (gzip or plain)."""
    with open_lines(path) as handle:
        for line in handle:
            if not line.isspace():  # not strip(): that copies a line of ~1 MB to test it
                yield line


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
