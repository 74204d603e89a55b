"""Starting one locked-down REPL worker: its workspace on the host and its process.

A ``Workspace`` is what the host prepares for one sandbox: the scratch directory (the worker's
only writable place), a private directory outside it that the worker's uid cannot enter (the
context file, handed over as a read-only descriptor so model code cannot delete or rewrite it
for later restarts), the spill file that keeps output printed before a wall-time kill (a memfd
the worker maps: ``rlm_core.worker.spill``), and the per-sandbox
cgroup. ``launch`` starts a worker in it and ``await_ready`` reads the worker's
report of what confinement held, refusing a weaker sandbox than the limits accept.

A worker starts either with its context (``kind`` given: a ``Sandbox`` starting cold, or
restarting after a kill) or without it (``kind=None``: a pre-started worker of
``rlm_core.pool``, locked down ahead of the request; the context is written into the same file
and announced when the worker is taken).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import functools
import json
import logging
import marshal
import os
import pwd
import shutil
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlm_router.rlm_core import frames
from rlm_router.rlm_core.containment import SandboxCgroup
from rlm_router.rlm_core.errors import SandboxError
from rlm_router.rlm_core.frames import FrameError
from rlm_router.rlm_core.process import WorkerProcess
from rlm_router.rlm_core.worker import spill

logger = logging.getLogger("rlm_router.rlm_core.sandbox")

# Run as a script, not as a directory: a directory runs through runpy, whose imports cost every
# worker start ~2.5 ms of CPU (2-core VM, load ~2). See worker/__main__.py.
_WORKER = Path(__file__).with_name("worker") / "__main__.py"
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

    def memory_bytes(self, context_bytes: int) -> int:
        """The sandbox's memory limit: the decoded context and its mapping must fit beside
        the model's own memory."""
        return (self.memory_mb << 20) + 6 * context_bytes


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


def write_context(context: Any, path: Path) -> tuple[str, int]:
    """Write the context once, in place (the worker may already hold a descriptor of this
    file), for the worker to map; returns (kind, bytes)."""
    if isinstance(context, str):
        kind = "text"
        with path.open("wb") as handle:
            step = 1 << 20  # encode in 1 MiB slices: never hold a second full copy
            for start in range(0, len(context), step):
                handle.write(context[start : start + step].encode("utf-8", "surrogatepass"))
    else:
        kind = "json"
        with path.open("w", encoding="utf-8") as handle:
            json.dump(context, handle, ensure_ascii=False)
    return kind, path.stat().st_size


