"""The OpenAI chat-completion parameters beside ``messages``, checked before any routing work.

LiteLLM passes most of them through untouched, so a malformed one used to cost a provider
round trip (and retries) before failing, or passed silently (``n: 1000`` on the RLM route).
``check_params`` raises ``InvalidRequest`` naming the parameter and what was expected, with
OpenAI's ranges. Parameters it does not know are left to the provider.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from rlm_router.router.request import InvalidRequest

# OpenAI's bound on ``n`` (choices per request).
MAX_CHOICES = 128


def _number(low: float, high: float) -> Callable[[str, Any], None]:
    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidRequest(f"'{name}' must be a number, got {_shown(value)}")
        if not math.isfinite(value) or not low <= value <= high:
            raise InvalidRequest(f"'{name}' must be between {low:g} and {high:g}, got {value}")

    return check


def _integer(low: int, high: int | None = None) -> Callable[[str, Any], None]:
    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequest(f"'{name}' must be an integer, got {_shown(value)}")
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise InvalidRequest(f"'{name}' must be an integer {bound}, got {value}")

    return check


def _boolean(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be true or false, got {_shown(value)}")


def _string(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string, got {_shown(value)}")


def _object(name: str, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"'{name}' must be an object, got {_shown(value)}")


def _stop(name: str, value: Any) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise InvalidRequest(f"'{name}' must be a string or a list of strings, got {_shown(value)}")
    if len(value) > 4:
        raise InvalidRequest(f"'{name}' may hold at most 4 sequences, got {len(value)}")


def _stream_options(name: str, value: Any) -> None:
    _object(name, value)
    include = value.get("include_usage")
    if include is not None:
        _boolean(f"{name}.include_usage", include)


def _tool_choice(name: str, value: Any) -> None:
    if not isinstance(value, str | Mapping):
        raise InvalidRequest(f"'{name}' must be a string or an object, got {_shown(value)}")


def _tools(name: str, value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(t, Mapping) for t in value):
        raise InvalidRequest(f"'{name}' must be a list of objects, got {_shown(value)}")


_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "temperature": _number(0.0, 2.0),
    "top_p": _number(0.0, 1.0),
    "presence_penalty": _number(-2.0, 2.0),
    "frequency_penalty": _number(-2.0, 2.0),
    "n": _integer(1, MAX_CHOICES),
    "max_tokens": _integer(1),
    "max_completion_tokens": _integer(1),
    "seed": _integer(-(2**63), 2**63 - 1),
    "top_logprobs": _integer(0, 20),
    "logprobs": _boolean,
    "parallel_tool_calls": _boolean,
    "stream_options": _stream_options,
    "metadata": _object,
    "logit_bias": _object,
    "response_format": _object,
    "stop": _stop,
    "user": _string,
    "tools": _tools,
    "tool_choice": _tool_choice,
}


def check_params(body: Mapping[str, Any]) -> None:
    """Raise ``InvalidRequest`` for the first malformed known parameter of ``body``.

    ``null`` means "not given" for every parameter, as in OpenAI's API.
    """
    for name, check in _CHECKS.items():
        value = body.get(name)
        if value is not None:
            check(name, value)
    if body.get("stream_options") is not None and body.get("stream") is not True:
        raise InvalidRequest("'stream_options' is only allowed when 'stream' is true")


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"
