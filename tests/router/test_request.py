"""ChatRequest.parse: validation, the question/context split, latency budgets, keys."""

from __future__ import annotations

from typing import Any

import pytest

from rlm_router.router import ChatRequest, InvalidRequest
from rlm_router.router.instruction import MAX_CHARS as QUESTION_MAX_CHARS
from rlm_router.router.instruction import prose_line


def _user(content: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": content}]}


def test_short_message_is_all_question() -> None:
    req = ChatRequest.parse(_user("What is 2 + 2?"))
    assert req.question == "What is 2 + 2?"
    assert req.context_spans == ()
    assert req.context_text == ""
    assert (req.model, req.stream, req.has_tools, req.n_turns) == ("auto", False, False, 1)


def test_long_message_splits_at_the_last_paragraph() -> None:
    context = "\n".join(f"line {i} || user {i}" for i in range(2000))
    req = ChatRequest.parse(_user(f"{context}\n\nHow many lines are there?\n"))
    assert req.question == "How many lines are there?"
    assert req.context_text == context
    assert req.context_chars == len(context)


def test_a_tiny_final_paragraph_takes_the_one_before() -> None:
    context = "x " * QUESTION_MAX_CHARS
    req = ChatRequest.parse(_user(f"{context}\n\nWhich user posted most?\n\nAnswer:"))
    assert req.question == "Which user posted most?\n\nAnswer:"


def test_a_long_unbroken_message_keeps_at_most_the_cap_as_question() -> None:
    text = "\n".join("word " * 20 for _ in range(1000))
    req = ChatRequest.parse(_user(text))
    assert 0 < len(req.question) <= QUESTION_MAX_CHARS
    assert req.context_chars + len(req.question) <= len(text)


def test_earlier_turns_and_system_are_context() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "My cat is Tom."},
            {"role": "assistant", "content": [{"type": "text", "text": "Nice."}]},
            {"role": "user", "content": "What is my cat's name?"},
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "stream": True,
    }
    req = ChatRequest.parse(body)
    assert req.question == "What is my cat's name?"
    assert req.context_text == "Be brief.\n\nMy cat is Tom.\n\nNice."
    assert (req.n_turns, req.has_tools, req.stream, req.model) == (2, True, True, None)


def test_latency_budget_from_header_or_metadata() -> None:
    assert ChatRequest.parse(_user("hi"), {"X-Latency-Budget-Ms": "250"}).latency_budget_ms == 250.0
    body = {**_user("hi"), "metadata": {"latency_budget_ms": 1200}}
    assert ChatRequest.parse(body).latency_budget_ms == 1200.0
    assert ChatRequest.parse(_user("hi")).latency_budget_ms is None


@pytest.mark.parametrize("value", ["-5", "soon", "nan", "inf"])
def test_bad_latency_budget_header_is_invalid(value: str) -> None:
    with pytest.raises(InvalidRequest, match="x-latency-budget-ms"):
        ChatRequest.parse(_user("hi"), {"x-latency-budget-ms": value})


@pytest.mark.parametrize("value", [-1, True, "x", [1]])
def test_bad_latency_budget_metadata_is_invalid(value: object) -> None:
    with pytest.raises(InvalidRequest, match=r"metadata\.latency_budget_ms"):
        ChatRequest.parse({**_user("hi"), "metadata": {"latency_budget_ms": value}})


def test_api_key_from_proxy_metadata() -> None:
    body = {**_user("hi"), "metadata": {"user_api_key_alias": "team-a", "user_api_key": "sk-1"}}
    assert ChatRequest.parse(body).api_key == "team-a"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "JSON object"),
        ({}, "'messages'"),
        ({"messages": []}, "'messages'"),
        ({"messages": ["hi"]}, r"messages\[0\] must be an object"),
        ({"messages": [{"content": "hi"}]}, r"messages\[0\]\.role"),
        ({"messages": [{"role": "user", "content": 3}]}, r"messages\[0\]\.content"),
        ({"messages": [{"role": "system", "content": "x"}]}, "no user message"),
        ({"model": 3, "messages": [{"role": "user", "content": "x"}]}, "'model'"),
        ({"stream": "yes", "messages": [{"role": "user", "content": "x"}]}, "'stream'"),
    ],
)
def test_malformed_requests_say_what_is_wrong(body: Any, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        ChatRequest.parse(body)


def test_parsing_a_large_message_copies_nothing() -> None:
    text = "r || 1\n" * 1_000_000 + "\nHow many records?"
    req = ChatRequest.parse(_user(text))
    assert req.context_spans[0].text is text


RECORDS = "\n".join(
    f"Date: 2024-01-{i % 28 + 1:02d} || User: {i} || Instance: item {i}" for i in range(3000)
)
ASK = "Combien d'entrées chaque utilisateur a-t-il ? Classe-les."


@pytest.mark.parametrize(
    ("messages", "source"),
    [
        ([{"role": "user", "content": f"{ASK}\n\n{RECORDS}"}], "head"),
        ([{"role": "user", "content": f"{ASK}\n{RECORDS}"}], "head"),  # no blank line
        ([{"role": "user", "content": f"{RECORDS}\n{ASK}"}], "tail"),
        ([{"role": "user", "content": f"<task>{ASK}</task>\n<data>\n{RECORDS}\n</data>"}], "tag"),
        ([{"role": "user", "content": f"{ASK}\n```\n{RECORDS}\n```"}], "head"),
        ([{"role": "system", "content": ASK}, {"role": "user", "content": RECORDS}], "system"),
        (
            [
                {"role": "user", "content": RECORDS},
                {"role": "assistant", "content": "OK."},
                {"role": "user", "content": ASK},
            ],
            "tail",
        ),
    ],
)
def test_the_instruction_is_found_wherever_it_sits(
    messages: list[dict[str, str]], source: str
) -> None:
    req = ChatRequest.parse({"messages": messages})
    assert (req.question, req.question_source) == (ASK, source)
    assert ASK not in req.context_text and "User: 2999" in req.context_text


@pytest.mark.parametrize("layout", ["system", "head"])
def test_an_ask_that_opens_with_a_quoted_name_is_still_the_ask(layout: str) -> None:
    # pydoc's topics: every line opens with a quote, as the ask does ("'class' ...").
    data = "\n".join(f"'Topic {i}: text of the reference, part {i}.\\n'" for i in range(2000))
    ask = "'class' 这一节里提到了元类，请找到它所引用的那一节，再告诉我那一节里是怎么说的。"
    if layout == "system":
        messages = [{"role": "system", "content": ask}, {"role": "user", "content": data}]
    else:
        messages = [{"role": "user", "content": f"{ask}\n{data}"}]
    req = ChatRequest.parse({"messages": messages})
    assert (req.question, req.question_source) == (ask, layout)
    # A quoted key or a quoted line is still data.
    assert not prose_line('"description": "a long text about the package and its uses",')
    assert not prose_line("'Topic 7: text of the reference, part 7.\\n'")


def test_man_page_source_without_blank_lines_keeps_only_the_ask() -> None:
    roff = "\n".join(f".TP\n\\fB\\-{c}\\fR\nOption {c} does something." for c in "abcdefgh" * 50)
    ask = "Which option prints the version?"
    req = ChatRequest.parse(_user(f"{roff}\n{ask}"))
    assert req.question.endswith(ask) and len(req.question) < 200
