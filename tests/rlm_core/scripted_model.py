"""A scripted provider for engine tests.

``ScriptedModel`` is a stand-in for the *provider*, not for our code: it decides each reply
from the conversation and hands it to ``litellm.acompletion(mock_response=...)``, so every
call still goes through litellm's own response building, usage and cost accounting. It is for
conversations the simulated provider does not write (attacks, malformed replies); task-solving
runs go through the simulated provider over loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

Reply = str | BaseException
Rule = Callable[[list[dict[str, str]]], Reply]

MODEL = "openai/gpt-4o-mini"  # in litellm's cost map, so costs are real numbers


def last_user(messages: list[dict[str, str]]) -> str:
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


def turn(messages: list[dict[str, str]]) -> int:
    """How many assistant turns the conversation already has."""
    return sum(1 for m in messages if m["role"] == "assistant")


def is_root(messages: list[dict[str, str]]) -> bool:
    return messages[0]["role"] == "system"


class ScriptedModel:
    """An async ``completion`` callable: root turns from ``root``, sub-calls from ``sub``."""

    def __init__(
        self,
        root: Rule | Sequence[Reply],
        sub: Rule | None = None,
        *,
        latency_s: float = 0.0,
    ) -> None:
        self._root = root
        self._sub = sub or (lambda messages: f"sub-answer to: {messages[-1]['content'][:40]}")
        self.latency_s = latency_s
        self.calls: list[list[dict[str, str]]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def _reply(self, messages: list[dict[str, str]]) -> Reply:
        if not is_root(messages):
            return self._sub(messages)
        if callable(self._root):
            return self._root(messages)
        return self._root[min(turn(messages), len(self._root) - 1)]

    async def __call__(self, **kwargs: Any) -> Any:
        import litellm

        messages = kwargs["messages"]
        self.calls.append(list(messages))  # the engine keeps appending to its list
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            reply = self._reply(messages)
        finally:
            self.in_flight -= 1
        if isinstance(reply, BaseException):
            raise reply
        return await litellm.acompletion(
            model=kwargs["model"], messages=messages, mock_response=reply
        )
