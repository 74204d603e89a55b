"""The engine loop with scripted model replies: containment end to end, malformed output,
budgets, recursion, retries and failures, the observer seam."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import litellm
import pytest

from rlm_router.rlm_core import (
    Budget,
    EngineObserver,
    ModelSpec,
    ProviderFailure,
    RetryPolicy,
    RLMEngine,
    SandboxLimits,
    StopReason,
)
from tests.rlm_core.scripted_model import MODEL, ScriptedModel, last_user, turn

FAST_LIMITS = SandboxLimits(wall_seconds=3.0, cpu_seconds=1, memory_mb=512, max_processes=16)


def engine(model: ScriptedModel, **kwargs: Any) -> RLMEngine:
    kwargs.setdefault("limits", FAST_LIMITS)
    kwargs.setdefault("retry", RetryPolicy(initial_backoff_s=0.01, max_backoff_s=0.05))
    return RLMEngine(root=ModelSpec(model=MODEL), completion=model, **kwargs)


def code(text: str) -> str:
    return f"Let me run this.\n```repl\n{text}\n```"


def attack_then_report(attack: str, *, expect: str) -> ScriptedModel:
    """Turn 1 runs the attack; turn 2 answers whether the REPL output shows it was stopped."""

    def root(messages: list[dict[str, str]]) -> str:
        if turn(messages) == 0:
            return code(attack)
        seen = last_user(messages)
        return "FINAL(contained)" if expect in seen else f"FINAL(unexpected: {seen[:300]})"

    return ScriptedModel(root)


@pytest.fixture
def listener() -> Any:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    yield sock
    sock.close()


async def test_network_attack_reaches_nothing_and_the_run_still_answers(listener: Any) -> None:
    port = listener.getsockname()[1]
    model = attack_then_report(
        f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'x')",
        expect="Error",
    )
    result = await engine(model).acompletion("q", "ctx")
    assert result.ok and result.answer == "contained"
    await asyncio.sleep(0.1)
    with pytest.raises(BlockingIOError):
        listener.accept()


async def test_host_api_key_never_reaches_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-host-secret")
    model = attack_then_report("import os\nprint(dict(os.environ))", expect="PATH")
    result = await engine(model).acompletion("q", "ctx")
    assert result.ok
    sent = json.dumps(model.calls)
    assert "sk-ant-host-secret" not in sent and "ANTHROPIC_API_KEY" not in sent


@pytest.mark.parametrize(
    ("attack", "expect"),
    [
        ("open('/etc/rlm-owned', 'w').write('x')", "PermissionError"),
        (
            "import os\nwhile True:\n    try:\n        os.fork()\n"
            "    except OSError:\n        pass",
            "limit",
        ),
        ("blob = bytearray(50 * 2**30)", "MemoryError"),
        ("while True:\n    pass", "limit"),
        ("chunk = 'y' * 2**20\nfor _ in range(1024):\n    print(chunk)", "output truncated"),
        (
            "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(1, signal.SIGKILL)",
            "",
        ),
    ],
    ids=["write-outside", "fork-bomb", "alloc-50gb", "infinite-loop", "print-1gb", "kill-parent"],
)
async def test_attacks_are_contained_reported_and_answered(attack: str, expect: str) -> None:
    started = time.monotonic()
    result = await engine(attack_then_report(attack, expect=expect)).acompletion("q", "ctx")
    assert result.ok and result.answer == "contained", result.answer
    assert time.monotonic() - started < 30
    assert not await asyncio.to_thread(Path("/etc/rlm-owned").exists)


async def test_malformed_replies_are_fed_back_and_the_loop_continues() -> None:
    replies = [
        "I believe the answer is 7.",  # no code block
        "FINAL(seven",  # unbalanced
        "FINAL_VAR(missing_variable)",  # no such variable
        code("def f(:\n    pass"),  # syntax error
        code("raise ValueError('boom')"),  # exception
        code("result = len(context)"),
        "FINAL_VAR(result)",
    ]
    model = ScriptedModel(replies)
    result = await engine(model).acompletion("how long?", "abcdef")
    assert result.ok and result.answer == "6"
    feedback = [last_user(call) for call in model.calls[1:]]
    assert "No ```repl code block" in feedback[0]
    assert "closing parenthesis" in feedback[1]
    assert "missing_variable" in feedback[2]
    assert "SyntaxError" in feedback[3]
    assert "ValueError: boom" in feedback[4]
    assert result.iterations == 7


async def test_answer_dict_and_final_from_code() -> None:
    model = ScriptedModel([code("answer['content'] = context.upper()\nanswer['ready'] = True")])
    result = await engine(model).acompletion("q", "abc")
    assert result.ok and result.answer == "ABC" and result.stopped_reason is StopReason.FINAL


async def test_max_iterations_asks_once_for_a_final_answer() -> None:
    def root(messages: list[dict[str, str]]) -> str:
        if "no iterations left" in last_user(messages):
            return "FINAL(best guess)"
        # A new block each turn (the same block re-sent would stop the run as stuck).
        return code(f"print('still thinking', {turn(messages)})")

    model = ScriptedModel(root)
    result = await engine(model, budget=Budget(max_iterations=3)).acompletion("q", "ctx")
    assert result.stopped_reason is StopReason.MAX_ITERATIONS and not result.ok
    assert result.answer == "best guess"
    assert len(model.calls) == 4  # three turns and the final request


async def test_iteration_budget_is_shared_across_the_tree() -> None:
    def root(messages: list[dict[str, str]]) -> str:
        if "no iterations left" in last_user(messages):
            return "FINAL(out of turns)"
        if "child" in messages[1]["content"]:
            return code("print('child working')")
        return code("print(rlm_query('child'))")

    budget = Budget(max_iterations=10, max_total_iterations=4)
    result = await engine(ScriptedModel(root), budget=budget).acompletion("q", "ctx")
    assert result.iterations == 4
    assert result.stopped_reason is StopReason.MAX_ITERATIONS
    assert result.answer == "out of turns"


async def test_sub_call_budget_is_shared_and_refusal_reported() -> None:
    # A batch larger than what is left is refused and the run goes on (nothing was spent on
    # it); only a budget with nothing left ends the run as max_sub_calls.
    steps = [
        code("r = llm_query_batched(['a'] * 3)\nprint(len(r))"),
        code("llm_query_batched(['b'] * 5)"),
        code("print(llm_query('c'))"),
        code("print(llm_query('d'))"),
    ]

    def root(messages: list[dict[str, str]]) -> str:
        if "sub-call budget is used up" in last_user(messages):
            return "FINAL(partial)"
        return steps[min(turn(messages), len(steps) - 1)]

    model = ScriptedModel(root)
    budget = Budget(max_sub_calls=4, max_iterations=6)
    result = await engine(model, budget=budget).acompletion("q", "ctx")
    assert result.stopped_reason is StopReason.MAX_SUB_CALLS
    assert result.sub_calls == 4 and result.answer == "partial"
    shown = [m["content"] for m in model.calls[-1] if m["role"] == "user"]
    assert any("sub-call budget: 5 requested, 1 left of 4. Send fewer" in t for t in shown)
    assert any("sub-call budget: 1 requested, 0 left of 4. Finish" in t for t in shown)


async def test_token_and_cost_budgets_stop_the_run() -> None:
    model = ScriptedModel(lambda m: code("print(1)"))
    by_tokens = await engine(model, budget=Budget(max_tokens=50)).acompletion("q", "ctx")
    assert by_tokens.stopped_reason is StopReason.MAX_TOKENS
    by_cost = await engine(model, budget=Budget(max_cost_usd=1e-9)).acompletion("q", "ctx")
    # Pre-flight: the first root turn alone costs more than the budget, so it is not sent.
    assert by_cost.stopped_reason is StopReason.MAX_COST and by_cost.cost_usd == 0


async def test_deadline_returns_the_partial_answer_without_hanging() -> None:
    model = ScriptedModel(
        [code("answer['content'] = 'half done'"), code("import time\ntime.sleep(2)")] * 5
    )
    limits = SandboxLimits(wall_seconds=10)
    started = time.monotonic()
    result = await engine(model, limits=limits).acompletion(
        "q", "ctx", deadline=time.monotonic() + 1.0
    )
    assert time.monotonic() - started < 3
    assert result.stopped_reason is StopReason.DEADLINE
    assert result.answer == "half done"
    timed = await engine(model, limits=limits, budget=Budget(max_wall_s=0.5)).acompletion("q", "c")
    assert timed.stopped_reason is StopReason.TIMEOUT


async def test_cancelling_a_run_kills_its_workers() -> None:
    model = ScriptedModel(lambda m: code("import time\ntime.sleep(30)"))
    task = asyncio.create_task(engine(model, limits=SandboxLimits()).acompletion("q", "ctx"))
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task  # the autouse fixture then checks that no worker survived


async def test_depth_two_recursion_and_plain_call_at_the_limit() -> None:
    def root(messages: list[dict[str, str]]) -> str:
        query = messages[1]["content"]
        if "child task" in query:  # depth 1
            if turn(messages) == 0:
                return code("inner = rlm_query('grandchild task')\nFINAL('child:' + inner)")
            return "FINAL(unreachable)"
        if turn(messages) == 0:
            return code("print(rlm_query('child task', context=context[:3]))")
        return f"FINAL({last_user(messages).splitlines()[1]})"

    model = ScriptedModel(root, sub=lambda m: "leaf")
    result = await engine(model, budget=Budget(max_depth=2)).acompletion("q", "abcdef")
    assert result.ok and result.answer == "child:leaf"
    depths = sorted(n.depth for n in result.trajectory.nodes)
    assert depths == [0, 1]
    assert result.sub_calls == 2  # the child RLM and its plain call at the depth limit


async def test_batched_sub_calls_run_in_parallel() -> None:
    model = ScriptedModel(
        [code("r = llm_query_batched([str(i) for i in range(64)])\nFINAL(len(r))")],
        latency_s=0.1,
    )
    started = time.perf_counter()
    result = await engine(model, concurrency=64).acompletion("q", "ctx")
    elapsed = time.perf_counter() - started
    assert result.answer == "64" and model.max_in_flight == 64
    assert elapsed < 2.0  # 64 sequential calls would take 6.4 s


async def test_retry_then_permanent_failure_carries_the_trajectory() -> None:
    def rate_limited() -> BaseException:
        return litellm.RateLimitError("slow down", llm_provider="openai", model=MODEL)

    flaky = iter([rate_limited(), rate_limited()])

    def root(messages: list[dict[str, str]]) -> str | BaseException:
        if turn(messages) == 0:
            return next(flaky, code("answer['content'] = 'so far'"))
        return litellm.AuthenticationError("bad key", llm_provider="openai", model=MODEL)

    model = ScriptedModel(root)
    with pytest.raises(ProviderFailure) as caught:
        await engine(model).acompletion("q", "ctx")
    failure = caught.value
    assert failure.error_type == "AuthenticationError"
    assert failure.partial_answer == "so far"
    assert failure.trajectory is not None
    attempts = [c.attempts for c in failure.trajectory.calls if c.error_type is None]
    assert attempts == [3]  # two 429s retried, then success
    assert failure.trajectory.calls[-1].error_type == "AuthenticationError"


async def test_observer_sees_runs_iterations_executions_and_calls() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.events: list[str] = []

        def on_run_start(self, node: Any) -> None:
            self.events.append(f"start:{node.depth}")

        def on_run_end(self, node: Any, result: Any, error: BaseException | None) -> None:
            self.events.append(f"end:{node.depth}:{node.stopped_reason}")

        def on_iteration_start(self, node: Any, index: int) -> None:
            self.events.append(f"iter:{index}")

        def on_iteration_end(self, node: Any, iteration: Any) -> None:
            self.events.append(f"iter-end:{iteration.index}")

        def on_repl_execution(self, node: Any, execution: Any) -> None:
            self.events.append(f"repl:{execution.sub_calls}")

        def on_model_call(self, call: Any) -> None:
            self.events.append(f"call:{call.role}")

    recorder = Recorder()
    assert isinstance(recorder, EngineObserver)
    model = ScriptedModel([code("x = llm_query('hi')"), "FINAL(done)"])
    result = await engine(model, observer=recorder).acompletion("q", "ctx")
    assert result.ok
    assert recorder.events == [
        "start:0", "iter:0", "call:root", "call:sub", "repl:1", "iter-end:0",
        "iter:1", "call:root", "iter-end:1", "end:0:final",
    ]  # fmt: skip
    lines = [json.loads(line) for line in result.trajectory.to_jsonl().splitlines()]
    assert {line["type"] for line in lines} == {"node", "iteration", "model_call"}


def test_sync_wrapper() -> None:
    result = engine(ScriptedModel(["FINAL(sync)"])).completion("q", "ctx")
    assert result.ok and result.answer == "sync"
