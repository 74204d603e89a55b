"""A worker's OS process as seen from the host's event loop: its pipes and its exit.

The host holds a worker's stdin write end, stdout read end and pidfd (and the child's ends
until the process is started), and must close each exactly once: a
descriptor number closed twice is, in the moment between the two closes, free for any other
thread to get (the cgroup attach and workspace removal threads open files all the time), and
the second close then takes that thread's file away, or a client socket the loop accepts
next. uvloop (the proxy's loop) closes a pipe's descriptor itself when its transport closes
and then closes the file object it was given as well, so the file handed to uvloop does not
own the descriptor; asyncio's own transport closes it only through the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

_READ_CHUNK = 64 << 10  # per read of the worker's stdout (WorkerProcess._connect)
_PIPE_CLOSE_S = 2.0  # how long wait() waits for the last holder of the worker's stdout


class WorkerProcess:
    """A started worker: its pid, its pipes as asyncio streams, its exit status.

    Not ``asyncio.create_subprocess_exec``: on Python 3.11 a loop that ends (``asyncio.run``,
    a server's shutdown, a test's loop) while a subprocess is being created hangs for ever in
    asyncio's clean-up (the process's exit waiters are woken only by a callback queued until
    its pipes connect, and the loop's end cancels the task that connects them). A pool starts
    workers at any moment, so that window was hit (a test's teardown hung until its timeout).
    Here the process is a ``subprocess.Popen`` on pipes made here, its pipes are connected with
    ``connect_read_pipe`` / ``connect_write_pipe`` (cancelled, they just close), and its exit
    is watched through a pidfd.
    """

    def __init__(self, popen: subprocess.Popen[bytes], stdin_fd: int, stdout_fd: int) -> None:
        self._popen = popen
        self.pid = popen.pid
        # The host's pipe ends until a transport takes them (-1 after that, or once closed).
        self._stdin_fd, self._stdout_fd = stdin_fd, stdout_fd
        self.stdin: asyncio.StreamWriter | None = None
        self.stdout: asyncio.StreamReader | None = None
        self._read_protocol: _ReadProtocol | None = None
        self._exited = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        try:
            self._pidfd = os.pidfd_open(popen.pid)
        except OSError:  # a kernel before 5.3: wait() polls
            self._pidfd = -1
        else:
            self._loop.add_reader(self._pidfd, self._poll)

    @classmethod
    async def start(
        cls, args: list[str], *, env: dict[str, str], cwd: Path, pass_fds: tuple[int, ...]
    ) -> WorkerProcess:
        """Start ``args`` in a new session, stdin and stdout piped, stderr discarded."""
        stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
        stdout_r, stdout_w = os.pipe2(os.O_CLOEXEC)
        try:
            # Popen's fork/exec is synchronous inside asyncio's subprocess support too (~1 ms).
            popen = subprocess.Popen(  # noqa: ASYNC220
                args, stdin=stdin_r, stdout=stdout_w, stderr=subprocess.DEVNULL,
                env=env, cwd=cwd, start_new_session=True, pass_fds=pass_fds,
            )  # fmt: skip
        except BaseException:
            os.close(stdin_w)
            os.close(stdout_r)
            raise
        finally:
            os.close(stdin_r)  # the child's ends: the child has its copies
            os.close(stdout_w)
        try:
            proc = cls(popen, stdin_w, stdout_r)
        except BaseException:
            popen.kill()
            os.close(stdin_w)
            os.close(stdout_r)
            raise
        try:
            await proc._connect()
        except BaseException:
            proc.kill()
            proc.close_pipes()
            raise
        return proc

    async def _connect(self) -> None:
        loop = self._loop
        reader = asyncio.StreamReader(limit=1 << 20, loop=loop)
        read_protocol = _ReadProtocol(reader, loop=loop)
        stdout = self._take("stdout")
        pipe, _ = await loop.connect_read_pipe(lambda: read_protocol, stdout)
        if isinstance(getattr(pipe, "max_size", None), int):
            # asyncio's pipe transport reads up to 256 KiB at a time into a new bytes object:
            # above glibc's mmap threshold, so every frame cost an mmap, mremap and munmap
            # (and the page faults and TLB flushes they bring). 64 KiB comes from the heap:
            # a trivial execution's host CPU 0.10-0.12 -> 0.07 ms, round trip 0.19-0.22 ->
            # 0.15 ms (2-core VM, load ~2.5). uvloop's transport has no such attribute.
            pipe.max_size = _READ_CHUNK  # type: ignore[attr-defined]
        self.stdout, self._read_protocol = reader, read_protocol
        write_protocol = asyncio.StreamReaderProtocol(asyncio.StreamReader(), loop=loop)
        stdin = self._take("stdin")
        transport, _ = await loop.connect_write_pipe(lambda: write_protocol, stdin)
        self.stdin = asyncio.StreamWriter(transport, write_protocol, None, loop)

    def _take(self, which: str) -> io.FileIO:
        """A pipe end as the file its transport is given; from here on the transport closes
        it, so the process no longer does (a connect that failed inside uvloop before libuv
        took the descriptor would leave it open: never a second close)."""
        if which == "stdin":
            fd, self._stdin_fd, mode = self._stdin_fd, -1, "wb"
        else:
            fd, self._stdout_fd, mode = self._stdout_fd, -1, "rb"
        return io.FileIO(fd, mode, closefd=not _closes_pipes_itself(self._loop))

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has exited (and been reaped), else None."""
        return self._poll()

    def _poll(self) -> int | None:
        code = self._popen.poll()
        if code is not None and self._pidfd >= 0:
            fd, self._pidfd = self._pidfd, -1
            # Closed at once: uvloop takes a removed descriptor out of its epoll set right
            # away, and libuv drops events already read for it, so a number reused by the
            # next accepted socket is that socket's only.
            with contextlib.suppress(Exception):  # the loop has closed: nothing watches it
                self._loop.remove_reader(fd)
            os.close(fd)
        if code is not None:
            self._exited.set()
        return code

    async def wait(self) -> int:
        """Until the process has exited and its stdout is closed: every process holding the
        pipe (the PID namespace's REPL, what model code forked) is gone too, as asyncio's
        own ``Process.wait`` waits; bounded, for a holder that escaped the kill."""
        while (code := self._poll()) is None:
            if self._pidfd >= 0:
                await self._exited.wait()
            else:
                await asyncio.sleep(0.005)
        if self._read_protocol is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_PIPE_CLOSE_S):
                    await self._read_protocol.closed.wait()
        return code

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._popen.kill()

    def close_pipes(self) -> None:
        """Close both pipes (the worker sees EOF on its stdin)."""
        if self.stdin is not None:
            self.stdin.close()
        for which in ("_stdin_fd", "_stdout_fd"):  # not taken by a transport
            if (fd := getattr(self, which)) >= 0:
                setattr(self, which, -1)
                os.close(fd)
        # A connected stdout closes itself at EOF.


def _closes_pipes_itself(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop``'s pipe transports close the descriptor themselves before they close
    the file (uvloop, and loops derived from it; see the module docstring). A uvloop loop
    means uvloop is imported already."""
    uvloop = sys.modules.get("uvloop")
    return uvloop is not None and isinstance(loop, uvloop.Loop)


class _ReadProtocol(asyncio.StreamReaderProtocol):
    """The worker's stdout: says when the pipe closed (every writer gone)."""

    def __init__(self, reader: asyncio.StreamReader, *, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(reader, loop=loop)
        self.closed = asyncio.Event()

    def eof_received(self) -> bool:
        # False: the transport closes at EOF (its connection_lost follows). StreamReaderProtocol
        # says True, which uvloop takes as "keep the transport open" (asyncio's pipe transport
        # closes anyway): under uvloop ``wait`` then waited its whole ``_PIPE_CLOSE_S`` for a
        # pipe that had long closed, after every kill and at the end of every run.
        super().eof_received()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.closed.set()
