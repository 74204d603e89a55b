"""An OpenAI-shaped chat request, parsed once into the parts the router reasons about.

The split between the *question* (the instruction) and the bulk *context* is found by
``router.instruction.locate``: the instruction may sit after the data, before it, between
XML-ish tags, in a short system prompt, or be the last turn with the document in an earlier
one; only bounded windows at the ends of the messages are read. Everything else is context:
system messages, earlier turns (all roles) and the rest of the message holding the question.

Context is kept as views (``TextSpan``) into the request's own strings, so parsing a
40 MB message copies nothing; ``context_text`` joins them only when asked.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

from rlm_router.rlm_core.errors import RequestError
from rlm_router.router.instruction import locate

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
    # every message's text parts, in message order (what the model reads)
    texts: tuple[tuple[TextSpan, ...], ...] = field(repr=False)
    roles: tuple[str, ...] = field(repr=False)
    last_user: int
    stream: bool
    has_tools: bool
    n_turns: int
    latency_budget_ms: float | None
    api_key: str | None
    body: Mapping[str, Any] = field(repr=False)

    @property
    def question(self) -> str:
        """The instruction, as ``router.instruction.locate`` found it."""
        return self._split[0]

    @property
    def context_spans(self) -> tuple[TextSpan, ...]:
        """Everything but the question: system messages, other turns, the rest of its message."""
        return self._split[1]

    @property
    def question_source(self) -> str:
        """Where the question was found: tail | head | tag | system (see router.instruction)."""
        return self._split[2]

    @property
    def text_spans(self) -> tuple[TextSpan, ...]:
        """All text of all messages, untouched by the question split."""
        return tuple(span for spans in self.texts for span in spans if len(span))

    @cached_property
    def _split(self) -> tuple[str, tuple[TextSpan, ...], str]:
        # Located on first use, not in parse: a request the screen routes (policies.screen)
        # never needs it.
        texts = self.texts
        found = locate(
            [(r, t[-1].text if t else "") for r, t in zip(self.roles, texts, strict=True)],
            self.last_user,
        )
        question = ""
        context: list[TextSpan] = []
        for index, spans in enumerate(texts):
            if index != found.message or not spans:
                context.extend(spans)
                continue
            text = spans[-1].text
            question = text[found.start : found.end].strip()
            context.extend(spans[:-1])
            context.append(_trimmed(text, 0, found.start))
            context.append(_trimmed(text, found.end, len(text)))
        return question, tuple(span for span in context if len(span)), found.source

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
        """Validate ``body`` (an OpenAI chat-completion request); the question and context are
        split on first use (``question``, ``context_spans``).

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
        roles: list[str] = []
        last_user = -1
        n_turns = 0
        for index, message in enumerate(messages):
            if not isinstance(message, Mapping):
                raise InvalidRequest(f"messages[{index}] must be an object")
            role = message.get("role")
            if not isinstance(role, str):
                raise InvalidRequest(f"messages[{index}].role must be a string")
            texts.append(list(_content_spans(message.get("content"), index)))
            roles.append(role)
            if role == "user":
                last_user = index
                n_turns += 1
        if last_user < 0:
            raise InvalidRequest("'messages' has no user message")

        tools = body.get("tools") or body.get("functions")
        return cls(
            model=model,
            messages=messages,
            texts=tuple(tuple(spans) for spans in texts),
            roles=tuple(roles),
            last_user=last_user,
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


def _trimmed(text: str, start: int, end: int) -> TextSpan:
    """``text[start:end]`` without surrounding whitespace (looks only at the ends)."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return TextSpan(text, start, end)


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
