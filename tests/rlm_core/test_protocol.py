"""Prompt building and reply parsing (pure functions)."""

from __future__ import annotations

from rlm_router.rlm_core import protocol
from rlm_router.rlm_core.protocol import ContextInfo, Final, parse_reply


def test_initial_messages_carry_the_protocol_and_the_query_tags() -> None:
    info = ContextInfo.describe(["ab", "cde"])
    system, user = protocol.initial_messages("How many?", info, sub_window_chars=1000)
    assert system["role"] == "system" and user["role"] == "user"
    assert "```repl" in system["content"] and "llm_query" in system["content"]
    assert "20,000" in system["content"]  # output truncation is announced
    assert "list of 2 items" in system["content"] and "[2, 3]" in system["content"]
    assert "\n<query>\nHow many?\n</query>\n" in "\n" + user["content"]


def test_context_info_describes_types_and_lists_chunk_lengths() -> None:
    assert ContextInfo.describe("hello").chunk_text() == "a single chunk"
    many = ContextInfo.describe(["x"] * 60)
    assert many.total_chars == 60 and "(10 more)" in many.chunk_text()
    assert ContextInfo.describe({"a": "bb"}).type_name == "dict with 1 keys"


def test_code_blocks_are_extracted_in_order() -> None:
    reply = "Plan.\n```repl\nx = 1\n```\ntext\n```repl\nprint(x)\n```\n```python\nignored\n```"
    parsed = parse_reply(reply)
    assert parsed.code_blocks == ["x = 1\n", "print(x)\n"]
    assert parsed.final is None and parsed.problem is None


def test_final_in_text_outside_code() -> None:
    assert parse_reply("Done.\nFINAL(42 apples)").final == Final(text="42 apples")
    assert parse_reply('FINAL("quoted (nested) answer")').final == Final(
        text="quoted (nested) answer"
    )
    assert parse_reply("FINAL_VAR(result)").final == Final(variable="result")
    assert parse_reply("FINAL_VAR('result')").final == Final(variable="result")
    # FINAL inside a code block is code, not a textual answer.
    inside = parse_reply("```repl\nFINAL(x)\n```")
    assert inside.final is None and inside.code_blocks == ["FINAL(x)\n"]


def test_malformed_replies_get_feedback() -> None:
    assert "No ```repl code block" in (parse_reply("I think the answer is 5.").problem or "")
    unbalanced = parse_reply("FINAL(the answer is (probably 5")
    assert unbalanced.final is None and "closing parenthesis" in (unbalanced.problem or "")
    bad_var = parse_reply("FINAL_VAR(1 + 2)")
    assert bad_var.final is None and "variable name" in (bad_var.problem or "")


def test_output_is_truncated_to_the_announced_limit() -> None:
    message = protocol.execution_message(["y" * 50_000], None)
    shown, _, rest = message.partition("\n... [output truncated: ")
    assert len(shown) == protocol.OUTPUT_LIMIT_CHARS
    assert rest.startswith("30,013 more characters]")  # 13 = the "REPL output:\n" header
    assert protocol.NEXT_TURN_NUDGE in message
    with_feedback = protocol.execution_message([], "fix this")
    assert with_feedback.startswith("fix this")
