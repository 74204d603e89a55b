"""A bounded pool of pre-started, locked-down REPL workers, each used by one sandbox only.

Starting a worker costs tens of milliseconds before any model code runs: the interpreter, the
lockdown, and on cgroup v1 hosts above all joining the sandbox's cgroups (each attach waits for
an RCU grace period in the kernel, ~10 ms per hierarchy). A pool pays that ahead of the request:
it keeps ``size`` workers started in their own workspace (scratch, private directory, cgroup)
and locked down, but without a context. ``Sandbox.start`` takes one, writes the context into
its file and announces it; the worker sets its memory limit for that context and loads it.
A taken worker is never given back: when its sandbox closes it is killed and its workspace
removed, so nothing a request's model code did can reach the next request. The pool refills
in the background, one worker at a time, and out of the way of the runs: on a 2-core host
a start's ~80 ms of CPU (a fork, the workspace and cgroups, the interpreter, the lockdown)
landed on the first iterations of the run that took the worker and doubled their latency.

- A replacement waits until the sandboxes that took workers have closed, or at most
  ``REFILL_DELAY_S`` (which bounds how long a busy server runs with an emptier pool; by
  then real runs spend their time waiting on the model). This needs no privilege and keeps
  the host-side part of a start (fork, cgroup set-up and attach) away from the runs too.
- Where this process may raise a priority again (CAP_SYS_NICE: root) the replacement also
  starts at nice 19 (``REFILL_NICE``; its scheduler autogroup too, where the kernel groups
  sessions, or the nice would weigh only within the worker's own session), and ``take``
  gives the worker the host's own priority back before any model code runs in it; a worker
  whose priority cannot be restored is discarded, never used. Without that capability a
  nice could not be undone, so workers start at the host's priority. Measured alone
  (2 cores, load ~2.5, before the autogroup was niced too), nice 19 left a pre-started
  21-iteration run at 15-33 ms; waiting brought it to ~10 ms.

A waiting worker that dies (killed from outside, the OOM killer) is noticed at once, its
workspace removed and a replacement started (by the same rules); a worker that fails to start
is retried a few times, then the pool stops filling and sandboxes start their own workers
(which then report the failure to the caller).

The pool belongs to the event loop it was started on (its workers' pipes do); ``take`` on
another loop, or with other limits, returns None and the sandbox starts its own worker.
``shared_pool`` gives the one pool per loop and limits that the router's engines share.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import signal
from dataclasses import dataclass

from rlm_router.rlm_core import frames
from rlm_router.rlm_core.errors import SandboxError
from rlm_router.rlm_core.launch import (
    SandboxLimits,
    WorkerProcess,
    Workspace,
    autogroup_nice,
    await_ready,
    kill,
    launch,
    set_autogroup_nice,
)

logger = logging.getLogger("rlm_router.rlm_core.sandbox")

_MAX_FAILED_STARTS = 3  # in a row, then the pool stops filling
_RETRY_S = 0.05  # times the failures so far
REFILL_NICE = 19  # a replacement's priority while it starts (low-priority refills)
REFILL_DELAY_S = 1.0  # deferred refills: the longest a replacement waits for open sandboxes
_CAP_SYS_NICE = 23


def can_raise_priority() -> bool:
    """Whether this process may lower a nice value again (CAP_SYS_NICE in its effective set)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_SYS_NICE & 1)
    except (OSError, ValueError):
        pass
    return os.geteuid() == 0


@dataclass
class PreparedWorker:
    """A started, locked-down worker waiting for its context."""

    workspace: Workspace
    proc: WorkerProcess
    reader: frames.FrameReader
    watcher: asyncio.Task[None] | None = None  # notices its death while it waits


