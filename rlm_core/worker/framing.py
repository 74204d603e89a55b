"""Length-prefixed JSON frames over the pipe pair the worker inherits as stdin/stdout.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON. The host
(``rlm_core.sandbox``) uses the same ``HEADER``.
"""

from __future__ import annotations

import os
import struct
from _thread import allocate_lock

from rlm_router.rlm_core.worker import cjson

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs a worker start ~3 ms of imports (it pulls in re)
    from typing import Any

HEADER = struct.Struct(">I")


class FrameTooBig(ValueError):
    """A frame above the host's limit: refused here, before anything is written."""


class Channel:
    """Length-prefixed JSON frames over the pipe pair inherited as stdin/stdout.

    The host treats whatever arrives as untrusted (``rlm_core.frames``): keeping this object
    out of model code's reach would not add a guarantee, since model code can find the
    descriptors anyway; the size check here only turns an honest oversized request into an
    error in model code instead of a restart of the worker.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._rfd = os.dup(0)
        self._wfd = os.dup(1)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # model code writing to fd 1/2 must not corrupt the channel
            os.dup2(devnull, fd)
        os.close(devnull)
        self._lock = allocate_lock()  # threading's Lock, without importing threading
        self._next_id = 0

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
        message = cjson.loads(self._read_exact(size).decode("utf-8", "surrogatepass"))
        if not isinstance(message, dict):
            raise ValueError(f"a frame from the host is not a JSON object: {message!r:.100}")
        return message

    def send(self, message: dict[str, Any]) -> None:
        body = cjson.dumps(message, default=str).encode("utf-8", "surrogatepass")
        if len(body) > self.max_bytes:
            raise FrameTooBig(
                f"the message to the host is {len(body):,} bytes, above the limit of "
                f"{self.max_bytes:,} bytes"
            )
        data = memoryview(HEADER.pack(len(body)) + body)
        while data:
            data = data[os.write(self._wfd, data) :]

    def call(self, message: dict[str, Any]) -> dict[str, Any]:
        """One request/reply round trip; serialised so model threads cannot interleave.

        Requests carry an id the host echoes: replies to frames that model code wrote to
        the pipe itself are skipped instead of being taken for this request's answer.
        """
        with self._lock:
            self._next_id += 1
            self.send({**message, "id": self._next_id})
            while True:
                reply = self.recv()
                if reply.get("op") == "reply" and reply.get("id") == self._next_id:
                    return reply