@dataclass
class Workspace:
    """The host-side resources of one sandbox (see the module docstring)."""

    scratch: Path
    private: Path
    spill_fd: int
    cgroup: SandboxCgroup | None
    _removing: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def context_path(self) -> Path:
        return self.private / "context"

    @classmethod
    def create(cls, limits: SandboxLimits) -> Workspace:
        """Directories, an empty context file and the cgroup (its memory limit set for an
        empty context: ``set_memory`` once the context is written)."""
        scratch = Path(tempfile.mkdtemp(prefix="rlm-scratch-"))
        uid, gid = _nobody()
        if os.geteuid() == 0:
            os.chown(scratch, uid, gid)
        os.chmod(scratch, 0o700)
        private = Path(tempfile.mkdtemp(prefix="rlm-host-"))
        (private / "context").touch(0o600)
        try:
            # Memory, charged to the sandbox's cgroup as the worker writes it; on ext4 the
            # write and truncation of a file per execution cost ~10% of a trivial iteration.
            spill_fd = os.memfd_create("rlm-spill", os.MFD_CLOEXEC)
        except (AttributeError, OSError):  # no memfd (kernel < 3.17)
            spill_fd = os.open(private / "stdout", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.ftruncate(spill_fd, spill.size(limits.output_bytes))  # mapped by the worker
        cgroup = None
        if limits.cgroups:
            cgroup = SandboxCgroup.create(
                memory_bytes=limits.memory_bytes(0), max_processes=limits.max_processes
            )
        return cls(scratch, private, spill_fd, cgroup)

    def set_memory(self, memory_bytes: int) -> None:
        if self.cgroup is not None:
            self.cgroup.set_memory(memory_bytes)

    def remove(self) -> None:
        """Close the spill file, empty and remove the cgroup, delete both directories
        (idempotent, and safe from two threads: a descriptor is never closed twice)."""
        with self._removing:
            if self.spill_fd >= 0:
                os.close(self.spill_fd)
                self.spill_fd = -1
            if self.cgroup is not None:
                self.cgroup.kill_all()
                self.cgroup.remove()
                self.cgroup.remove_later()  # killed processes leave within milliseconds
                self.cgroup = None
            for directory in (self.scratch, self.private):
                shutil.rmtree(directory, ignore_errors=True)


def _config(
    ws: Workspace, limits: SandboxLimits, context_fd: int, kind: str | None, memory: int | None
) -> dict[str, Any]:
    uid, gid = _nobody()
    return {
        "cgroup_procs": ws.cgroup.procs if ws.cgroup is not None else [],
        "scratch": str(ws.scratch),
        "context_fd": context_fd,
        "spill_fd": ws.spill_fd,
        "context_kind": kind,
        "uid": uid,
        "gid": gid,
        "host_pid": os.getpid(),
        "network_namespace": limits.network_namespace,
        "limits": {
            "memory_bytes": memory,
            "max_processes": limits.max_processes,
            "max_file_bytes": limits.max_file_mb << 20,
            "max_open_files": limits.max_open_files,
            "cpu_total_s": limits.cpu_seconds_total,
            "output_bytes": limits.output_bytes,
            "max_frame_bytes": limits.max_frame_mb << 20,
        },
    }


# The worker's modules, compiled once per host process (see compiled_worker_fd); in the order
# they import each other.
_WORKER_MODULES = ("cjson", "framing", "spill", "lockdown", "repl")
_compiled: list[int] = []  # the sealed descriptor, once made
_compiling = threading.Lock()


def compiled_worker_fd() -> int | None:
    """A sealed memfd with the worker's modules compiled (marshal), made once per process.

    Every worker would otherwise compile them from source: ~9 ms of CPU per start (2-core
    VM, load ~2) wherever no ``__pycache__`` can be written or read (PYTHONDONTWRITEBYTECODE,
    a read-only install), and the worker never writes one itself (``-B``). Sealed against
    writes, shrinking and growing, so no worker can change what later workers run; the
    worker loads it before anything else and closes its copy. None where there is no memfd
    (the worker then imports from source).
    """
    with _compiling:
        if not _compiled:
            try:
                fd = os.memfd_create("rlm-worker-code", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
            except (AttributeError, OSError):
                fd = -1
            else:
                data = memoryview(_compile_worker())
                while data:
                    data = data[os.write(fd, data) :]
                seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
                fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals | fcntl.F_SEAL_SEAL)
            _compiled.append(fd)
        return _compiled[0] if _compiled[0] >= 0 else None


def _compile_worker() -> bytes:
    modules = []
    for name in _WORKER_MODULES:
        path = _WORKER.with_name(f"{name}.py")
        # optimize=0: the worker runs without -O, so its asserts stay.
        code = compile(path.read_bytes(), str(path), "exec", dont_inherit=True, optimize=0)
        modules.append((name, str(path), code))
    return marshal.dumps(tuple(modules))


async def launch(
    ws: Workspace,
    limits: SandboxLimits,
    *,
    kind: str | None,
    memory: int | None,
    niceness: int | None = None,
) -> tuple[WorkerProcess, frames.FrameReader]:
    """Start a worker in ``ws``: with its context (``kind``, ``memory``) or, with None for
    both, locked down ahead of it (it then waits for a ``context`` message). ``niceness``
    lowers its priority from the start (a pool's refill; the pool restores it)."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
    pass_fds = [ws.spill_fd]
    code_fd = compiled_worker_fd()
    if code_fd is not None:
        env["RLM_WORKER_CODE_FD"] = str(code_fd)
        pass_fds.append(code_fd)
    context_fd = os.open(ws.context_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        proc = await WorkerProcess.start(
            [sys.executable, "-I", "-S", "-B", str(_WORKER),
             json.dumps(_config(ws, limits, context_fd, kind, memory))],
            env=env, cwd=ws.scratch, pass_fds=(context_fd, *pass_fds),
        )  # fmt: skip
    finally:
        os.close(context_fd)
    if niceness is not None:
        # Set at once, while the worker's interpreter starts (its own uid still: lowering a
        # priority needs no privilege); its process group, so the PID namespace's REPL that
        # it forks later inherits it.
        try:
            os.setpriority(os.PRIO_PGRP, proc.pid, niceness)
        except OSError as exc:  # it died already
            await kill(proc, ws.cgroup)
            raise SandboxError(f"REPL worker failed to start: {exc!r}") from exc
        set_autogroup_nice(proc.pid, niceness)
    if ws.cgroup is not None and ATTACH_FROM_HOST:
        # Joining a cgroup v1 hierarchy waits for the kernel (~10 ms each, two of them): done
        # here, in a thread, it overlaps the worker's interpreter start-up. The worker checks
        # its membership before it runs anything and joins itself where this was late or
        # failed, so containment never depends on this thread.
        _background("attach").submit(_attach, ws.cgroup.procs, proc.pid)
    assert proc.stdout is not None
    return proc, frames.FrameReader(proc.stdout, limits.max_frame_mb << 20)


def autogroup_nice(pid: int) -> int | None:
    """The nice value of ``pid``'s scheduler autogroup (None: no autogroups here)."""
    try:
        return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def set_autogroup_nice(pid: int, niceness: int) -> bool:
    """Set the nice value of ``pid``'s autogroup. The worker is a session of its own, and
    where the kernel groups sessions (sched_autogroup), a task's nice only orders it within
    its session's group: the group's own nice is what weighs against the host's work."""
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(niceness))
    except OSError:  # no autogroups; or a rate limit / permission for the unprivileged
        return False
    return True


