"""Pre-started workers (rlm_core.pool): locked down ahead of the request, used once, then gone."""

from __future__ import annotations

import asyncio
import os
import pwd
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rlm_router.rlm_core import SandboxError, WorkerPool
from rlm_router.rlm_core.launch import autogroup_nice
from rlm_router.rlm_core.pool import REFILL_DELAY_S, REFILL_NICE, can_raise_priority
from rlm_router.rlm_core.sandbox import Sandbox, SandboxLimits, SubCallRequest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="full containment needs root here")


async def handler(request: SubCallRequest) -> list[str]:
    return [f"sub:{p}" for p in request.prompts]


@pytest.fixture
def own_tmp(tmp_path: Path) -> Iterator[Path]:
    """Workspaces go to a private temporary directory, so leftovers can be counted."""
    saved, tempfile.tempdir = tempfile.tempdir, str(tmp_path)
    try:
        yield tmp_path
    finally:
        tempfile.tempdir = saved


async def _left_in(tmp: Path) -> list[str]:
    """What stays in ``tmp`` once closed sandboxes' background clean-up had its ~1 s."""
    for _ in range(100):
        left = sorted(os.listdir(tmp))
        if not left:
            break
        await asyncio.sleep(0.01)
    return left


def _workers_in(tmp: Path) -> list[int]:
    """Live worker processes whose workspace is under ``tmp`` (their argv names it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
            zombie = "State:\tZ" in (entry / "status").read_text()
        except (OSError, ValueError):
            continue
        if str(tmp).encode() in cmdline and not zombie:
            pids.append(int(entry.name))
    return pids


async def test_a_pooled_worker_gets_its_context_and_limits(own_tmp: Path) -> None:
    limits = SandboxLimits(memory_mb=256)
    async with WorkerPool(limits, size=1) as pool:
        await pool.wait_ready()
        assert pool.ready == 1
        context = "needle " * 1000
        async with Sandbox(context, limits=limits, handler=handler, pool=pool) as box:
            assert box.info.missing == []
            result = await box.execute(
                "import resource\nprint(len(context), resource.getrlimit(resource.RLIMIT_AS)[0])\n"
                "print(llm_query('x'))"
            )
            assert result.stdout == f"{len(context)} {limits.memory_bytes(len(context))}\nsub:x\n"
            # The memory limit holds for the pooled worker as for a fresh one.
            big = await box.execute("x = bytearray(512 << 20)\nprint('allocated')")
            assert "allocated" not in big.stdout
            assert "MemoryError" in (big.error or "") or big.limit in {"memory", "crash"}
    assert await _left_in(own_tmp) == []


async def test_a_worker_is_never_reused_across_sandboxes(own_tmp: Path) -> None:
    limits = SandboxLimits()
    async with WorkerPool(limits, size=1) as pool:
        await pool.wait_ready()
        async with Sandbox("first", limits=limits, handler=handler, pool=pool) as box:
            first = await box.execute(
                "import os\nsecret = 'kept'\nopen('left-behind', 'w').write('x')\n"
                "print(os.getpid(), os.getcwd())"
            )
            assert len(_workers_in(own_tmp)) >= 1
        await pool.wait_ready()  # refilled in the background
        async with Sandbox("second", limits=limits, handler=handler, pool=pool) as box:
            second = await box.execute(
                "import os\nprint(os.getpid(), os.getcwd())\nprint(os.listdir('.'))\n"
                "print('secret' in globals(), context)"
            )
        first_cwd = first.stdout.split()[1]
        lines = second.stdout.splitlines()
        assert lines[0].split()[1] != first_cwd  # another scratch directory
        assert lines[1] == "[]" and lines[2] == "False second"
    assert await _left_in(own_tmp) == []
    assert _workers_in(own_tmp) == []


async def test_close_kills_waiting_workers_and_removes_their_workspaces(own_tmp: Path) -> None:
    pool = WorkerPool(SandboxLimits(), size=2)
    pool.start()
    await pool.wait_ready()
    assert pool.ready == 2 and len(os.listdir(own_tmp)) == 4  # scratch + private each
    assert len(_workers_in(own_tmp)) >= 2
    await pool.close()
    assert _workers_in(own_tmp) == []
    assert await _left_in(own_tmp) == []
    assert pool.take(SandboxLimits()) is None


async def test_other_limits_or_a_dead_worker_fall_back_to_a_fresh_start(own_tmp: Path) -> None:
    async with WorkerPool(SandboxLimits(), size=1) as pool:
        await pool.wait_ready()
        other = SandboxLimits(memory_mb=512)
        assert pool.take(other) is None
        async with Sandbox("ctx", limits=other, handler=handler, pool=pool) as box:
            assert (await box.execute("print(context)")).stdout == "ctx\n"
        assert pool.ready == 1  # untouched
        assert _workers_in(own_tmp)
        for pid in _workers_in(own_tmp):  # killed from outside while it waited
            os.kill(pid, 9)
        await asyncio.sleep(0.2)
        async with Sandbox("ctx", limits=SandboxLimits(), handler=handler, pool=pool) as box:
            assert (await box.execute("print(context)")).stdout == "ctx\n"
    assert await _left_in(own_tmp) == []


async def test_a_pool_on_a_weak_host_stops_and_the_sandbox_still_refuses(own_tmp: Path) -> None:
    weak = SandboxLimits(cgroups=False)  # forces a missing layer without opting in
    async with WorkerPool(weak, size=1) as pool:
        await pool.wait_ready()
        assert pool.ready == 0 and pool.failure is not None and "cgroup" in pool.failure
        with pytest.raises(SandboxError, match="refusing to run model code"):
            async with Sandbox("", limits=weak, handler=handler, pool=pool):
                pass
    opted_in = SandboxLimits(cgroups=False, allow_weak_containment=True)
    async with WorkerPool(opted_in, size=1) as pool:
        await pool.wait_ready()
        async with Sandbox("x", limits=opted_in, handler=handler, pool=pool) as box:
            assert box.info.missing == ["a per-sandbox cgroup (memory and processes)"]
            assert (await box.execute("print(context)")).stdout == "x\n"
    assert await _left_in(own_tmp) == []


_SERVING_HOST = """
import asyncio, os, signal, sys
from rlm_router.policies import DEFAULT_POLICY_PATH, load_policy
from rlm_router.router.dispatch_settings import DispatchSettings

