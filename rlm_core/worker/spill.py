"""The spill file: what an execution printed, kept where a wall-time kill cannot lose it.

The host creates the file (a memfd, ``rlm_core.launch.Workspace``) sized with ``size`` and
reads it with ``read`` after it killed a worker; the worker maps it shared and copies what it
keeps of the output into it as it is printed. Pages of a shared mapping belong to the file,
so what was copied survives the worker's SIGKILL. Layout: an 8-byte little-endian length, then
that many bytes of UTF-8.

A mapping, not ``write``/``ftruncate`` of the descriptor: a trivial execution printed with
two writes and emptied the file with a truncation that frees its page, 7 us of the worker's
CPU per execution (memfd, 2-core VM) against 0.3 us for two copies and a length reset.
Whatever the worker's process holds, model code can write too, so the host bounds the length
it reads by the file's size; the text is the model's own output either way.
"""

from __future__ import annotations

import mmap
import os
import struct

_LENGTH = struct.Struct("<Q")
_BYTES_PER_CHAR = 4  # the most a character takes in UTF-8


def size(cap_chars: int) -> int:
    """The file size that holds ``cap_chars`` characters of output."""
    return _LENGTH.size + _BYTES_PER_CHAR * cap_chars


def read(fd: int, cap_chars: int) -> str:
    """The host's side: what the last execution printed, at most ``cap_chars`` characters."""
    (length,) = _LENGTH.unpack(os.pread(fd, _LENGTH.size, 0).ljust(_LENGTH.size, b"\0"))
    data = os.pread(fd, min(length, size(cap_chars) - _LENGTH.size), _LENGTH.size)
    return data.decode("utf-8", "replace")[:cap_chars]


class Spill:
    """The worker's side: appended to while an execution prints, emptied after its reply."""

    def __init__(self, fd: int) -> None:
        self._map = mmap.mmap(fd, os.fstat(fd).st_size)
        self._end = self._map.size() - _LENGTH.size
        self._used = 0
        self.clear()  # a worker restarted after a kill finds the killed one's output

    def write(self, text: str) -> None:
        data = text.encode("utf-8", "replace")[: self._end - self._used]
        start = _LENGTH.size + self._used
        self._map[start : start + len(data)] = data
        self._used += len(data)
        _LENGTH.pack_into(self._map, 0, self._used)  # after the bytes: a kill keeps a prefix

    def clear(self) -> None:
        self._used = 0
        _LENGTH.pack_into(self._map, 0, 0)
