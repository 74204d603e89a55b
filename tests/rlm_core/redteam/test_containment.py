"""Per-sandbox containment: unix sockets, process and memory accounting, leftover processes,
and the weaker mode a user must opt in to (forced here by settings)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlm_router.rlm_core.errors import SandboxError
from rlm_router.rlm_core.frames import SubCallRequest
from rlm_router.rlm_core.sandbox import Sandbox, SandboxLimits

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="full containment needs root here")


async def handler(request: SubCallRequest) -> list[str]:
    return ["ok"] * len(request.prompts)


@pytest.fixture
def unix_marker() -> Iterator[tuple[str, socket.socket]]:
    """A world-writable pathname socket in the shared temporary directory, as /dev/log or a
    container runtime's socket can be."""
    directory = tempfile.mkdtemp(prefix="rlm-marker-")
    os.chmod(directory, 0o777)
    path = os.path.join(directory, "marker.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    os.chmod(path, 0o777)
    server.listen()
    server.setblocking(False)
    yield path, server
    server.close()
    os.unlink(path)
    os.rmdir(directory)


def reached(server: socket.socket) -> bool:
    try:
        server.accept()[0].close()
        return True
    except BlockingIOError:
        return False


async def test_no_pathname_unix_socket_is_reachable(
    unix_marker: tuple[str, socket.socket],
) -> None:
    path, server = unix_marker
    code = (
        "import socket\n"
        "for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET):\n"
        "    try:\n"
        f"        s = socket.socket(socket.AF_UNIX, kind); s.connect({path!r}); print('IN')\n"
        "    except OSError as exc:\n"
        "        print(type(exc).__name__)\n"
        "a, b = socket.socketpair(); a.send(b'x'); print(b.recv(1))\n"  # in-process pairs work
    )
    async with Sandbox("", limits=SandboxLimits(), handler=handler) as box:
        assert box.info.missing == [] and box.info.seccomp == "no-unix-sockets"
        result = await box.execute(code)
    assert result.stdout == "PermissionError\nPermissionError\nPermissionError\nb'x'\n"
    assert not reached(server)


async def test_processes_started_by_model_code_die_with_the_execution() -> None:
    async with Sandbox("", limits=SandboxLimits(), handler=handler) as box:
        start = await box.execute(
            "import subprocess, os\n"
            "p = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
            "if os.fork() == 0:\n    os.setsid(); import time; time.sleep(300)\n"
            "print('started')"
        )
        assert start.stdout == "started\n"
        after = await box.execute(
            "import os\ntry:\n    os.waitpid(-1, os.WNOHANG)\n"
            "except ChildProcessError:\n    print('none left')"
        )
        assert after.stdout == "none left\n"
        cgroup = box.cgroup
        assert cgroup is not None
        procs = await asyncio.to_thread(Path(cgroup.procs[-1]).read_text)
        assert len(procs.split()) == 2  # the namespace's stub and the REPL, nothing else
        directories = list(cgroup.directories)
    for _ in range(200):  # the cgroup goes with the sandbox (removed once its processes left)
        left = [d for d in directories if await asyncio.to_thread(d.exists)]
        if not left:
            break
        await asyncio.sleep(0.01)
    assert not any(d.exists() for d in directories)


@pytest.mark.parametrize("from_host", [True, False])
async def test_the_worker_is_in_every_cgroup_whoever_attached_it(
    from_host: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host attaches a starting worker to its cgroups in a thread (overlapping the
    worker's start-up); without that (late, failed) the worker joins them itself."""
    from rlm_router.rlm_core import launch

    monkeypatch.setattr(launch, "ATTACH_FROM_HOST", from_host)
    async with Sandbox("", limits=SandboxLimits(), handler=handler) as box:
        assert box.info.cgroup and box.info.missing == []
        cgroup = box.cgroup
        assert cgroup is not None
        await box.execute("import os\nif os.fork() == 0:\n    import time; time.sleep(30)")
        for procs in cgroup.procs:  # every hierarchy: the stub and the REPL (the fork died)
            listed = await asyncio.to_thread(Path(procs).read_text)
            assert len(listed.split()) == 2, (procs, listed)


async def test_a_fork_bomb_is_confined_to_its_own_sandbox() -> None:
    limits = SandboxLimits(max_processes=16, wall_seconds=15.0, cpu_seconds=5)
    bomb = (
        "import os\nn = 0\n"
        "for _ in range(200):\n"
        "    try:\n"
        "        if os.fork() == 0:\n            import time; time.sleep(30)\n"
        "        n += 1\n"
        "    except OSError:\n        break\n"
        "print('forked', n)"
    )
    async with (
        Sandbox("", limits=limits, handler=handler) as bombed,
        Sandbox("", limits=limits, handler=handler) as neighbour,
    ):
        running = asyncio.create_task(bombed.execute(bomb))
        await asyncio.sleep(0.5)
        other = await neighbour.execute(
            "import subprocess\nprint(subprocess.run(['true']).returncode)"
        )
        result = await running
    forked = int(result.stdout.split()[-1]) if result.stdout else 0
    assert forked < 16  # the sandbox's own process limit, not the uid's
    assert other.stdout == "0\n"


async def test_the_process_limit_is_per_sandbox_not_per_uid() -> None:
    # Five sandboxes of the same uid each hold 14 processes: 70 in all, more than one
    # sandbox's limit times four. A per-uid limit (RLIMIT_NPROC) would refuse the last ones.
    limits = SandboxLimits(max_processes=16, wall_seconds=30.0, cpu_seconds=5)
    hold = (
        "import os, time\nn = 0\n"
        "for _ in range(14):\n"
        "    try:\n"
        "        if os.fork() == 0:\n            time.sleep(20); os._exit(0)\n"
        "        n += 1\n"
        "    except OSError:\n        break\n"
        "time.sleep(2)\nprint(n)"
    )
    async with contextlib.AsyncExitStack() as stack:
        boxes = [
            await stack.enter_async_context(Sandbox("", limits=limits, handler=handler))
            for _ in range(5)
        ]
        results = await asyncio.gather(*(box.execute(hold) for box in boxes))
    assert [r.stdout for r in results] == ["14\n"] * 5


async def test_memory_is_limited_across_the_sandbox_processes() -> None:
    limits = SandboxLimits(memory_mb=300, wall_seconds=20.0, cpu_seconds=10)
    grab = (
        "import os, time\nkids = []\n"
        "for _ in range(4):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        b = bytearray(200 << 20)\n"  # 200 MB each: fine per process, not together
        "        for i in range(0, len(b), 4096): b[i] = 1\n"
        "        time.sleep(3); os._exit(0)\n"
        "    kids.append(pid)\n"
        "codes = [os.waitstatus_to_exitcode(os.waitpid(k, 0)[1]) for k in kids]\n"
        "print(sorted(codes))"
    )
    async with Sandbox("", limits=limits, handler=handler) as box:
        result = await box.execute(grab)
    codes = [int(c) for c in result.stdout.strip("[]\n").split(",")]
    assert any(code != 0 for code in codes)  # the cgroup's OOM killer stopped some


async def test_a_missing_layer_refuses_model_code_unless_opted_in() -> None:
    weak = SandboxLimits(network_namespace=False, cgroups=False)
    with pytest.raises(SandboxError) as refused:
        async with Sandbox("", limits=weak, handler=handler):
            pass
    assert "a network namespace" in str(refused.value)
    assert "per-sandbox cgroup" in str(refused.value)
    assert "--allow-weak-sandbox" in str(refused.value)


async def test_the_opted_in_weaker_mode_still_blocks_udp_tcp_and_exec() -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    tcp.setblocking(False)
    code = (
        # The audit hook refuses ctypes.CDLL, but the worker's own libc handle is reachable.
        "import ctypes, sys\nlibc = sys.modules['rlm_router.rlm_core.worker.lockdown']._libc\n"
        "print('socket', libc.socket(2, 2, 0), ctypes.get_errno())\n"  # AF_INET/DGRAM via libc
        "print('execve', libc.execve(b'/bin/true', None, None), ctypes.get_errno())\n"
    )
    limits = SandboxLimits(network_namespace=False, cgroups=False, allow_weak_containment=True)
    try:
        async with Sandbox("", limits=limits, handler=handler) as box:
            assert "a network namespace" in box.info.missing
            assert box.info.seccomp == "strict"
            result = await box.execute(code)
        assert result.stdout == "socket -1 1\nexecve -1 1\n"
        with pytest.raises(BlockingIOError):
            udp.recvfrom(16)
        with pytest.raises(BlockingIOError):
            tcp.accept()
    finally:
        udp.close()
        tcp.close()


def test_a_sandbox_cgroup_is_made_where_this_process_is_now_after_a_move() -> None:
    # Moved (by systemd, by an operator), the host must put its next sandbox inside the
    # limits it was moved into: its own cgroups are read per sandbox, not kept.
    from rlm_router.rlm_core.containment import SandboxCgroup

    first = SandboxCgroup.create(memory_bytes=1 << 30, max_processes=64)
    if first is None or first.version != 1:
        pytest.skip("moving this process needs cgroup v1 (v2 forbids processes in a parent)")
    parents = [d.parent for d in first.directories]
    first.remove()
    moved = [parent / f"rlm-test-moved-{os.getpid()}" for parent in parents]
    group = None
    try:
        for directory in moved:
            directory.mkdir()
            (directory / "cgroup.procs").write_text(str(os.getpid()))
        group = SandboxCgroup.create(memory_bytes=1 << 30, max_processes=64)
        assert group is not None
        assert [d.parent for d in group.directories] == moved
    finally:
        if group is not None:
            group.remove()
        for parent in parents:
            (parent / "cgroup.procs").write_text(str(os.getpid()))
        for directory in moved:
            with contextlib.suppress(FileNotFoundError):
                directory.rmdir()