class WorkerPool:
    """Keeps ``size`` workers for sandboxes with ``limits`` ready. Use as ``async with``
    (or ``start()`` on the loop that will run the sandboxes, and ``close()``).

    ``low_priority_refill``: start replacements at ``REFILL_NICE`` (see the module
    docstring); None: where this process can restore the priority.
    """

    def __init__(
        self, limits: SandboxLimits, *, size: int = 1, low_priority_refill: bool | None = None
    ) -> None:
        if size < 1:
            raise ValueError("a worker pool needs size >= 1")
        self.limits = limits
        self.size = size
        if low_priority_refill is None:
            low_priority_refill = can_raise_priority()
        self.low_priority_refill = low_priority_refill
        self._in_use = 0  # workers taken whose sandboxes have not closed yet
        self._idle = asyncio.Event()  # no taken worker in use: a refill may start
        self._idle.set()
        self.failure: str | None = None  # why the pool stopped filling (a worker failed)
        self._ready: list[PreparedWorker] = []
        self._wanted = asyncio.Event()
        self._settled = asyncio.Event()  # full, or no longer filling
        self._loop: asyncio.AbstractEventLoop | None = None
        self._filler: asyncio.Task[None] | None = None
        self._closed = False
        self._failures = 0  # failed starts in a row

    async def __aenter__(self) -> WorkerPool:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def ready(self) -> int:
        """Workers started and waiting now."""
        return len(self._ready)

    def start(self) -> None:
        """Begin filling, on the running loop (idempotent)."""
        if self._filler is None and not self._closed:
            self._loop = asyncio.get_running_loop()
            self._filler = self._loop.create_task(self._fill(), name="rlm-worker-pool")
            self._wanted.set()

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Until the pool is full (or has stopped filling); for warm-up and benchmarks."""
        async with asyncio.timeout(timeout_s):
            await self._settled.wait()

    def take(self, limits: SandboxLimits) -> PreparedWorker | None:
        """A ready worker for a sandbox with ``limits``, or None (empty, other limits, other
        loop, closed). The pool starts a replacement in the background. A sandbox given a
        worker calls ``release`` when it closes."""
        if self._closed or limits != self.limits or self._loop is None:
            return None
        try:
            if asyncio.get_running_loop() is not self._loop:
                return None
        except RuntimeError:
            return None
        self._wanted.set()
        self._settled.clear()
        while self._ready:
            prepared = self._ready.pop(0)
            if prepared.watcher is not None:
                prepared.watcher.cancel()
            if prepared.proc.returncode is None and self._restore_priority(prepared):
                self._in_use += 1
                self._idle.clear()
                return prepared
            self._loop.create_task(_discard(prepared))  # killed while it waited, or niced
        return None

    def release(self) -> None:
        """A sandbox that ``take`` gave a worker has closed (refills may start)."""
        self._in_use = max(0, self._in_use - 1)
        if self._in_use == 0:
            self._idle.set()

    def _restore_priority(self, prepared: PreparedWorker) -> bool:
        """Give a low-priority worker the host's priority (its process group: the stub and
        the REPL; no model code has run, so nothing else is in it). False: it cannot be."""
        if not self.low_priority_refill:
            return True
        pid = prepared.proc.pid
        try:
            os.setpriority(os.PRIO_PGRP, pid, os.getpriority(os.PRIO_PROCESS, 0))
        except OSError as exc:
            logger.warning("RLM worker pool: cannot restore a worker's priority: %s", exc)
            return False
        # A session's autogroup starts at nice 0, as a cold worker's does.
        if autogroup_nice(pid) not in (None, 0) and not set_autogroup_nice(pid, 0):
            logger.warning("RLM worker pool: cannot restore a worker's autogroup priority")
            return False
        return True

    async def close(self) -> None:
        """Stop filling; kill the waiting workers and remove their workspaces."""
        self._closed = True
        self._settled.set()
        if self._filler is not None:
            self._filler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._filler
        ready, self._ready = self._ready, []
        for prepared in ready:
            if prepared.watcher is not None:
                prepared.watcher.cancel()
            await _discard(prepared)

    def discard_now(self) -> None:
        """``close`` without a loop (its loop has closed, or the process exits): kill the
        waiting workers and remove their workspaces."""
        self._closed = True
        ready, self._ready = self._ready, []
        for prepared in ready:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(prepared.proc.pid, signal.SIGKILL)
            prepared.workspace.remove()

    async def _fill(self) -> None:
        try:
            await self._keep_filled()
        finally:
            if not self._closed:  # cancelled by its loop's end (asyncio.run), not close():
                self._closed = True  # the loop still runs this, so reap them properly
                ready, self._ready = self._ready, []
                for prepared in ready:
                    await _discard(prepared)

    async def _keep_filled(self) -> None:
        while not self._closed:
            await self._wanted.wait()
            self._wanted.clear()
            while len(self._ready) < self.size and not self._closed:
                if not self._idle.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(REFILL_DELAY_S):
                            await self._idle.wait()
                    if self._closed:
                        return
                niceness = REFILL_NICE if self.low_priority_refill else None
                try:
                    prepared = await _prepare(self.limits, niceness)
                except SandboxError as exc:
                    # A start killed from outside is retried; a host that keeps refusing
                    # (missing containment) is not: the same error reaches the user from
                    # the sandbox's own start, and the pool stops rather than start
                    # failing workers in a loop.
                    self._failures += 1
                    if self._failures < _MAX_FAILED_STARTS:
                        await asyncio.sleep(_RETRY_S * self._failures)
                        continue
                    self.failure = str(exc)
                    logger.warning("RLM worker pool stopped: %s", exc)
                    self._settled.set()
                    return
                self._failures = 0
                if self._closed:
                    await _discard(prepared)
                    return
                prepared.watcher = asyncio.create_task(self._watch(prepared))
                self._ready.append(prepared)
            self._settled.set()

    async def _watch(self, prepared: PreparedWorker) -> None:
        """A waiting worker that dies is dropped (workspace removed) and replaced."""
        await prepared.proc.wait()
        if prepared in self._ready:
            self._ready.remove(prepared)
            await _discard(prepared)
            if not self._closed:
                self._settled.clear()
                self._wanted.set()


async def _prepare(limits: SandboxLimits, niceness: int | None) -> PreparedWorker:
    workspace = Workspace.create(limits)
    try:
        proc, reader = await launch(workspace, limits, kind=None, memory=None, niceness=niceness)
        try:
            await await_ready(proc, reader, limits, workspace.cgroup)
        except BaseException:
            await kill(proc, workspace.cgroup)
            raise
    except BaseException:
        workspace.remove()
        raise
    return PreparedWorker(workspace, proc, reader)


async def _discard(prepared: PreparedWorker) -> None:
    try:
        await kill(prepared.proc, prepared.workspace.cgroup)
    finally:
        prepared.workspace.remove()


_shared: dict[tuple[int, SandboxLimits, int], WorkerPool] = {}


def shared_pool(limits: SandboxLimits, size: int) -> WorkerPool:
    """The pool of ``size`` workers for ``limits`` on the running loop, started on first use;
    pools of loops that have closed are discarded, the rest at exit."""
    loop = asyncio.get_running_loop()
    for key, pool in list(_shared.items()):
        if pool._loop is None or pool._loop.is_closed():
            pool.discard_now()
            del _shared[key]
    key = (id(loop), limits, size)
    if key not in _shared:
        atexit.unregister(_discard_shared)  # registered once, whatever came before
        atexit.register(_discard_shared)
        _shared[key] = WorkerPool(limits, size=size)
        _shared[key].start()
    return _shared[key]


_retiring: set[asyncio.Task[None]] = set()  # closes under way (a task needs a reference)


def retire_shared(limits: SandboxLimits, size: int) -> None:
    """Stop the shared pools of ``size`` workers for ``limits`` (a reload changed them): their
    waiting workers are killed and their workspaces removed; workers already taken stay with
    their sandboxes, which close them as usual. Callable with or without a running loop."""
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    for key, pool in list(_shared.items()):
        if key[1:] != (limits, size):
            continue
        del _shared[key]
        loop = pool._loop
        if loop is None or loop.is_closed():
            pool.discard_now()
        elif loop is running:
            task = loop.create_task(pool.close(), name="rlm-worker-pool-retire")
            _retiring.add(task)
            task.add_done_callback(_retiring.discard)
        else:  # another thread's loop: its pipes are closed there
            asyncio.run_coroutine_threadsafe(pool.close(), loop)


async def close_shared() -> None:
    """Close the running loop's shared pools (an application's shutdown hook; a loop that
    ``asyncio.run`` ends closes them itself, and the rest go at exit)."""
    loop = asyncio.get_running_loop()
    for key, pool in list(_shared.items()):
        if pool._loop is loop:
            del _shared[key]
            await pool.close()


def _discard_shared() -> None:
    for pool in _shared.values():
        pool.discard_now()
    _shared.clear()
