"""Length-prefixed JSON frames over the pipe pair the worker inherits as stdin/stdout.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON. The host
(``rlm_core.sandbox``) uses the same ``HEADER``.
"""

from __future__ import annotations

import json
import os
import struct
import threading
from typing import Any

HEADER = struct.Struct(">I")


class Channel:
    """Length-prefixed JSON frames over the pipe pair inherited as stdin/stdout."""

    def __init__(self) -> None:
        self._rfd = os.dup(0)
        self._wfd = os.dup(1)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # model code writing to fd 1/2 must not corrupt the channel
            os.dup2(devnull, fd)
        os.close(devnull)
        self._lock = threading.Lock()

    def _read_exact(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = os.read(self._rfd, min(n, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def recv(self) -> dict[str, Any]:
        (size,) = HEADER.unpack(self._read_exact(HEADER.size))
        message: dict[str, Any] = json.loads(self._read_exact(size))
        return message

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message, default=str).encode("utf-8", "surrogatepass")
        data = memoryview(HEADER.pack(len(body)) + body)
        while data:
            data = data[os.write(self._wfd, data) :]

    def call(self, message: dict[str, Any]) -> dict[str, Any]:
        """One request/reply round trip; serialised so model threads cannot interleave."""
        with self._lock:
            self.send(message)
            return self.recv()
