"""An OpenAI-shaped chat request, parsed once into the parts the router reasons about.

The split between the *question* and the bulk *context* is defined here, once:

- The question is taken from the last ``user`` message, read as "context, blank line,
  question" (the shape of long-context prompts and of ``sim.tasks``): the question is
  its final paragraph, i.e. the text after the last blank line (``"\\n\\n"``); a message
  without a blank line is all question. A final paragraph shorter than ``MIN_QUESTION_CHARS``
  (a trailing "Answer:" cue) takes the paragraph before it too. A final paragraph longer than
  ``QUESTION_MAX_CHARS`` is cut to its last ``QUESTION_MAX_CHARS`` characters, starting at a
  line break when there is one.
- Everything else is context: system messages, earlier turns (all roles) and the part of the
  last user message before the question.

Context is kept as views (``TextSpan``) into the request's own strings, so parsing a
40 MB message copies nothing; ``context_text`` joins them only when asked.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

from rlm_core.errors import RequestError

QUESTION_MAX_CHARS = 4000
MIN_QUESTION_CHARS = 16
LATENCY_HEADER = "x-latency-budget-ms"
# metadata keys that identify the caller's key, most specific first (LiteLLM proxy names).
API_KEY_METADATA = ("user_api_key_alias", "user_api_key_hash", "user_api_key")


class InvalidRequest(RequestError):
    """The request body cannot be routed; the message says what is wrong."""


class TextSpan(NamedTuple):
    """``text[start:end]`` without the copy."""

    text: str
    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start

    def materialize(self) -> str:
        if self.start == 0 and self.end == len(self.text):
            return self.text
        return self.text[self.start : self.end]


@dataclass(frozen=True, eq=False)
class ChatRequest:
    """A validated chat-completion request (see the module docstring for the question split)."""

    model: str | None
    messages: Sequence[Mapping[str, Any]]
    question: str
    context_spans: tuple[TextSpan, ...]
    stream: bool
    has_tools: bool
    n_turns: int
    latency_budget_ms: float | None
    api_key: str | None
    body: Mapping[str, Any] = field(repr=False)

    @cached_property
    def context_text(self) -> str:
        """The bulk context as one string (joined on first access; may be large)."""
        return "\n\n".join(span.materialize() for span in self.context_spans)

    @property
    def context_chars(self) -> int:
        return sum(len(span) for span in self.context_spans)

    @classmethod
    def parse(
        cls, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> ChatRequest:
        """Validate ``body`` (an OpenAI chat-completion request) and split question from context.

        Raises ``InvalidRequest`` naming the offending field.
        """
        if not isinstance(body, Mapping):
            raise InvalidRequest(f"request body must be a JSON object, got {type(body).__name__}")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("'messages' must be a non-empty list of message objects")
        model = body.get("model")
        if model is not None and not isinstance(model, str):
            raise InvalidRequest(f"'model' must be a string, got {type(model).__name__}")
        stream = body.get("stream", False)
        if stream is not None and not isinstance(stream, bool):
            raise InvalidRequest(f"'stream' must be a boolean, got {type(stream).__name__}")
        metadata = body.get("metadata")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidRequest(f"'metadata' must be an object, got {type(metadata).__name__}")

        texts: list[list[TextSpan]] = []
        last_user = -1
        n_turns = 0
        for index, message in enumerate(messages):
            if not isinstance(message, Mapping):
                raise InvalidRequest(f"messages[{index}] must be an object")
            role = message.get("role")
            if not isinstance(role, str):
                raise InvalidRequest(f"messages[{index}].role must be a string")
            texts.append(list(_content_spans(message.get("content"), index)))
            if role == "user":
                last_user = index
                n_turns += 1
        if last_user < 0:
            raise InvalidRequest("'messages' has no user message")

        question, head = _split_question(texts[last_user])
        context: list[TextSpan] = []
        for index, spans in enumerate(texts):
            context.extend(head if index == last_user else spans)

        tools = body.get("tools") or body.get("functions")
        return cls(
            model=model,
            messages=messages,
            question=question,
            context_spans=tuple(span for span in context if len(span)),
            stream=bool(stream),
            has_tools=bool(tools),
            n_turns=n_turns,
            latency_budget_ms=_latency_budget(headers, metadata),
            api_key=_api_key(metadata),
            body=body,
        )


def _content_spans(content: object, index: int) -> Iterator[TextSpan]:
    if content is None:
        return
    if isinstance(content, str):
        yield TextSpan(content, 0, len(content))
        return
    if not isinstance(content, list):
        raise InvalidRequest(f"messages[{index}].content must be a string or a list of parts")
    for part_index, part in enumerate(content):
        if not isinstance(part, Mapping):
            raise InvalidRequest(f"messages[{index}].content[{part_index}] must be an object")
        if part.get("type") == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidRequest(
                    f"messages[{index}].content[{part_index}].text must be a string"
                )
            yield TextSpan(text, 0, len(text))


def _split_question(spans: list[TextSpan]) -> tuple[str, list[TextSpan]]:
    """(question, context spans before it) for the last user message's text parts."""
    if not spans:
        return "", []
    text, start, end = spans[-1]
    # Skip trailing whitespace so a final "\n\n" does not make an empty question.
    stop = end
    while stop > start and text[stop - 1].isspace():
        stop -= 1
    cut = text.rfind("\n\n", start, stop)
    if cut >= 0 and stop - (cut + 2) < MIN_QUESTION_CHARS:
        cut = text.rfind("\n\n", start, cut)  # -1: the whole message is the question
    q_start = head_end = cut + 2 if cut >= 0 else start
    if cut >= 0:
        head_end = cut
    if stop - q_start > QUESTION_MAX_CHARS:
        q_start = head_end = stop - QUESTION_MAX_CHARS
        line = text.find("\n", q_start, stop)
        if line >= 0:
            q_start = head_end = line + 1
    head = [*spans[:-1], TextSpan(text, start, head_end)]
    return text[q_start:stop].strip(), head


def _latency_budget(
    headers: Mapping[str, str] | None, metadata: Mapping[str, Any] | None
) -> float | None:
    raw: Any = None
    source = ""
    if headers:
        for key, value in headers.items():
            if key.lower() == LATENCY_HEADER:
                raw, source = value, f"header {LATENCY_HEADER}"
                break
    if raw is None and metadata is not None and metadata.get("latency_budget_ms") is not None:
        raw, source = metadata["latency_budget_ms"], "metadata.latency_budget_ms"
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise InvalidRequest(f"{source} must be a number of milliseconds, got {raw!r}")
    try:
        budget = float(raw)
    except (TypeError, ValueError):
        raise InvalidRequest(f"{source} must be a number of milliseconds, got {raw!r}") from None
    if not math.isfinite(budget) or budget < 0:
        raise InvalidRequest(f"{source} must be a finite, non-negative number, got {raw!r}")
    return budget


def _api_key(metadata: Mapping[str, Any] | None) -> str | None:
    if metadata is None:
        return None
    for key in API_KEY_METADATA:
        value = metadata.get(key)
        if isinstance(value, str) and value:
            return value
    return None
