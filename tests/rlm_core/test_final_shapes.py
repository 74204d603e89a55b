"""Final-answer and code-block parsing on the shapes real root models write.

Each case is a reply shape seen in published trajectories or in the paper's error analysis
(trained RLM-Qwen3-8B turns misusing FINAL/FINAL_VAR, gpt-4o and Claude replies with prose
and several blocks, qwen replies fenced ```python, Markdown-decorated answers).
"""

from __future__ import annotations

import pytest

from rlm_router.rlm_core import protocol
from rlm_router.rlm_core.protocol import Final, parse_reply

SHAPES: list[tuple[str, str, Final | None]] = [
    ("bare line", "FINAL(42)", Final(text="42")),
    ("after prose", "I counted them.\n\nFINAL(17 records)", Final(text="17 records")),
    ("double-quoted", 'FINAL("Paris")', Final(text="Paris")),
    ("single-quoted", "FINAL('Paris')", Final(text="Paris")),
    ("bold", "**FINAL(light blue)**", Final(text="light blue")),
    ("inline code", "`FINAL(light blue)`", Final(text="light blue")),
    ("quote mark", "> FINAL(light blue)", Final(text="light blue")),
    ("list item", "- FINAL_VAR(result)", Final(variable="result")),
    ("labelled", "Final answer: FINAL(7)", Final(text="7")),
    ("heading", "## FINAL(7)", Final(text="7")),
    ("nested parens", "FINAL(f(x) = (a + b))", Final(text="f(x) = (a + b)")),
    ("paren in quotes", 'FINAL("a ) b")', Final(text="a ) b")),
    ("multi-line", "FINAL(line one\nline two)", Final(text="line one\nline two")),
    ("list-valued", "FINAL(['a', 'b'])", Final(text="['a', 'b']")),
    ("pairs", "FINAL((1, 2), (3, 4))", Final(text="(1, 2), (3, 4)")),
    ("var", "FINAL_VAR(result)", Final(variable="result")),
    ("var quoted", "FINAL_VAR('result')", Final(variable="result")),
    ("var spaced", "FINAL_VAR( result )", Final(variable="result")),
    # FINAL(name): maybe a variable, maybe the answer word; the engine decides with the REPL.
    ("FINAL of a name", "FINAL(result)", Final(text="result", variable="result")),
    # FINAL_VAR("answer text"): the answer where the name belongs.
    ("FINAL_VAR of text", 'FINAL_VAR("two apples")', Final(text="two apples")),
    ("mentioned mid-sentence", "Next I will call FINAL(answer) once I know.", None),
    ("in a code block only", "```repl\nFINAL(x)\n```", None),
    ("plan only", "I will split the context into 10 chunks and query each.", None),
]


@pytest.mark.parametrize(("reply", "expected"), [(r, e) for _, r, e in SHAPES],
                         ids=[n for n, _, _ in SHAPES])  # fmt: skip
def test_final_answer_shapes(reply: str, expected: Final | None) -> None:
    assert parse_reply(reply).final == expected


def test_first_final_wins_and_var_before_text() -> None:
    assert parse_reply("FINAL_VAR(x)\nFINAL(y)").final == Final(variable="x")
    assert parse_reply("FINAL(y)\nFINAL_VAR(x)").final == Final(text="y", variable="y")


def test_several_blocks_run_in_order_and_python_fences_only_without_repl() -> None:
    mixed = parse_reply("```repl\na = 1\n```\nthen\n```repl\nprint(a)\n```\n```python\nb\n```")
    assert mixed.code_blocks == ["a = 1\n", "print(a)\n"] and not mixed.python_fences
    python = parse_reply("Let me look.\n```python\nprint(len(context))\n```")
    assert python.code_blocks == ["print(len(context))\n"] and python.python_fences
    assert python.problem is None
    assert parse_reply("```py\nx = 1\n```").python_fences
    # Other fences (output samples, JSON) are never code.
    assert parse_reply("```json\n{}\n```\n```text\nhi\n```").code_blocks == []


def test_prose_only_turn_gets_told_to_act_now() -> None:
    parsed = parse_reply("I will now look at the context and then count the records.")
    assert parsed.code_blocks == [] and parsed.final is None
    assert parsed.problem is not None and "now" in parsed.problem


def test_malformed_final_forms_get_feedback() -> None:
    assert "closing parenthesis" in (parse_reply("FINAL(open (ended").problem or "")
    assert "variable name" in (parse_reply("FINAL_VAR(1 + 2)").problem or "")


def test_every_turn_carries_its_number_and_the_variables() -> None:
    message = protocol.execution_message(
        ["3"], None, turn=4, max_turns=30, variables=["context", "answer", "counts"]
    )
    assert "REPL variables: ['context', 'answer', 'counts']" in message
    assert message.rstrip().splitlines()[-1].startswith("Turn 4/30:")
    prose_turn = protocol.execution_message([], "No code.", turn=2, max_turns=30, variables=[])
    assert "Turn 2/30:" in prose_turn and "REPL variables: []" in prose_turn
    many = protocol.variables_line([f"v{i}" for i in range(100)])
    assert many.endswith("(+40 more)")


def test_prompt_guidance_matches_the_sub_models_window() -> None:
    info = protocol.ContextInfo.describe("x" * 1000)
    big = protocol.initial_messages("q", info, sub_window_chars=800_000, max_turns=12)
    small = protocol.initial_messages("q", info, sub_window_chars=24_000)
    assert "about 100,000 characters" in big[0]["content"]
    assert "about 12,000 characters" in small[0]["content"]
    for needle in ("rlm_query_batched", "SHOW_VARS()", "model=None", "about 10 documents",
                   "Execute your plan now", "discarded", "```python"):  # fmt: skip
        assert needle in big[0]["content"], needle
    assert "Turn 1/12" in big[1]["content"]
