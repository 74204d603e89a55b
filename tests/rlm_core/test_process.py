"""A worker process's descriptors are each closed exactly once, on uvloop (the proxy's loop)
and on asyncio's own loop.

A descriptor closed twice is, between the two closes, free for another thread to get (the
host's cgroup attach and workspace removal threads open files all the time), and the second
close then closes that thread's file or a client socket the proxy accepts next: a lost request
of the load suite showed EBADF on an accepted socket. The check runs a host process under
strace: a second close of a number shows as a close() that fails with EBADF.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs Linux pidfds")

HOST = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from pathlib import Path
    from rlm_router.rlm_core.process import WorkerProcess

    async def main() -> None:
        slowest = 0.0
        for i in range(int(sys.argv[2]) if len(sys.argv) > 2 else 20):
            proc = await WorkerProcess.start(
                ["/bin/cat"], env={}, cwd=Path("/"), pass_fds=()
            )
            proc.stdin.write(b"ping %d\\n" % i)
            await proc.stdin.drain()
            assert await proc.stdout.readline() == b"ping %d\\n" % i
            if i % 2:
                proc.close_pipes()  # EOF: cat exits by itself
            else:
                proc.kill()
                proc.close_pipes()
            started = time.monotonic()
            await proc.wait()
            slowest = max(slowest, time.monotonic() - started)
        print("slowest wait", slowest)
        # One that is killed before its pipes are connected.
        start = WorkerProcess.start(["/bin/cat"], env={}, cwd=Path("/"), pass_fds=())
        task = asyncio.ensure_future(start)
        await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await asyncio.sleep(0.3)  # its pidfd: closed once the killed process is seen to exit
        print("open descriptors", len(os.listdir("/proc/self/fd")))

    if sys.argv[1] == "uvloop":
        import uvloop
        uvloop.run(main())
    elif sys.argv[1] == "uvloop-derived":  # an application's own loop class
        import uvloop
        class AppLoop(uvloop.Loop):
            pass
        with asyncio.Runner(loop_factory=AppLoop) as runner:
            runner.run(main())
    else:
        asyncio.run(main())
    print("ok")
    """
)


def _run_traced(loop: str, tmp_path: Path) -> tuple[list[str], str]:
    trace = tmp_path / f"{loop}.strace"
    done = subprocess.run(
        ["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=close", "-e", "status=failed",
         sys.executable, "-c", HOST, loop],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return [line for line in trace.read_text().splitlines() if "EBADF" in line], done.stdout


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace (.ci/system-deps)")
@pytest.mark.parametrize("loop", ["uvloop", "uvloop-derived", "asyncio"])
def test_worker_pipes_and_pidfd_are_closed_once(loop: str, tmp_path: Path) -> None:
    double_closes, out = _run_traced(loop, tmp_path)
    assert out.splitlines()[-1] == "ok"
    assert not double_closes, double_closes[:5]


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_wait_returns_when_the_pipe_closes_not_at_its_timeout(loop: str) -> None:
    """A killed or finished worker's stdout closes at once; ``wait`` waits for that, or for
    2 s (a holder that escaped the kill). Under uvloop it waited the 2 s every time (the
    transport stayed open at EOF), and every RLM answer through the proxy came 2 s late."""
    done = subprocess.run(
        [sys.executable, "-c", HOST, loop], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    slowest = float(done.stdout.split("slowest wait")[1].split()[0])
    assert slowest < 1.0


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_no_descriptor_is_left_open(loop: str) -> None:
    """A host that started and stopped 30 workers holds as many descriptors as one that
    started one."""
    counts = [
        subprocess.run(
            [sys.executable, "-c", HOST, loop, str(n)], capture_output=True, text=True,
            timeout=120, check=True,
        ).stdout.split("open descriptors")[1].split()[0]
        for n in (1, 30)
    ]  # fmt: skip
    assert counts[0] == counts[1]
