"""The sandboxed REPL worker, driven directly: containment, limits, state, framing."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rlm_router.rlm_core.sandbox import Sandbox, SandboxLimits, SubCallRejected, SubCallRequest

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the sandbox is POSIX-only")


async def echo_handler(request: SubCallRequest) -> list[str]:
    if request.kind == "rlm" and request.prompts == ["reject"]:
        raise SubCallRejected("no more sub-calls")
    return [f"{request.kind}:{prompt}" for prompt in request.prompts]


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    limits = SandboxLimits(wall_seconds=3.0, cpu_seconds=1, memory_mb=512, max_processes=16)
    async with Sandbox("abc " * 1000, limits=limits, handler=echo_handler) as box:
        yield box


async def test_state_persists_and_a_trailing_expression_is_discarded(sandbox: Sandbox) -> None:
    first = await sandbox.execute("n = len(context)\nprint('chars', n)")
    assert first.error is None and first.stdout == "chars 4000\n"
    # As in the official engine (0.1.1 and 0.1.3): only print() output is shown.
    second = await sandbox.execute("m = n * 2\nm")
    assert second.stdout == "" and second.error is None
    assert (await sandbox.execute("print(m)")).stdout == "8000\n"
    assert second.variables is not None and {"n", "m", "context"} <= set(second.variables)
    assert "llm_query" not in second.variables and "answer" in second.variables


async def test_exceptions_come_back_as_a_traceback_of_the_model_code(sandbox: Sandbox) -> None:
    result = await sandbox.execute("x = 1\n1 / 0")
    assert result.error is not None
    assert "ZeroDivisionError" in result.error and "<repl>" in result.error
    assert "rlm_core/worker" not in result.error  # the worker's own frames are not shown
    syntax = await sandbox.execute("def broken(:\n  pass")
    assert syntax.error is not None and "SyntaxError" in syntax.error
    assert (await sandbox.execute("print(x)")).stdout == "1\n"


async def test_model_code_tracebacks_show_their_lines_from_the_first_execution(
    sandbox: Sandbox,
) -> None:
    # The worker imports linecache only when something needs it; model code that formats
    # its own traceback, or warns, in the worker's first execution still gets its lines.
    result = await sandbox.execute(
        "import traceback, warnings\nwarnings.warn('careful')\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n    traceback.print_exc()"
    )
    assert result.error is None
    assert "warnings.warn('careful')" in result.stdout and "    1 / 0\n" in result.stdout


async def test_the_worker_starts_without_heavy_imports(sandbox: Sandbox) -> None:
    # Each of these cost every worker start milliseconds of CPU (see worker/__main__.py).
    result = await sandbox.execute("import sys\nprint(sorted(sys.modules))")
    loaded = set(result.stdout.strip()[1:-1].replace("'", "").split(", "))
    assert "rlm_router.rlm_core.worker.repl" in loaded
    heavy = {"re", "enum", "json", "typing", "contextlib", "traceback", "linecache", "signal"}
    assert not heavy & loaded, heavy & loaded
    assert "runpy" not in loaded and "threading" not in loaded


async def test_the_compiled_worker_code_cannot_be_changed(sandbox: Sandbox) -> None:
    # Every worker of this process runs the code in this descriptor (compiled once).
    import fcntl

    from rlm_router.rlm_core.launch import compiled_worker_fd

    fd = compiled_worker_fd()
    assert fd is not None and compiled_worker_fd() == fd
    seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    assert seals & fcntl.F_SEAL_WRITE and seals & fcntl.F_SEAL_SEAL
    with pytest.raises(PermissionError):
        os.pwrite(fd, b"print('replaced')", 0)
    with pytest.raises(PermissionError):
        os.ftruncate(fd, 0)
    # The worker ran it: its modules come from no file of their own.
    result = await sandbox.execute(
        "import sys\nprint(sys.modules['rlm_router.rlm_core.worker.repl'].__spec__)"
    )
    assert result.stdout == "None\n"


def test_the_workers_json_is_the_json_modules() -> None:
    from rlm_router.rlm_core.worker import cjson

    class Opaque:
        def __str__(self) -> str:
            return "opaque"

    message = {
        "op": "done", "stdout": "caf\u00e9 \u2028 \ud800 \x00 \"q\" \\",
        "n": [1, -0.0, 1e300, 2**70],
        "special": [float("nan"), float("inf")], "flags": [True, False, None], "obj": Opaque(),
        "nested": {"a": [{}, []]},
    }  # fmt: skip
    text = cjson.dumps(message, default=str)
    assert text == json.dumps(message, default=str)
    assert repr(cjson.loads(text)) == repr(json.loads(text))
    assert cjson.loads(' \n{"a": [1, 2.5, "x"]}\t') == {"a": [1, 2.5, "x"]}
    for broken in ("", "[1, 2", '{"a": 1} x', "{'a': 1}"):
        with pytest.raises(ValueError):
            cjson.loads(broken)


async def test_sub_calls_travel_over_the_pipe(sandbox: Sandbox) -> None:
    result = await sandbox.execute(
        "print(llm_query('a'))\nprint(llm_query_batched(['b', 'c']))\nprint(rlm_query('d'))\n"
        "print(rlm_query('e', model='m'))\nprint(rlm_query_batched(['f', 'g']))"
    )
    assert result.stdout == (
        "query:a\n['batched:b', 'batched:c']\nrlm:d\nrlm:e\n['rlm_batched:f', 'rlm_batched:g']\n"
    )
    rejected = await sandbox.execute("rlm_query('reject')")
    assert rejected.error is not None and "no more sub-calls" in rejected.error


async def test_final_forms(sandbox: Sandbox) -> None:
    assert (await sandbox.execute("FINAL('done')")).final == "done"
    assert (await sandbox.execute("v = 42\nFINAL_VAR('v')")).final == "42"
    missing = await sandbox.execute("FINAL_VAR('nope')")
    assert missing.final is None and missing.error is not None and "nope" in missing.error
    assert "'v'" in missing.error  # the error lists the variables that do exist
    # The answer text passed where the name belongs (FINAL/FINAL_VAR confusion) ends the run.
    assert (await sandbox.execute("FINAL_VAR('two apples')")).final == "two apples"
    listing = await sandbox.execute("print(SHOW_VARS())")
    assert listing.stdout.startswith("Available variables: {") and "'v': 'int'" in listing.stdout
    ready = await sandbox.execute("answer['content'] = 'via dict'; answer['ready'] = True")
    assert ready.final == "via dict" and ready.answer_ready
    assert (await sandbox.get_variable("v")).final == "42"
    absent = await sandbox.get_variable("absent")
    assert absent.final is None and absent.error is None


async def test_network_to_a_loopback_listener_receives_nothing(sandbox: Sandbox) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        result = await sandbox.execute(
            "import socket\n"
            f"s = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
            "s.sendall(b'leak')"
        )
        assert result.error is not None
        await asyncio.sleep(0.2)
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
    assert sandbox.info.network in {"namespace", "audit-hook"}


async def test_host_environment_and_api_keys_are_not_visible(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-host-key")
    async with Sandbox("", limits=SandboxLimits(), handler=echo_handler) as box:
        result = await box.execute(
            "import os\nprint(sorted(os.environ))\n"
            "try:\n    print(open(f'/proc/{os.getppid()}/environ').read())\n"
            "except OSError as e:\n    print('denied', type(e).__name__)"
        )
    assert "sk-secret-host-key" not in result.stdout
    assert "OPENAI_API_KEY" not in result.stdout


async def test_writes_outside_scratch_are_refused(sandbox: Sandbox) -> None:
    target = Path(tempfile.gettempdir()) / f"rlm-escape-{os.getpid()}"
    result = await sandbox.execute(f"open({str(target)!r}, 'w').write('x')")
    assert result.error is not None and "PermissionError" in result.error
    assert not target.exists()
    home = await sandbox.execute(
        "open('notes.txt', 'w').write('ok'); print(open('notes.txt').read())"
    )
    assert home.stdout == "ok\n"


async def test_fork_bomb_is_contained(sandbox: Sandbox) -> None:
    started = time.monotonic()
    result = await sandbox.execute(
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    )
    assert result.limit in {"wall", "cpu"}
    assert time.monotonic() - started < 15
    assert (await sandbox.execute("print('still here')")).stdout == "still here\n"


async def test_allocating_50_gb_fails_inside_the_worker(sandbox: Sandbox) -> None:
    result = await sandbox.execute("kept = 1\nblob = bytearray(50 * 2**30)")
    assert result.limit == "memory" and result.error is not None and "MemoryError" in result.error
    assert (await sandbox.execute("print(kept)")).stdout == "1\n"  # state survives


async def test_infinite_loop_is_stopped_and_state_loss_reported(sandbox: Sandbox) -> None:
    await sandbox.execute("before = 1")
    result = await sandbox.execute("while True:\n    pass")
    assert result.limit in {"cpu", "wall"} and result.error is not None
    if result.limit == "wall":
        assert result.state_lost and "variables were lost" in result.error
    after = await sandbox.execute("print(len(context))")
    assert after.stdout == "4000\n"


async def test_wall_limit_restarts_a_sleeping_worker(sandbox: Sandbox) -> None:
    result = await sandbox.execute("import time\ntime.sleep(60)")
    assert result.limit == "wall" and result.state_lost
    assert (await sandbox.execute("print('fresh')")).stdout == "fresh\n"


async def test_a_worker_that_dies_between_executions_says_its_variables_are_lost(
    sandbox: Sandbox,
) -> None:
    """Model code can end its own worker after the reply; the next execution runs in a fresh
    REPL and its result says so, instead of a bare NameError."""
    armed = await sandbox.execute(
        "x = 41\nimport os, threading\nthreading.Timer(0.3, os._exit, (3,)).start()"
    )
    assert armed.error is None and not armed.state_lost
    await asyncio.sleep(1.0)
    after = await sandbox.execute("print(x + 1)")
    assert after.state_lost
    assert after.error is not None
    assert "variables were lost" in after.error and "NameError" in after.error
    fresh = await sandbox.execute("x = 1\nprint(x + len(context))")
    assert fresh.stdout == "4001\n" and not fresh.state_lost


async def test_printing_a_gigabyte_is_capped(sandbox: Sandbox) -> None:
    result = await sandbox.execute("chunk = 'x' * 2**20\nfor _ in range(1024):\n    print(chunk)")
    assert result.truncated and result.stdout_chars > 2**30
    assert len(result.stdout) <= SandboxLimits().output_bytes


async def test_killing_the_parent_fails(sandbox: Sandbox) -> None:
    result = await sandbox.execute(
        f"import os, signal\nfor pid in ({os.getpid()}, os.getppid()):\n"
        "    try:\n        os.kill(pid, signal.SIGKILL)\n"
        "    except OSError as exc:\n        print(type(exc).__name__)"
    )
    assert result.error is None
    # We are still alive, and the REPL answers (possibly restarted).
    assert (await sandbox.execute("print('ok')")).stdout == "ok\n"


async def test_cancellation_leaves_no_worker_behind() -> None:
    box = Sandbox("x", limits=SandboxLimits(), handler=echo_handler)
    await box.start()
    task = asyncio.create_task(box.execute("import time\ntime.sleep(30)"))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await box.close()  # the autouse fixture checks that no worker is left


async def test_structured_context_is_decoded_once() -> None:
    context = [{"id": i, "text": f"row {i}"} for i in range(100)]
    async with Sandbox(context, limits=SandboxLimits(), handler=echo_handler) as box:
        result = await box.execute(
            "print(type(context).__name__, len(context), context[5]['text'])"
        )
    assert result.stdout == "list 100 row 5\n"


async def test_without_a_network_namespace_sockets_are_still_blocked() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    limits = SandboxLimits(network_namespace=False, allow_weak_containment=True)  # opted in
    try:
        async with Sandbox("", limits=limits, handler=echo_handler) as box:
            assert box.info.network == "audit-hook"
            result = await box.execute(
                f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)"
            )
            assert result.error is not None and "PermissionError" in result.error
            spawn = await box.execute("import subprocess\nsubprocess.run(['true'])")
            assert spawn.error is not None and "PermissionError" in spawn.error
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()


async def test_any_standard_library_module_imports_but_host_files_stay_closed(
    sandbox: Sandbox,
) -> None:
    result = await sandbox.execute(
        "import xml.dom.minidom, email.parser, statistics, sqlite3, codecs\n"
        "print(statistics.median([3, 1, 2]), codecs.encode('b\u00fccher', 'idna'))\n"
        "for path in ('/root', '/etc/shadow', '/proc/1/environ', '/work'):\n"
        "    try:\n        open(path).read()\n        print('READ', path)\n"
        "    except OSError as exc:\n        print(type(exc).__name__)"
    )
    assert result.error is None, result.error
    assert "READ" not in result.stdout and result.stdout.startswith("2 b'xn--bcher-kva'")
