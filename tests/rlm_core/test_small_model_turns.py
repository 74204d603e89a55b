"""What the engine tells a small root model, shaped by how a real 1.5B root behaved
(Qwen2.5-Coder-1.5B-Instruct, greedy, tests/realmodel): it copies the prompt's first example
word for word, and re-sends the same block every turn after it printed the answer."""

from __future__ import annotations

import re

import pytest

from rlm_router.rlm_core import (
    Budget,
    ModelSpec,
    RetryPolicy,
    RLMEngine,
    SandboxLimits,
    StopReason,
    protocol,
)
from tests.rlm_core.scripted_model import MODEL, ScriptedModel, last_user, turn

LIMITS = SandboxLimits(wall_seconds=5.0, cpu_seconds=2, memory_mb=512, max_processes=16)
_REPL = re.compile(r"```repl\n(.*?)```", re.DOTALL)


def _engine(model: ScriptedModel, **kwargs: object) -> RLMEngine:
    return RLMEngine(
        root=ModelSpec(model=MODEL),
        completion=model,
        limits=LIMITS,
        retry=RetryPolicy(initial_backoff_s=0.01, max_backoff_s=0.05),
        **kwargs,  # type: ignore[arg-type]
    )


def _code(text: str) -> str:
    return f"```repl\n{text}\n```"


def test_the_examples_are_written_with_the_querys_own_words_and_compile() -> None:
    query = "Which port does the billing service listen on?"
    for context, lines in (("a\nb", "context.splitlines()"), (["a", "b"], "for item in context")):
        system = protocol.initial_messages(
            query, protocol.ContextInfo.describe(context), sub_window_chars=40_000
        )[0]["content"]
        assert "keywords = ['billing', 'service', 'listen', 'port']" in system
        assert lines in system
        assert f"question = {query!r}" in system
        for block in _REPL.findall(system):
            compile(block, "<example>", "exec")  # a model that copies an example can run it
    assert protocol.query_keywords("How many of THE users are in Paris, or in paris?") == [
        "users",
        "paris",
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Accented words whole; longest first, so French stopwords go last.
        (
            "Combien de révisions ont été publiées par Jörg ?",
            ["révisions", "publiées", "combien", "jörg", "ont", "été"],
        ),
        # An identifier next to Chinese text; a long ideograph run as two-character pieces.
        (
            "价格表中 claude-3-haiku-20240307 的上下文窗口是多少？",
            ["claude-3-haiku-20240307", "价格表中", "的上", "上下", "下文", "文窗"],
        ),
        # Japanese: katakana words whole, kanji words, no particles.
        (
            "これらの変更履歴で、最も多くアップロードしたメンテナは誰ですか？",
            ["アップロード", "変更履歴", "メンテナ"],
        ),
    ],
)
def test_keywords_in_other_languages_are_whole_words(query: str, expected: list[str]) -> None:
    assert protocol.query_keywords(query) == expected


async def test_a_root_that_copies_the_first_example_finds_a_planted_line() -> None:
    haystack = "\n".join(f"filler line {i} about nothing" for i in range(400))
    context = haystack + "\nThe billing service listens on port 8443.\n" + haystack

    def root(messages: list[dict[str, str]]) -> str:
        if turn(messages) == 0:
            return _code(_REPL.findall(messages[0]["content"])[0])
        found = re.search(r"port (\d+)", last_user(messages))
        return f"FINAL({found.group(1) if found else 'not found'})"

    result = await _engine(ScriptedModel(root)).acompletion(
        "Which port does the billing service listen on?", context
    )
    assert result.answer == "8443"


async def test_a_block_sent_again_unchanged_is_told_to_answer_or_move_on() -> None:
    model = ScriptedModel([_code("x = 1\nprint(x)"), _code("x = 1\nprint(x)"), _code("print(2)")])
    await _engine(model, budget=Budget(max_iterations=3)).acompletion("q", "ctx")
    after = [last_user(call) for call in model.calls[1:]]
    assert "Turn 2/3:" in after[0] and "ran exactly this code" not in after[0]
    assert "Turn 3/3: You ran exactly this code on turn 1 already" in after[1]
    assert "FINAL(your answer)" in after[1]
    # After the last turn comes the request for an answer, not a "Turn 4/3" line.
    assert "Turn 4/3" not in model.calls[-1][-2]["content"]
    assert "no iterations left" in model.calls[-1][-1]["content"]


async def test_a_root_stuck_on_one_block_is_asked_for_its_answer() -> None:
    def root(messages: list[dict[str, str]]) -> str:
        if "it prints nothing new" in last_user(messages):
            return "The code is 7."
        return _code("print('the code is 7')")

    model = ScriptedModel(root)
    result = await _engine(model, budget=Budget(max_iterations=10)).acompletion("q", "ctx")
    assert result.stopped_reason is StopReason.STUCK
    assert result.answer == "The code is 7."
    assert result.iterations == 3  # the first run, one re-run told to move on, one more


def test_an_answer_without_final_loses_only_its_lead() -> None:
    assert protocol.plain_answer("Final answer: The code is 12345.") == "The code is 12345."
    assert protocol.plain_answer("**Answer:** 42\n") == "42"
    assert protocol.plain_answer("The answer is 42.") == "The answer is 42."
    assert protocol.plain_answer("  \n") is None
