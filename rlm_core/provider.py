"""The one adapter between the engine and litellm: calls, retries, usage and cost.

Nothing else in rlm_core touches litellm's response objects or exceptions; they are turned
into ``ModelReply`` / ``CallFailed`` here.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from rlm_core.budget import Ledger

Completion = Callable[..., Awaitable[Any]]

_RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 529}


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A litellm model string plus where to reach it."""

    model: str
    api_base: str | None = None
    api_key: str | None = None

    def __repr__(self) -> str:  # never show the key
        return f"ModelSpec(model={self.model!r}, api_base={self.api_base!r})"


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Bounded retries for 429 (honouring retry-after), 5xx, timeouts and connection errors."""

    max_attempts: int = 4
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    multiplier: float = 2.0
    jitter: float = 0.1
    timeout_s: float = 120.0  # per attempt
    max_retry_after_s: float = 30.0

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after_s)
        base = min(self.initial_backoff_s * self.multiplier ** (attempt - 1), self.max_backoff_s)
        return base * (1 + random.uniform(-self.jitter, self.jitter))


@dataclass(frozen=True)
class ModelReply:
    text: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    model: str
    provider: str
    attempts: int


class CallFailed(Exception):
    """A model call that failed permanently (or ran out of retries)."""

    def __init__(
        self, message: str, *, status_code: int | None, error_type: str, context_window: bool
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_type = error_type
        self.context_window = context_window


def _provider_of(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else "openai"


def _status(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) else None


def _retry_after(exc: BaseException) -> float | None:
    """The provider's requested wait, from the error's response headers (litellm keeps them in
    ``litellm_response_headers``; its ``response`` is often a stand-in without headers)."""
    headers = getattr(exc, "litellm_response_headers", None) or getattr(
        getattr(exc, "response", None), "headers", None
    )
    if not headers:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        try:
            return parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError | ConnectionError):
        return True
    status = _status(exc)
    if status is not None:
        return status in _RETRYABLE_STATUS
    name = type(exc).__name__
    return name in {"Timeout", "APIConnectionError", "APITimeoutError", "ServiceUnavailableError"}


def _is_context_window(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return "contextwindowexceeded" in text or "context_length_exceeded" in text


def response_cost(response: Any) -> float:
    """USD cost of a litellm response: the provider's/litellm's own figure when it has one,
    else computed from litellm's cost map; 0.0 for a model the map does not know."""
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost")
    if isinstance(cost, int | float) and cost > 0:
        return float(cost)
    try:
        import litellm

        return float(litellm.completion_cost(completion_response=response) or 0.0)
    except Exception:
        return 0.0


def token_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """USD cost of a token count on ``model`` from litellm's cost map (0.0 when unknown)."""
    try:
        import litellm

        prompt, completion = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
        return float(prompt + completion)
    except Exception:
        return 0.0


def _text_and_usage(response: Any) -> tuple[str, int, int]:
    choice = response.choices[0]
    text = getattr(choice.message, "content", None) or ""
    usage = getattr(response, "usage", None)
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    return str(text), prompt, completion


class ModelClient:
    """Calls models through the injected completion callable with the tree's limits."""

    def __init__(self, completion: Completion | None, retry: RetryPolicy, ledger: Ledger) -> None:
        self._completion = completion
        self._retry = retry
        self._ledger = ledger

    async def _acompletion(self) -> Completion:
        if self._completion is None:
            import litellm

            self._completion = litellm.acompletion
        return self._completion

    async def call(self, spec: ModelSpec, messages: list[dict[str, str]]) -> ModelReply:
        """One chat completion with retries; raises CallFailed when it cannot succeed."""
        completion = await self._acompletion()
        kwargs: dict[str, Any] = {"model": spec.model, "messages": messages}
        if spec.api_base:
            kwargs["api_base"] = spec.api_base
        if spec.api_key:
            kwargs["api_key"] = spec.api_key
        kwargs["num_retries"] = 0  # retries are ours, so they follow RetryPolicy and the budget
        kwargs["max_retries"] = 0
        # litellm caches provider clients (and their connection pools) keyed by the timeout,
        # among others: a fixed one keeps all calls on one client; the deadline is enforced here.
        kwargs["timeout"] = self._retry.timeout_s
        attempt = 0
        while True:
            attempt += 1
            wait = self._retry.timeout_s + 1.0  # litellm's own timeout fires first
            remaining = self._ledger.remaining_s()
            if remaining is not None:
                wait = max(0.001, min(wait, remaining))
            try:
                # asyncio.timeout, not wait_for: wait_for (3.11) wraps every call in one more
                # task, which slows a CPU-bound fan-out by ~15% (engine_bench fan-out rows).
                async with self._ledger.semaphore, asyncio.timeout(wait):
                    response = await completion(**kwargs)
                text, prompt, completion_tokens = _text_and_usage(response)
                return ModelReply(
                    text=text,
                    input_tokens=prompt,
                    output_tokens=completion_tokens,
                    cost_usd=response_cost(response),
                    model=str(getattr(response, "model", None) or spec.model),
                    provider=_provider_of(spec.model),
                    attempts=attempt,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                retryable = _is_retryable(exc) and not _is_context_window(exc)
                remaining = self._ledger.remaining_s()
                if not retryable or attempt >= self._retry.max_attempts:
                    raise CallFailed(
                        f"{spec.model}: {type(exc).__name__}: {exc}"[:2000],
                        status_code=_status(exc),
                        error_type=type(exc).__name__,
                        context_window=_is_context_window(exc),
                    ) from exc
                delay = self._retry.backoff(attempt, _retry_after(exc))
                if remaining is not None and delay >= remaining:
                    raise CallFailed(
                        f"{spec.model}: no time left to retry after {type(exc).__name__}",
                        status_code=_status(exc),
                        error_type=type(exc).__name__,
                        context_window=False,
                    ) from exc
                await asyncio.sleep(delay)
