"""Host side of the sandboxed REPL: one persistent worker process per recursion node.

The worker (``rlm_core/worker``) confines itself at start-up (network namespace, Landlock
filesystem/network/signal scoping, resource limits, unprivileged uid) and reports what held;
missing mechanisms are logged as warnings once per process. The host enforces the wall-clock
limit per execution: on breach it kills the worker's whole process group, starts a fresh one
on the same context file and tells the model its variables were lost.

The sandbox knows nothing about models: sub-call frames from the worker are handed to the
``SubCallHandler`` the caller passes in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pwd
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlm_router.rlm_core import frames
from rlm_router.rlm_core.containment import SandboxCgroup
from rlm_router.rlm_core.errors import SandboxError, SandboxMisbehaving
from rlm_router.rlm_core.frames import DoneFrame, FrameError, FrameTooLarge, SubCallRequest
from rlm_router.rlm_core.worker.framing import HEADER as _HEADER

logger = logging.getLogger("rlm_router.rlm_core.sandbox")

_WORKER = Path(__file__).with_name("worker")  # run as a directory: see worker/__main__.py
_warned: set[str] = set()


@dataclass(frozen=True, kw_only=True)
class SandboxLimits:
    """Per-worker limits. Memory is on top of what the context itself needs."""

    cpu_seconds: int = 60  # CPU time per execution
    cpu_seconds_total: int = 1800  # CPU time over the worker's life
    wall_seconds: float = 120.0  # wall time per execution, excluding time spent in sub-calls
    memory_mb: int = 2048
    max_processes: int = 64
    max_file_mb: int = 512
    max_open_files: int = 256
    output_bytes: int = 1_000_000  # captured per execution; the prompt shows far less
    # False skips the network namespace (the in-process socket block and Landlock's TCP
    # rules still apply); for hosts where creating namespaces is forbidden or slow.
    network_namespace: bool = True
    # False skips the per-sandbox cgroup (memory and processes then limited per process and
    # per uid only); like network_namespace=False, it forces a fallback for tests.
    cgroups: bool = True
    # Where a containment layer cannot be had on this host, model code is refused unless
    # this is set: the user accepts what still holds (SandboxInfo.missing says what not).
    allow_weak_containment: bool = False
    start_timeout_s: float = 30.0
    # Frames from the worker above this size are refused before they are read; the worker
    # refuses to send them (a sub-call request or a final answer larger than this is an error).
    max_frame_mb: int = 64
    # Malformed frames tolerated per execution before the worker is restarted, and
    # restarts for misbehaviour before the node ends (SandboxMisbehaving).
    max_bad_frames: int = 16
    max_protocol_restarts: int = 3


SubCallHandler = Callable[[SubCallRequest], Awaitable[list[str]]]


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


@dataclass
class SandboxInfo:
    """What the worker reported about its confinement."""

    network: str = "none"
    filesystem: str = "none"
    uid: int = -1
    warnings: list[str] = field(default_factory=list)
    startup_s: float = 0.0
    context_load_s: float = 0.0
    pid_namespace: bool = False
    seccomp: str = "none"
    cgroup: bool = False
    missing: list[str] = field(default_factory=list)  # containment layers that did not hold


def _nobody() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return 65534, 65534


def write_context(context: Any, directory: Path) -> tuple[Path, str, int]:
    """Write the context once for the worker to map; returns (path, kind, bytes)."""
    if isinstance(context, str):
        path, kind = directory / "context.txt", "text"
        with path.open("wb") as handle:
            step = 1 << 20  # encode in 1 MiB slices: never hold a second full copy
            for start in range(0, len(context), step):
                handle.write(context[start : start + step].encode("utf-8", "surrogatepass"))
    else:
        path, kind = directory / "context.json", "json"
        with path.open("w", encoding="utf-8") as handle:
            json.dump(context, handle, ensure_ascii=False)
    return path, kind, path.stat().st_size


class Sandbox:
    """A persistent REPL worker for one recursion node. Use as ``async with``."""

    def __init__(self, context: Any, *, limits: SandboxLimits, handler: SubCallHandler) -> None:
        self._context = context
        self._limits = limits
        self._handler = handler
        self._proc: asyncio.subprocess.Process | None = None
        self._scratch: Path | None = None
        # Outside scratch, closed to the worker's uid: the context file (handed over as a
        # read-only descriptor, so model code cannot delete or rewrite it for later
        # restarts) and the spill file that keeps output printed before a wall-time kill.
        self._private: Path | None = None
        self._context_path: Path | None = None
        self._spill_fd: int | None = None
        self._context_kind = "text"
        self._context_bytes = 0
        self._reader: frames.FrameReader
        self._protocol_restarts = 0
        self._cgroup: SandboxCgroup | None = None
        self.info = SandboxInfo()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> SandboxInfo:
        """Create the scratch dir, write the context and start the worker."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="rlm-scratch-"))
            uid, gid = _nobody()
            if os.geteuid() == 0:
                os.chown(self._scratch, uid, gid)
            os.chmod(self._scratch, 0o700)
            self._private = Path(tempfile.mkdtemp(prefix="rlm-host-"))
            path, self._context_kind, self._context_bytes = await asyncio.to_thread(
                write_context, self._context, self._private
            )
            path.chmod(0o400)
            self._context_path = path
            self._context = None  # the file is the single source from now on
            self._spill_fd = os.open(
                self._private / "stdout", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
            if self._limits.cgroups:
                self._cgroup = SandboxCgroup.create(
                    memory_bytes=self._memory_bytes(), max_processes=self._limits.max_processes
                )
        await self._spawn()
        return self.info

    def _memory_bytes(self) -> int:
        # The decoded context plus its mapping must fit beside the model's own memory.
        return (self._limits.memory_mb << 20) + 6 * self._context_bytes

    def _config(self, context_fd: int) -> dict[str, Any]:
        lim = self._limits
        uid, gid = _nobody()
        memory = self._memory_bytes()
        return {
            "cgroup_procs": self._cgroup.procs if self._cgroup is not None else [],
            "scratch": str(self._scratch),
            "context_fd": context_fd,
            "spill_fd": self._spill_fd,
            "context_kind": self._context_kind,
            "uid": uid,
            "gid": gid,
            "host_pid": os.getpid(),
            "network_namespace": lim.network_namespace,
            "limits": {
                "memory_bytes": memory,
                "max_processes": lim.max_processes,
                "max_file_bytes": lim.max_file_mb << 20,
                "max_open_files": lim.max_open_files,
                "cpu_total_s": lim.cpu_seconds_total,
                "output_bytes": lim.output_bytes,
                "max_frame_bytes": lim.max_frame_mb << 20,
            },
        }

    async def _spawn(self) -> None:
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
        assert self._context_path is not None and self._spill_fd is not None
        context_fd = os.open(self._context_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-S", "-B", str(_WORKER),
                json.dumps(self._config(context_fd)),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL, env=env, cwd=str(self._scratch),
                start_new_session=True, limit=1 << 20, pass_fds=(context_fd, self._spill_fd),
            )  # fmt: skip
        finally:
            os.close(context_fd)
        assert self._proc.stdout is not None
        self._reader = frames.FrameReader(self._proc.stdout, self._limits.max_frame_mb << 20)
        try:
            async with asyncio.timeout(self._limits.start_timeout_s):
                ready = await self._reader.read()
            if not isinstance(ready, frames.ReadyFrame):
                raise FrameError(f"expected a ready frame, got {type(ready).__name__}")
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, FrameError) as exc:
            await self._kill()
            raise SandboxError(f"REPL worker failed to start: {exc!r}") from exc
        report = ready.sandbox
        warnings = report.get("warnings")
        self.info = SandboxInfo(
            network=str(report.get("network", "none")),
            filesystem=str(report.get("filesystem", "none")),
            uid=int(_number(report.get("uid"), -1)),
            warnings=[str(w) for w in warnings] if isinstance(warnings, list) else [],
            startup_s=_number(report.get("startup_s"), 0.0),
            context_load_s=_number(report.get("context_load_s"), 0.0),
            pid_namespace=report.get("pid_namespace") is True,
            seccomp=str(report.get("seccomp", "none")),
            cgroup=report.get("cgroup") is True,
        )
        self.info.missing = _missing_layers(self.info)
        if self.info.missing and not self._limits.allow_weak_containment:
            await self._kill()
            raise SandboxError(
                "refusing to run model code: this host does not give the sandbox "
                f"{', '.join(self.info.missing)}. Opt in to the weaker sandbox explicitly "
                "(SandboxLimits(allow_weak_containment=True), rlm-router rlm "
                "--allow-weak-sandbox) to run with what holds: network "
                f"{self.info.network}, filesystem {self.info.filesystem}, seccomp "
                f"{self.info.seccomp}."
            )
        for warning in self.info.warnings:
            if warning not in _warned:
                _warned.add(warning)
                logger.warning("RLM sandbox: %s", warning)

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
        if self._proc is None or self._proc.returncode is not None:
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
        if self._spill_fd is None:
            return ""
        cap = self._limits.output_bytes
        data = os.pread(self._spill_fd, 4 * cap, 0)  # up to 4 UTF-8 bytes per kept character
        return data.decode("utf-8", "replace")[:cap]

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
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if self._cgroup is not None:
            self._cgroup.kill_all()  # processes that left the group and the namespace
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(Exception):
            if proc.stdin is not None:
                proc.stdin.close()
        await proc.wait()

    async def close(self) -> None:
        """Kill the worker (and anything it forked) and remove the scratch dir."""
        try:
            await asyncio.shield(self._kill())
        finally:
            if self._spill_fd is not None:
                os.close(self._spill_fd)
                self._spill_fd = None
            if self._cgroup is not None:
                self._cgroup.kill_all()
                self._cgroup.remove()
                self._cgroup.remove_later()  # killed processes leave within milliseconds
                self._cgroup = None
            for directory in (self._scratch, self._private):
                if directory is not None:
                    shutil.rmtree(directory, ignore_errors=True)
            self._scratch = self._private = None


class SubCallRejected(Exception):
    """Raised by a SubCallHandler to turn a request into an exception in model code."""


def _missing_layers(info: SandboxInfo) -> list[str]:
    """The containment layers a full sandbox has that this one lacks."""
    layers = {
        "a network namespace": info.network == "namespace",
        "Landlock filesystem rules": info.filesystem.startswith("landlock"),
        "a PID namespace": info.pid_namespace,
        "a seccomp filter": info.seccomp != "none",
        "a per-sandbox cgroup (memory and processes)": info.cgroup,
    }
    return [name for name, held in layers.items() if not held]


def _number(value: object, default: float) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else default  # type: ignore[arg-type]


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
