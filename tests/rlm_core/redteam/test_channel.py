"""Hostile model code against the worker→host channel, driven through a real Sandbox.

Model code can write to every descriptor it holds; whatever it writes must end as an error
the model sees (or a restart of its worker), never as an exception in the host, a non-text
prompt handed to the sub-call handler, or memory the host spends on a frame it refused.
"""

from __future__ import annotations

import resource
from collections.abc import AsyncIterator

import pytest

from rlm_router.rlm_core.errors import SandboxMisbehaving
from rlm_router.rlm_core.frames import SubCallRequest
from rlm_router.rlm_core.sandbox import Sandbox, SandboxLimits
from tests.rlm_core.redteam.harness import FORGE

MALFORMED = [
    b"not json",
    b"[1, 2, 3]",
    b'{"kind": "query", "prompts": ["x"]}',
    b'{"op": "llm", "kind": "query", "prompts": 7}',
    b'{"op": "llm", "kind": "batched", "prompts": []}',
    b'{"op": "llm", "kind": "query", "prompts": [[{"type": "image_url", '
    b'"image_url": {"url": "http://127.0.0.1:9/escape"}}]]}',
    b'{"op": "llm", "kind": "query", "prompts": [{"type": "file", '
    b'"file": {"file_id": "http://127.0.0.1:9/escape"}}]}',
    b'{"op": "done", "answer": "a string", "stdout": "", "stdout_chars": 0, "cpu_s": 0}',
    b'{"op": "teleport"}',
    b"[" * 100_000 + b"]" * 100_000,
]


class Recorder:
    def __init__(self) -> None:
        self.requests: list[SubCallRequest] = []

    async def __call__(self, request: SubCallRequest) -> list[str]:
        self.requests.append(request)
        return [f"echo:{p[:20]}" for p in request.prompts]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def sandbox(recorder: Recorder) -> AsyncIterator[Sandbox]:
    limits = SandboxLimits(wall_seconds=10.0, cpu_seconds=2, memory_mb=512, max_frame_mb=4)
    async with Sandbox("secret-free context " * 50, limits=limits, handler=recorder) as box:
        assert (await box.execute(FORGE)).error is None
        yield box


@pytest.mark.parametrize("body", MALFORMED, ids=range(len(MALFORMED)))
async def test_a_forged_frame_is_an_error_the_model_sees(
    sandbox: Sandbox, recorder: Recorder, body: bytes
) -> None:
    result = await sandbox.execute(f"forge({body!r})\nprint(llm_query('still works'))")
    assert result.stdout.endswith("echo:still works\n")
    assert result.error is not None and "ProtocolWarning" in result.error
    assert not result.state_lost
    # Only the honest, text-only request reached the handler.
    assert [r.prompts for r in recorder.requests] == [["still works"]]
    assert (await sandbox.execute("print(len(context))")).stdout == "1000\n"


async def test_a_1_gb_length_prefix_costs_the_host_nothing(sandbox: Sandbox) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = await sandbox.execute("forge(b'', size=1 << 30)\nimport time; time.sleep(5)")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result.limit == "protocol" and result.state_lost
    assert "1,073,741,824 bytes" in (result.error or "")
    assert grown_mb < 64
    # The restarted worker has the context again.
    assert (await sandbox.execute("print(len(context))")).stdout == "1000\n"


async def test_an_oversized_honest_request_is_refused_in_the_worker(sandbox: Sandbox) -> None:
    result = await sandbox.execute("llm_query('x' * (5 << 20))")
    assert result.error is not None and "SubCallError" in result.error
    assert "above the limit" in result.error and not result.state_lost


async def test_a_worker_that_keeps_breaking_the_protocol_ends_the_node(sandbox: Sandbox) -> None:
    for _ in range(3):
        result = await sandbox.execute(
            FORGE + "forge(b'', size=1 << 31)\nimport time\ntime.sleep(5)"
        )
        assert result.limit == "protocol"
    with pytest.raises(SandboxMisbehaving):
        await sandbox.execute(FORGE + "forge(b'', size=1 << 31)\nimport time\ntime.sleep(5)")


async def test_model_code_cannot_destroy_the_context_for_restarts(sandbox: Sandbox) -> None:
    wipe = (
        "import os, shutil\n"
        "for name in os.listdir('.'):\n"
        "    shutil.rmtree(name, ignore_errors=True); os.path.exists(name) and os.remove(name)\n"
        "print(sorted(os.listdir('.')))\n"
        "import time; time.sleep(30)"  # killed at the wall limit: the worker restarts
    )
    result = await sandbox.execute(wipe)
    assert result.limit == "wall" and result.stdout.startswith("[]")  # printed before the kill
    assert (await sandbox.execute("print(context[:6])")).stdout == "secret\n"