ATTACH_FROM_HOST = True  # False: the worker joins its cgroups itself (for measurements)


def _attach(procs_files: list[str], pid: int) -> None:
    for path in procs_files:
        try:
            with open(path, "w") as handle:
                handle.write(str(pid))
        except OSError:  # exited already, or no permission: the worker joins (or reports)
            return


async def await_ready(
    proc: WorkerProcess,
    reader: frames.FrameReader,
    limits: SandboxLimits,
    cgroup: SandboxCgroup | None,
) -> SandboxInfo:
    """Read the worker's ready report; kill it and raise SandboxError when it does not
    start, or when it lacks a containment layer the limits do not let it go without."""
    try:
        async with asyncio.timeout(limits.start_timeout_s):
            ready = await reader.read()
        if not isinstance(ready, frames.ReadyFrame):
            raise FrameError(f"expected a ready frame, got {type(ready).__name__}")
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, FrameError) as exc:
        await kill(proc, cgroup)
        raise SandboxError(f"REPL worker failed to start: {exc!r}") from exc
    report = ready.sandbox
    warnings = report.get("warnings")
    info = SandboxInfo(
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
    info.missing = _missing_layers(info)
    if info.missing and not limits.allow_weak_containment:
        await kill(proc, cgroup)
        raise SandboxError(
            "refusing to run model code: this host does not give the sandbox "
            f"{', '.join(info.missing)}. Opt in to the weaker sandbox explicitly "
            "(SandboxLimits(allow_weak_containment=True), rlm-router rlm "
            "--allow-weak-sandbox, or sandbox.allow_weak_containment: true in the policy) "
            f"to run with what holds: network {info.network}, filesystem {info.filesystem}, "
            f"seccomp {info.seccomp}."
        )
    for warning in info.warnings:
        if warning not in _warned:
            _warned.add(warning)
            logger.warning("RLM sandbox: %s", warning)
    return info


def kill_now(proc: WorkerProcess, cgroup: SandboxCgroup | None) -> None:
    """SIGKILL the worker's process group and whatever left it (no model code runs after
    this returns); ``kill`` also reaps."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if cgroup is not None:
        cgroup.kill_all()  # processes that left the group and the namespace
    proc.kill()
    with contextlib.suppress(Exception):  # its loop may have closed
        proc.close_pipes()


async def kill(proc: WorkerProcess, cgroup: SandboxCgroup | None) -> None:
    """``kill_now`` and reap the worker."""
    kill_now(proc, cgroup)
    await proc.wait()


def dispose(ws: Workspace) -> None:
    """Remove a workspace whose worker is dead, in a thread: unlinking a context that was
    just written waits for a journal commit (~5 ms here) that the run's answer need not wait
    for. The interpreter finishes it before it exits (executor threads are joined)."""
    _background("remove").submit(ws.remove)


@functools.cache
def _background(task: str) -> concurrent.futures.ThreadPoolExecutor:
    """The threads that attach workers to their cgroups and remove workspaces, started once
    per process: ``Thread.start`` waits until the new thread runs, which took the event loop
    up to ~3 ms per sandbox start and close on a loaded host (p90, 2-core VM, load ~2.5;
    median 0.06 ms), against ~5 us per task here. One pool per task, so that removals never
    queue an attach behind them (a late attach makes the worker join its cgroups itself)."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"rlm-{task}")


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
