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

from rlm_core.errors import SandboxError
from rlm_core.worker.framing import HEADER as _HEADER

logger = logging.getLogger("rlm_core.sandbox")

_WORKER = Path(__file__).with_name("worker")  # run as a directory: see worker/__main__.py
_MAX_FRAME = 1 << 30
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
    start_timeout_s: float = 30.0


@dataclass(frozen=True)
class SubCallRequest:
    """What model code asked the host for: ``kind`` is query, batched, rlm or rlm_batched."""

    kind: str
    prompts: list[str]
    model: str | None = None
    context: Any = None


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
    limit: str | None = None  # cpu | memory | wall | crash
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
        self._context_path: Path | None = None
        self._context_kind = "text"
        self._context_bytes = 0
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
            (self._context_path, self._context_kind, self._context_bytes) = await asyncio.to_thread(
                write_context, self._context, self._scratch
            )
            self._context = None  # the file is the single source from now on
        await self._spawn()
        return self.info

    def _config(self) -> dict[str, Any]:
        lim = self._limits
        uid, gid = _nobody()
        # The decoded context plus its mapping must fit beside the model's own memory.
        memory = (lim.memory_mb << 20) + 6 * self._context_bytes
        return {
            "scratch": str(self._scratch),
            "context_path": str(self._context_path),
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
            },
        }

    async def _spawn(self) -> None:
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-S", "-B", str(_WORKER), json.dumps(self._config()),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, env=env, cwd=str(self._scratch),
            start_new_session=True, limit=1 << 20,
        )  # fmt: skip
        try:
            ready = await asyncio.wait_for(self._recv(), self._limits.start_timeout_s)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            await self._kill()
            raise SandboxError(f"REPL worker failed to start: {exc!r}") from exc
        report = ready["sandbox"]
        self.info = SandboxInfo(
            network=report.get("network", "none"),
            filesystem=report.get("filesystem", "none"),
            uid=int(report.get("uid", -1)),
            warnings=list(report.get("warnings", [])),
            startup_s=float(report.get("startup_s", 0.0)),
            context_load_s=float(report.get("context_load_s", 0.0)),
        )
        for warning in self.info.warnings:
            if warning not in _warned:
                _warned.add(warning)
                logger.warning("RLM sandbox: %s", warning)

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        body = json.dumps(message).encode("utf-8", "surrogatepass")
        self._proc.stdin.write(_HEADER.pack(len(body)) + body)
        await self._proc.stdin.drain()

    async def _recv(self) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        header = await self._proc.stdout.readexactly(_HEADER.size)
        (size,) = _HEADER.unpack(header)
        if size > _MAX_FRAME:
            raise SandboxError(f"worker frame of {size} bytes exceeds the limit")
        message: dict[str, Any] = json.loads(await self._proc.stdout.readexactly(size))
        return message

    async def execute(self, code: str) -> ExecutionResult:
        """Run one code block; sub-call frames are served while it runs."""
        if self._proc is None or self._proc.returncode is not None:
            await self._spawn()
        started = time.perf_counter()
        remaining = self._limits.wall_seconds
        subcall_s = 0.0
        try:
            await self._send({"op": "exec", "code": code, "cpu_s": self._limits.cpu_seconds})
            while True:
                waited = time.perf_counter()
                async with asyncio.timeout(remaining):  # no extra task per frame, unlike wait_for
                    frame = await self._recv()
                remaining -= time.perf_counter() - waited
                if frame["op"] == "done":
                    return _result(frame, started, subcall_s)
                if frame["op"] == "llm":
                    t0 = time.perf_counter()
                    await self._send(await self._serve(frame))
                    subcall_s += time.perf_counter() - t0
        except TimeoutError:
            await self._restart()
            return ExecutionResult(
                stdout="",
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
            await self._restart()
            return ExecutionResult(
                stdout="",
                error=(
                    f"WorkerCrash: the REPL process died (exit status {code_}), probably a "
                    "resource limit. It was restarted: all variables were lost."
                ),
                final=None, limit="crash", state_lost=True,
                duration_s=time.perf_counter() - started, subcall_s=subcall_s,
            )  # fmt: skip

    async def _serve(self, frame: dict[str, Any]) -> dict[str, Any]:
        request = SubCallRequest(
            kind=str(frame.get("kind")),
            prompts=list(frame.get("prompts", [])),
            model=frame.get("model"),
            context=frame.get("context"),
        )
        try:
            return {"op": "reply", "results": await self._handler(request)}
        except SubCallRejected as exc:
            return {"op": "reply", "error": str(exc)}

    async def get_variable(self, name: str) -> str | None:
        """The ``str()`` of a REPL variable, or None when it does not exist."""
        if self._proc is None or self._proc.returncode is not None:
            return None
        await self._send({"op": "get", "name": name})
        frame = await asyncio.wait_for(self._recv(), self._limits.wall_seconds)
        return str(frame["value"]) if frame.get("found") else None

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
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
                self._scratch = None


class SubCallRejected(Exception):
    """Raised by a SubCallHandler to turn a request into an exception in model code."""


def _result(frame: dict[str, Any], started: float, subcall_s: float) -> ExecutionResult:
    answer = frame.get("answer") or {}
    variables = frame.get("variables")
    return ExecutionResult(
        stdout=str(frame.get("stdout", "")),
        error=frame.get("error"),
        final=frame.get("final"),
        answer_content=str(answer.get("content", "")),
        answer_ready=bool(answer.get("ready")),
        truncated=bool(frame.get("truncated")),
        stdout_chars=int(frame.get("stdout_chars", 0)),
        limit=frame.get("limit"),
        duration_s=time.perf_counter() - started,
        subcall_s=subcall_s,
        variables=[str(name) for name in variables] if isinstance(variables, list) else None,
    )