async def main(how):
    settings = DispatchSettings.from_policy(load_policy(DEFAULT_POLICY_PATH))
    pool = settings.pool()  # what the proxy and the Router start: the shipped default
    if how != "mid-start":
        await pool.wait_ready()
        print(pool.size, pool.ready, flush=True)
    if how == "killed":
        os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.parametrize("how", ["loop-ends", "mid-start", "killed"])
def test_the_default_pool_leaves_no_process_behind(tmp_path: Path, how: str) -> None:
    """A serving process's pool (the shipped policy's size) at its end: its loop ends with
    workers waiting, or while one is starting (that hung on Python 3.11's asyncio
    subprocesses), or the process is killed -9: no worker process outlives it."""

    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _SERVING_HOST, how],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if how == "killed":
        assert done.returncode == -9
    else:
        assert done.returncode == 0, done.stderr
    if how != "mid-start":
        assert done.stdout.split() == ["2", "2"]  # two pre-started workers by default
    deadline = time.monotonic() + 5  # killed -9: the workers see EOF on their pipe and exit
    while _workers_in(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _workers_in(tmp_path) == []
    if how != "killed":  # a killed host cannot remove its directories; a clean end does
        assert sorted(os.listdir(tmp_path)) == []


async def test_a_waiting_worker_killed_from_outside_is_replaced(own_tmp: Path) -> None:
    async with WorkerPool(SandboxLimits(), size=1) as pool:
        await pool.wait_ready()
        before = set(_workers_in(own_tmp))
        scratch_before = set(os.listdir(own_tmp))
        for pid in before:
            os.kill(pid, 9)  # the OOM killer, an operator, a load test's chaos
        for _ in range(600):
            await asyncio.sleep(0.05)
            now = set(_workers_in(own_tmp))
            if pool.ready == 1 and now and not now & before:
                break
        assert pool.ready == 1 and not set(_workers_in(own_tmp)) & before
        # The dead worker's workspace went with it; only the replacement's is left.
        left = set(await _left_in_besides(own_tmp, 2))
        assert len(left) == 2 and not left & scratch_before
    assert await _left_in(own_tmp) == []


async def _left_in_besides(tmp: Path, expected: int) -> list[str]:
    for _ in range(100):
        left = os.listdir(tmp)
        if len(left) <= expected:
            break
        await asyncio.sleep(0.01)
    return left


def _autogroups_enabled() -> bool:
    flag = Path("/proc/sys/kernel/sched_autogroup_enabled")
    return flag.exists() and flag.read_text().strip() == "1"


def _nice_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])  # field 19: nice


