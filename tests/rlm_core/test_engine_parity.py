"""The REPL helpers and turn structure of the official engine, end to end through the loop:
what a model trained on the official harness calls must work here (scripted replies)."""

from __future__ import annotations

from typing import Any

from rlm_router.rlm_core import Budget, ModelSpec, RetryPolicy, RLMEngine, StopReason
from tests.rlm_core.scripted_model import MODEL, ScriptedModel, is_root, last_user, turn
from tests.rlm_core.test_engine_scripted import FAST_LIMITS, code


def engine(model: ScriptedModel, **kwargs: Any) -> RLMEngine:
    kwargs.setdefault("limits", FAST_LIMITS)
    kwargs.setdefault("retry", RetryPolicy(initial_backoff_s=0.01, max_backoff_s=0.05))
    return RLMEngine(root=ModelSpec(model=MODEL), completion=model, **kwargs)


async def test_rlm_query_batched_runs_one_child_per_prompt() -> None:
    def root(messages: list[dict[str, str]]) -> str:
        query = messages[1]["content"]
        if "count part" in query:  # a child: answers from its own context (the prompt)
            return f"FINAL(child saw {query.split('count part ')[1].split()[0]})"
        if turn(messages) == 0:
            return code("r = rlm_query_batched([f'count part {i}' for i in range(3)])\nprint(r)")
        return "FINAL_VAR(r)"

    result = await engine(ScriptedModel(root), budget=Budget(max_depth=2)).acompletion("q", "ctx")
    assert result.ok
    assert result.answer == "['child saw 0', 'child saw 1', 'child saw 2']"
    assert sorted(n.depth for n in result.trajectory.nodes) == [0, 1, 1, 1]
    assert result.sub_calls == 3


async def test_rlm_query_takes_model_as_the_official_engine_does() -> None:
    seen: list[str] = []

    def sub(messages: list[dict[str, str]]) -> str:
        seen.append(messages[-1]["content"])
        return "leaf"

    steps = [
        code(f"a = rlm_query('plain at the depth limit', model='{MODEL}')\nprint(a)"),
        code("b = rlm_query('with data', context='DATA')\nprint(b)"),
        code("rlm_query('x', 'a long chunk of context passed where model= goes')"),
    ]

    def root(messages: list[dict[str, str]]) -> str:
        n = turn(messages)
        return steps[n] if n < len(steps) else "FINAL(done)"

    model = ScriptedModel(root, sub=sub)
    result = await engine(model, budget=Budget(max_depth=1)).acompletion("q", "ctx")
    assert result.ok and result.answer == "done"
    assert seen == ["plain at the depth limit", "with data\n\nContext:\nDATA"]
    roots = [call for call in model.calls if is_root(call)]
    third = last_user(roots[3])
    assert "model= takes a model name" in third and "context=" in third


async def test_final_var_of_an_undefined_name_is_an_error_and_the_run_goes_on() -> None:
    steps = [
        "FINAL_VAR(total)",  # prose, nothing assigned yet
        code("FINAL_VAR('total')"),  # in code: NameError in the REPL output
        code("total = 41 + 1"),
        "FINAL_VAR(total)",
    ]
    model = ScriptedModel(steps)
    result = await engine(model).acompletion("q", "ctx")
    assert result.ok and result.answer == "42" and result.iterations == 4
    assert "no variable named 'total'" in last_user(model.calls[1])
    assert "NameError" in last_user(model.calls[2])


async def test_final_of_a_variable_name_answers_with_its_value() -> None:
    model = ScriptedModel([code("result = 'seven apples'"), "FINAL(result)"])
    result = await engine(model).acompletion("q", "ctx")
    assert result.answer == "seven apples"
    word = await engine(ScriptedModel([code("x = 1"), "FINAL(yes)"])).acompletion("q", "ctx")
    assert word.answer == "yes"  # no variable named yes: the word is the answer


async def test_python_fences_run_with_a_note_and_turns_carry_budget_and_variables() -> None:
    steps = [
        "Let me look.\n```python\nsize = len(context)\nprint(size)\n```",
        "I will count the records next.",  # prose only: no code, no answer
        code("print(SHOW_VARS())"),
        "FINAL_VAR(size)",
    ]
    model = ScriptedModel(steps)
    result = await engine(model, budget=Budget(max_iterations=9)).acompletion("q", "abcd")
    assert result.ok and result.answer == "4"
    first_user = model.calls[0][1]["content"]
    assert "Turn 1/9" in first_user
    after_python = last_user(model.calls[1])
    assert after_python.startswith("REPL output:\n4")
    assert "```python block(s) were run" in after_python
    assert "REPL variables: ['context', 'answer', 'size']" in after_python
    assert "Turn 2/9:" in after_python
    after_prose = last_user(model.calls[2])
    assert "No ```repl code block" in after_prose and "Turn 3/9:" in after_prose
    assert "REPL variables: ['context', 'answer', 'size']" in after_prose  # still listed
    assert "Available variables: {" in last_user(model.calls[3])


async def test_several_blocks_in_one_reply_all_run_before_the_text_final() -> None:
    model = ScriptedModel([code("a = 2") + "\n" + code("b = a * 3") + "\nFINAL_VAR(b)"])
    result = await engine(model).acompletion("q", "ctx")
    assert result.ok and result.answer == "6"
    assert [len(i.executions) for i in result.trajectory.iterations] == [2]


async def test_out_of_turns_ends_with_the_asked_for_answer() -> None:
    model = ScriptedModel(lambda m: "FINAL(best guess)" if "no iterations left" in
                          last_user(m) else "Still thinking about it.")  # fmt: skip
    result = await engine(model, budget=Budget(max_iterations=2)).acompletion("q", "ctx")
    assert result.stopped_reason is StopReason.MAX_ITERATIONS
    assert result.answer == "best guess"
