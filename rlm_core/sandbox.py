"""Host side of the sandboxed REPL: one persistent worker process per recursion node.

The worker (``rlm_core/worker``) confines itself at start-up (network namespace, Landlock
filesystem/network/signal scoping, resource limits, unprivileged uid) and reports what held;
missing mechanisms are logged as warnings once per process (``rlm_core.launch``). The host
enforces the wall-clock limit per execution: on breach it kills the worker's whole process
group, starts a fresh one on the same context file and tells the model its variables were lost.
Given a ``WorkerPool`` with the same limits, a sandbox takes a worker that was started and
locked down ahead of it, instead of paying the start on its first execution.

The sandbox knows nothing about models: sub-call frames from the worker are handed to the
``SubCallHandler`` the caller passes in.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlm_router.rlm_core import frames
from rlm_router.rlm_core.containment import SandboxCgroup
from rlm_router.rlm_core.errors import SandboxMisbehaving
from rlm_router.rlm_core.frames import DoneFrame, FrameError, FrameTooLarge, SubCallRequest
from rlm_router.rlm_core.launch import (
    SandboxInfo,
    SandboxLimits,
    WorkerProcess,
    Workspace,
    await_ready,
    dispose,
    kill,
    launch,
    write_context,
)
from rlm_router.rlm_core.worker import spill
from rlm_router.rlm_core.worker.framing import HEADER as _HEADER

if TYPE_CHECKING:
    from rlm_router.rlm_core.pool import WorkerPool

__all__ = [
    "ExecutionResult",
    "Sandbox",
    "SandboxInfo",
    "SandboxLimits",
    "SubCallHandler",
    "SubCallRejected",
    "SubCallRequest",
]


SubCallHandler = Callable[[SubCallRequest], Awaitable[list[str]]]
# Texts up to this size are written on the event loop (~0.1 ms per 100K characters): a trip
# through the thread pool costs more than that on a busy host.
_INLINE_WRITE_CHARS = 1 << 20


@dataclass
class ExecutionResult:
    stdout: str
    error: str | None
    final: str | None
    answer_content: str = ""
    answer_ready: bool = False
    truncated: bool = False
    stdout_chars: int = 0
    limit: str | None = None  # cpu | memory | wall | crash | protocol
    state_lost: bool = False
    duration_s: float = 0.0
    subcall_s: float = 0.0
    variables: list[str] | None = None  # the REPL's user variables after the execution


class Sandbox:
    """A persistent REPL worker for one recursion node. Use as ``async with``."""

    def __init__(
        self,
        context: Any,
        *,
        limits: SandboxLimits,
        handler: SubCallHandler,
        pool: WorkerPool | None = None,
    ) -> None:
        self._context = context
        self._limits = limits
        self._handler = handler
        self._pool = pool
        self._proc: WorkerProcess | None = None
        self._ws: Workspace | None = None
        self._context_kind = "text"
        self._context_bytes = 0
        self._reader: frames.FrameReader
        self._protocol_restarts = 0
        self._taken_from: WorkerPool | None = None  # the pool to tell when this closes
        self.info = SandboxInfo()

    @property
    def cgroup(self) -> SandboxCgroup | None:
        """The sandbox's cgroup (None before start, after close, or where there is none)."""
        return self._ws.cgroup if self._ws is not None else None

    async def __aenter__(self) -> Sandbox:
        try:
            await self.start()
        except BaseException:
            await self.close()  # __aexit__ does not run when entering fails
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> SandboxInfo:
        """Write the context and start the worker (or take a pre-started one)."""
        if self._ws is None:
            prepared = self._pool.take(self._limits) if self._pool is not None else None
            if prepared is not None:
                self._taken_from = self._pool
                self._ws = prepared.workspace
            else:
                self._ws = Workspace.create(self._limits)
            if isinstance(self._context, str) and len(self._context) <= _INLINE_WRITE_CHARS:
                written = write_context(self._context, self._ws.context_path)
            else:  # large or JSON-like: encoding takes a while, off the event loop
                written = await asyncio.to_thread(
                    write_context, self._context, self._ws.context_path
                )
            self._context_kind, self._context_bytes = written
            self._ws.context_path.chmod(0o400)
            self._context = None  # the file is the single source from now on
            memory = self._limits.memory_bytes(self._context_bytes)
            self._ws.set_memory(memory)
            if prepared is not None:
                self._proc, self._reader = prepared.proc, prepared.reader
                try:
                    await self._send(
                        {"op": "context", "kind": self._context_kind, "memory_bytes": memory}
                    )
                except BrokenPipeError:  # died while waiting in the pool: start afresh
                    await kill(prepared.proc, None)
                else:
                    self.info = await await_ready(
                        prepared.proc, self._reader, self._limits, self._ws.cgroup
                    )
                    return self.info
        await self._spawn()
        return self.info

    async def _spawn(self) -> None:
        assert self._ws is not None
        memory = self._limits.memory_bytes(self._context_bytes)
        self._proc, self._reader = await launch(
            self._ws, self._limits, kind=self._context_kind, memory=memory
        )
        try:
            self.info = await await_ready(self._proc, self._reader, self._limits, self._ws.cgroup)
        except BaseException:
            self._proc = None
            raise

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        body = json.dumps(message).encode("utf-8", "surrogatepass")
        try:
            self._proc.stdin.write(_HEADER.pack(len(body)) + body)
            await self._proc.stdin.drain()
        except RuntimeError as exc:
            # A worker killed from outside (kill -9) closes the pipe's transport, and asyncio
            # then raises RuntimeError ("handler is closed"), not BrokenPipeError: the same
            # crash, so the caller's restart path handles it.
            raise BrokenPipeError(f"the REPL's pipe is closed: {exc}") from exc

    async def execute(self, code: str) -> ExecutionResult:
        """Run one code block; sub-call frames are served while it runs."""
        return await self._converse(
            {"op": "exec", "code": code, "cpu_s": self._limits.cpu_seconds}, DoneFrame
        )

    async def get_variable(self, name: str) -> ExecutionResult:
        """The ``str()`` of a REPL variable, taken inside the worker under the execution
        limits: ``final`` holds it; ``error`` says why not (no such variable, ``__str__``
        raised, ran out of CPU or wall time)."""
        return await self._converse(
            {"op": "get", "name": name, "cpu_s": self._limits.cpu_seconds}, frames.ValueFrame
        )

    async def _converse(
        self, request: dict[str, Any], ends: type[DoneFrame] | type[frames.ValueFrame]
    ) -> ExecutionResult:
        """Send one request and serve sub-call frames until the frame that ``ends`` it.

        Every frame is validated first (``rlm_core.frames``): a malformed sub-call request is
        answered with an error the model sees, other bad frames are counted and ignored, and
        too many of them, an oversized frame or a stream that ends restart the worker.
        """
        died: int | None = None  # the exit status of a worker that died since the last request
        if self._proc is None or self._proc.returncode is not None:
            died = None if self._proc is None else self._proc.returncode
            await self._spawn()
        started = time.perf_counter()
        remaining = self._limits.wall_seconds
        subcall_s = 0.0
        ignored: list[str] = []
        try:
            await self._send(request)
            while True:
                waited = time.perf_counter()
                try:
                    async with asyncio.timeout(remaining):  # no extra task per frame
                        frame = await self._reader.read()
                except FrameTooLarge as exc:
                    return await self._misbehaved(str(exc), started, subcall_s)
                except FrameError as exc:
                    remaining -= time.perf_counter() - waited
                    ignored.append(str(exc))
                    if exc.op == "llm":  # a request: the caller in the worker awaits a reply
                        reply = {"op": "reply", "id": exc.request_id, "error": str(exc)}
                        await self._send(reply)
                    if len(ignored) > self._limits.max_bad_frames:
                        why = f"{len(ignored)} malformed frames (first: {ignored[0]})"
                        return await self._misbehaved(why, started, subcall_s)
                    continue
                remaining -= time.perf_counter() - waited
                if isinstance(frame, ends):
                    result = _result(frame, started, subcall_s)
                    if died is not None:
                        # Model code can end its worker after a reply (a thread that calls
                        # os._exit): the model must hear that its variables are gone, not
                        # meet NameErrors it cannot explain.
                        result.error = (
                            f"WorkerCrash: the REPL process died after the previous execution "
                            f"(exit status {died}). It was restarted before this one: all "
                            "variables were lost.\n"
                        ) + (result.error or "")
                        result.state_lost = True
                    if ignored:
                        note = (
                            f"ProtocolWarning: the host ignored {len(ignored)} malformed "
                            f"frame(s) from the REPL (first: {ignored[0]})\n"
                        )
                        result.error = (result.error or "") + note
                    return result
                if isinstance(frame, SubCallRequest):
                    t0 = time.perf_counter()
                    await self._send(await self._serve(frame))
                    subcall_s += time.perf_counter() - t0
                else:
                    ignored.append(f"unexpected {type(frame).__name__}")
        except TimeoutError:
            printed = self._spilled()
            await self._restart()
            return ExecutionResult(
                stdout=printed,
                error=(
                    f"TimeoutError: the execution exceeded the {self._limits.wall_seconds:g} s "
                    "wall-time limit and was killed. The REPL was restarted: all variables "
                    "were lost (`context` and the helper functions are available again)."
                ),
                final=None, limit="wall", state_lost=True,
                duration_s=time.perf_counter() - started, subcall_s=subcall_s,
            )  # fmt: skip
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError):
            code_ = self._proc.returncode if self._proc else None
            printed = self._spilled()
            await self._restart()
            return ExecutionResult(
                stdout=printed,
                error=(
                    f"WorkerCrash: the REPL process died (exit status {code_}), probably a "
                    "resource limit. It was restarted: all variables were lost."
                ),
                final=None, limit="crash", state_lost=True,
                duration_s=time.perf_counter() - started, subcall_s=subcall_s,
            )  # fmt: skip

    def _spilled(self) -> str:
        """What the execution printed before it was killed (the worker writes it through)."""
        if self._ws is None or self._ws.spill_fd < 0:
            return ""
        return spill.read(self._ws.spill_fd, self._limits.output_bytes)

    async def _misbehaved(self, why: str, started: float, subcall_s: float) -> ExecutionResult:
        """Restart a worker that broke the protocol; past the allowance, end the node."""
        self._protocol_restarts += 1
        if self._protocol_restarts > self._limits.max_protocol_restarts:
            await self._kill()
            raise SandboxMisbehaving(
                f"the REPL broke the frame protocol {self._protocol_restarts} times (last: {why})"
            )
        await self._restart()
        return ExecutionResult(
            stdout="",
            error=(
                f"ProtocolError: the REPL sent {why}. It was restarted: all variables were "
                "lost. Talk to the host only through llm_query / llm_query_batched / rlm_query."
            ),
            final=None, limit="protocol", state_lost=True,
            duration_s=time.perf_counter() - started, subcall_s=subcall_s,
        )  # fmt: skip

    async def _serve(self, request: SubCallRequest) -> dict[str, Any]:
        reply: dict[str, Any] = {"op": "reply", "id": request.request_id}
        try:
            reply["results"] = await self._handler(request)
        except SubCallRejected as exc:
            reply["error"] = str(exc)
        return reply

    def peak_rss_kb(self) -> int | None:
        """The worker's peak resident memory (VmHWM), read by the host from /proc."""
        if self._proc is None:
            return None
        pid = self._proc.pid
        try:
            # With a PID namespace the REPL is the stub's only child.
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            status = Path(f"/proc/{children[0] if children else pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return None

    async def _restart(self) -> None:
        await self._kill()
        await self._spawn()

    async def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            await kill(proc, self._ws.cgroup if self._ws is not None else None)

    async def close(self) -> None:
        """Kill the worker (and anything it forked) and remove the scratch dir (in the
        background: ``rlm_core.launch.dispose``)."""
        try:
            await asyncio.shield(self._kill())
        finally:
            if self._taken_from is not None:
                self._taken_from.release()
                self._taken_from = None
            if self._ws is not None:
                dispose(self._ws)
                self._ws = None


class SubCallRejected(Exception):
    """Raised by a SubCallHandler to turn a request into an exception in model code."""


def _result(
    frame: DoneFrame | frames.ValueFrame, started: float, subcall_s: float
) -> ExecutionResult:
    duration = time.perf_counter() - started
    if isinstance(frame, frames.ValueFrame):
        return ExecutionResult(
            stdout="", error=frame.error, final=frame.value if frame.found else None,
            limit=frame.limit, duration_s=duration, subcall_s=subcall_s,
        )  # fmt: skip
    return ExecutionResult(
        stdout=frame.stdout,
        error=frame.error,
        final=frame.final,
        answer_content=frame.answer_content,
        answer_ready=frame.answer_ready,
        truncated=frame.truncated,
        stdout_chars=frame.stdout_chars,
        limit=frame.limit,
        duration_s=duration,
        subcall_s=subcall_s,
        variables=frame.variables,
    )
