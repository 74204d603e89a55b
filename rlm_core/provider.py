"""Model calls with bounded retries: ``ModelSpec``, ``RetryPolicy`` and the one retry loop.

The engine's calls (``ModelClient``) and the router's direct calls both retry through
``call_with_retries``; which errors are retried is ``ProviderError.retryable``, decided where
litellm's exceptions are mapped (``rlm_core.litellm_api``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import rlm_router.rlm_core.litellm_api as litellm_api
from rlm_router.rlm_core.budget import Ledger
from rlm_router.rlm_core.errors import ProviderError, ProviderRejected, RLMRouterError
from rlm_router.rlm_core.litellm_api import Completion

__all__ = [
    "Completion",
    "ModelClient",
    "ModelReply",
    "ModelSpec",
    "RetryPolicy",
    "call_with_retries",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


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


async def call_with_retries(
    attempt: Callable[[int], Awaitable[T]],
    *,
    retry: RetryPolicy,
    model: str,
    api_base: str | None = None,
    remaining_s: Callable[[], float | None] = lambda: None,
) -> T:
    """``await attempt(n)`` for n = 1, 2, … until it succeeds; the one retry loop.

    A failure is mapped to a ``ProviderError`` kind (``raise … from exc``) and retried while
    it is retryable, attempts remain and the backoff (or the provider's retry-after) fits in
    ``remaining_s()``. Our own errors pass through unchanged and are never retried.
    """
    n = 0
    while True:
        n += 1
        try:
            return await attempt(n)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = litellm_api.map_error(exc, model=model, api_base=api_base)
            if not isinstance(error, ProviderError) or error is exc:
                raise
            if not error.retryable or n >= retry.max_attempts:
                raise error from exc
            delay = retry.backoff(n, error.retry_after_s)
            remaining = remaining_s()
            if remaining is not None and delay >= remaining:
                raise error from exc
            log.info("%s failed (%s); retry %d in %.2fs", model, error.error_type, n, delay)
            await asyncio.sleep(delay)


def _provider_of(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else "openai"


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
        self._completion = completion or litellm_api.engine_acompletion
        self._retry = retry
        self._ledger = ledger

    async def call(
        self, spec: ModelSpec, messages: list[dict[str, str]], *, max_tokens: int | None = None
    ) -> ModelReply:
        """One chat completion with retries; raises ``ProviderError`` when it cannot succeed."""
        kwargs: dict[str, Any] = {"model": spec.model, "messages": messages}
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if spec.api_base:
            kwargs["api_base"] = spec.api_base
        if spec.api_key:
            kwargs["api_key"] = spec.api_key
        kwargs["num_retries"] = 0  # retries are ours, so they follow RetryPolicy and the budget
        kwargs["max_retries"] = 0
        # litellm caches provider clients (and their connection pools) keyed by the timeout,
        # among others: a fixed one keeps all calls on one client; the deadline is enforced here.
        kwargs["timeout"] = self._retry.timeout_s

        async def attempt(n: int) -> ModelReply:
            wait = self._retry.timeout_s + 1.0  # litellm's own timeout fires first
            remaining = self._ledger.remaining_s()
            if remaining is not None:
                wait = max(0.001, min(wait, remaining))
            # asyncio.timeout, not wait_for: wait_for (3.11) wraps every call in one more
            # task, which slows a CPU-bound fan-out by ~15% (engine_bench fan-out rows).
            async with self._ledger.semaphore, asyncio.timeout(wait):
                response = await self._completion(**kwargs)
            text, prompt, completion_tokens = _text_and_usage(response)
            return ModelReply(
                text=text,
                input_tokens=prompt,
                output_tokens=completion_tokens,
                cost_usd=litellm_api.response_cost(response),
                model=str(getattr(response, "model", None) or spec.model),
                provider=_provider_of(spec.model),
                attempts=n,
            )

        try:
            return await call_with_retries(
                attempt,
                retry=self._retry,
                model=spec.model,
                api_base=spec.api_base,
                remaining_s=self._ledger.remaining_s,
            )
        except ProviderError:
            raise
        except RLMRouterError as exc:  # e.g. the router refusing a sub-call: the call failed
            raise ProviderRejected(
                f"{spec.model}: {type(exc).__name__}: {exc}"[:2000], error_type=type(exc).__name__
            ) from exc