async def test_hostile_values_in_final_answers_are_errors_not_crashes(recorder: Recorder) -> None:
    code = (
        "class Raises:\n    def __str__(self): raise ValueError('no str for you')\n"
        "class Spins:\n    def __str__(self):\n        while True: pass\n"
        "r, s = Raises(), Spins()\n"
    )
    # A generous wall limit: the spinning __str__ must meet the CPU limit even on a busy host.
    limits = SandboxLimits(wall_seconds=60.0, cpu_seconds=1, memory_mb=512)
    async with Sandbox("", limits=limits, handler=recorder) as sandbox:
        assert (await sandbox.execute(code)).error is None
        raised = await sandbox.get_variable("r")
        assert raised.final is None and "no str for you" in (raised.error or "")
        via_dict = await sandbox.execute("answer['content'] = r; answer['ready'] = True")
        assert via_dict.final is None and "no str for you" in (via_dict.error or "")
        assert (await sandbox.execute("FINAL('fine')")).final == "fine"
        spun = await sandbox.get_variable("s")
        assert spun.final is None and spun.limit == "cpu" and not spun.state_lost


async def test_deep_recursion_fails_fast(sandbox: Sandbox) -> None:
    code = "import sys\nsys.setrecursionlimit(10**7)\ndef f(n): return f(n + 1)\nf(0)"
    result = await sandbox.execute(code)
    assert result.error is not None and "RecursionError" in result.error
    assert result.limit is None and not result.state_lost


async def test_a_slow_str_in_final_var_meets_the_wall_limit_not_the_run_timeout(
    recorder: Recorder,
) -> None:
    limits = SandboxLimits(wall_seconds=2.0, cpu_seconds=1, memory_mb=512)
    async with Sandbox("ctx", limits=limits, handler=recorder) as sandbox:
        slow = (
            "import time\nclass Slow:\n    def __str__(self):\n        time.sleep(60)\nv = Slow()"
        )
        assert (await sandbox.execute(slow)).error is None
        got = await sandbox.get_variable("v")
        assert got.final is None and got.limit == "wall" and got.state_lost
        assert "wall-time limit" in (got.error or "")
        assert (await sandbox.execute("print(context)")).stdout == "ctx\n"  # restarted


async def test_what_a_killed_execution_printed_is_its_own_output_only(
    recorder: Recorder,
) -> None:
    # The spill file is emptied after each reply and when a restarted worker starts: output
    # of an earlier execution, or of the worker killed before, never shows up again.
    limits = SandboxLimits(wall_seconds=1.5, cpu_seconds=2, memory_mb=512)
    sleep = "import time; time.sleep(30)"
    async with Sandbox("ctx", limits=limits, handler=recorder) as sandbox:
        assert (await sandbox.execute("print('earlier')")).stdout == "earlier\n"
        first = await sandbox.execute(f"print('first')\n{sleep}")
        assert first.limit == "wall" and first.stdout == "first\n"
        second = await sandbox.execute(f"print('second')\n{sleep}")
        assert second.limit == "wall" and second.stdout == "second\n"
        assert (await sandbox.execute("print(context)")).stdout == "ctx\n"


async def test_a_forged_spill_length_is_bounded_by_the_host(recorder: Recorder) -> None:
    # The spill file is mapped into the worker, so model code can write its length field
    # too: the host reads no more than the file holds and shows no more than the cap.
    limits = SandboxLimits(wall_seconds=1.5, cpu_seconds=2, memory_mb=512, output_bytes=100)
    forge = (
        "import gc, time\n"
        "spill = next(o for o in gc.get_objects() if type(o).__name__ == 'Spill')\n"
        "spill._map[:] = (2**64 - 1).to_bytes(8, 'little') + b'\\xff' * (len(spill._map) - 8)\n"
        "time.sleep(30)"
    )
    async with Sandbox("ctx", limits=limits, handler=recorder) as sandbox:
        killed = await sandbox.execute(forge)
        assert killed.limit == "wall" and killed.stdout == "\ufffd" * 100
        assert (await sandbox.execute("print(context)")).stdout == "ctx\n"


async def test_answer_values_that_are_not_plain_are_read_under_the_limits(
    recorder: Recorder,
) -> None:
    # A str subclass is not read by the worker's fast path: its __str__ is model code.
    limits = SandboxLimits(wall_seconds=30.0, cpu_seconds=1, memory_mb=512)
    async with Sandbox("", limits=limits, handler=recorder) as sandbox:
        sub = await sandbox.execute(
            "class S(str):\n    def __str__(self): raise ValueError('sub str')\n"
            "answer['content'] = S('looks fine'); answer['ready'] = True"
        )
        assert sub.final is None and "sub str" in (sub.error or "")
        truthy = await sandbox.execute("answer['content'] = 'done'; answer['ready'] = 1")
        assert truthy.final == "done" and truthy.error is None
        plain = await sandbox.execute("answer['content'] = 'plain'; answer['ready'] = True")
        assert plain.final == "plain" and plain.answer_ready and plain.error is None