async def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    for _ in range(int(timeout_s / 0.02)):
        if condition():
            break
        await asyncio.sleep(0.02)
    return condition()


async def test_a_replacement_waits_until_the_run_that_took_a_worker_closes(
    own_tmp: Path,
) -> None:
    async with WorkerPool(SandboxLimits(), size=1) as pool:
        await pool.wait_ready()
        taken_at = time.monotonic()
        async with Sandbox("ctx", limits=SandboxLimits(), handler=handler, pool=pool) as box:
            taken = set(_workers_in(own_tmp))
            await asyncio.sleep(0.3)
            # Checked only well inside REFILL_DELAY_S (a loaded host may stretch the sleep).
            if time.monotonic() - taken_at < 0.8 * REFILL_DELAY_S:
                assert pool.ready == 0 and set(_workers_in(own_tmp)) == taken
                assert len(os.listdir(own_tmp)) == 2  # only the taken worker's workspace
            assert (await box.execute("print(context)")).stdout == "ctx\n"
        # The run closed: the replacement's process starts now, not after the delay (its
        # start-up may then take a while at nice 19 on a loaded host).
        assert await _until(lambda: bool(set(_workers_in(own_tmp)) - taken), 0.5 * REFILL_DELAY_S)
        await pool.wait_ready()
        assert pool.ready == 1
    assert await _left_in(own_tmp) == []
    assert _workers_in(own_tmp) == []


async def test_a_replacement_starts_after_the_delay_while_runs_stay_open(own_tmp: Path) -> None:
    async with WorkerPool(SandboxLimits(), size=1) as pool:
        await pool.wait_ready()
        async with Sandbox("ctx", limits=SandboxLimits(), handler=handler, pool=pool) as box:
            taken = set(_workers_in(own_tmp))
            # Bounded generously: a nice-19 start on a loaded host takes seconds.
            assert await _until(lambda: pool.ready == 1, REFILL_DELAY_S + 30)
            assert (await box.execute("print(context)")).stdout == "ctx\n"
            assert set(_workers_in(own_tmp)) - taken  # a second worker, while the run is open
    assert await _left_in(own_tmp) == []
    assert _workers_in(own_tmp) == []


async def test_waiting_workers_are_niced_and_model_code_runs_at_the_hosts_priority(
    own_tmp: Path,
) -> None:
    host_nice = os.getpriority(os.PRIO_PROCESS, 0)
    async with WorkerPool(SandboxLimits(), size=1, low_priority_refill=True) as pool:
        await pool.wait_ready()
        waiting = _workers_in(own_tmp)
        assert waiting and {_nice_of(pid) for pid in waiting} == {REFILL_NICE}
        grouped = _autogroups_enabled()
        if grouped:  # the session's group weighs against the host's, not the task's nice
            assert {autogroup_nice(pid) for pid in waiting} == {REFILL_NICE}
        async with Sandbox("ctx", limits=SandboxLimits(), handler=handler, pool=pool) as box:
            # The REPL is the worker's forked child (PID namespace): the whole group.
            result = await box.execute("import os\nprint(os.getpriority(os.PRIO_PROCESS, 0))")
            assert result.stdout == f"{host_nice}\n", result.error
            assert {_nice_of(pid) for pid in _workers_in(own_tmp) if pid in waiting} == {host_nice}
    assert await _left_in(own_tmp) == []


def test_an_unprivileged_host_does_not_nice_its_workers() -> None:
    # Without CAP_SYS_NICE a nice cannot be undone, so the pool must not lower one. The
    # check runs in a forked child that became nobody (the venv's interpreter is not
    # executable for nobody here).
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.setgid(pwd.getpwnam("nobody").pw_gid)
            os.setuid(pwd.getpwnam("nobody").pw_uid)
            pool = WorkerPool(SandboxLimits())
            os.write(write_end, f"{can_raise_priority()} {pool.low_priority_refill}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 100).decode()
    os.close(read_end)
    os.waitpid(child, 0)
    assert answer == "False False"
    assert can_raise_priority() and WorkerPool(SandboxLimits()).low_priority_refill  # root
