"""The direct route: one call to the direct model, retried per policy, bounded by the deadline."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import rlm_router.rlm_core.litellm_api as litellm_api
from rlm_router.rlm_core.provider import call_with_retries
from rlm_router.router.call import RequestCall
from rlm_router.router.dispatch_settings import DispatchSettings
from rlm_router.router.errors import LatencyBudgetExceeded

if TYPE_CHECKING:
    from rlm_router.rlm_core.litellm_api import Completion

__all__ = ["call_direct", "direct_kwargs"]

# Keyword arguments of litellm.acompletion that name the target rather than the request.
_TARGET_KEYS = ("model", "api_base", "base_url", "api_key", "custom_llm_provider")


def direct_kwargs(settings: DispatchSettings, call: RequestCall, *, stream: bool) -> dict[str, Any]:
    """The request's keyword arguments re-targeted at the direct model."""
    spec = settings.models.direct
    kwargs = {k: v for k, v in call.kwargs.items() if k not in _TARGET_KEYS}
    kwargs["model"] = spec.model
    if spec.api_base is not None:
        kwargs["api_base"] = spec.api_base
    if spec.api_key is not None:
        kwargs["api_key"] = spec.api_key
    kwargs["stream"] = stream
    # Retries are ours (RetryPolicy, bounded by the deadline), not the SDK's.
    kwargs.setdefault("num_retries", 0)
    kwargs.setdefault("max_retries", 0)
    return kwargs


async def call_direct(
    settings: DispatchSettings,
    completion: Completion | None,
    call: RequestCall,
    *,
    stream: bool = False,
) -> Any:
    """One direct call (retried per policy on provider errors), bounded by the deadline."""
    kwargs = direct_kwargs(settings, call, stream=stream)
    retry = settings.retry
    model = str(kwargs["model"])
    chat = call.trace.chat(model, call.request.messages)
    if chat is not None:
        with contextlib.suppress(Exception):
            kwargs["metadata"] = {**(kwargs.get("metadata") or {}), **chat.litellm_metadata()}

    async def attempt(n: int) -> Any:
        remaining = call.deadline.remaining()
        if remaining is not None and remaining <= 0:
            raise LatencyBudgetExceeded(
                "latency budget exhausted before the direct call could start",
                route=call.route("llm"),
            )
        # litellm caches its HTTP client per timeout value: a deadline-derived timeout
        # would build a new client and connection per request. A non-streaming call gets
        # the fixed timeout and the deadline from asyncio; a stream's reads are bounded by
        # the client timeout itself, so it keeps the deadline there.
        kwargs["timeout"] = (
            min(remaining, retry.timeout_s) if stream and remaining else retry.timeout_s
        )
        return await _call_within(completion, None if stream else remaining, kwargs)

    try:
        response = await call_with_retries(
            attempt,
            retry=retry,
            model=model,
            api_base=kwargs.get("api_base"),
            remaining_s=call.deadline.remaining,
        )
    except Exception as exc:
        call.trace.chat_done(chat, error=exc)
        raise
    if stream:
        call.direct_chat = chat
    else:
        call.trace.chat_done(chat, response=response)
    return response


async def _call_within(
    completion: Completion | None, seconds: float | None, kwargs: dict[str, Any]
) -> Any:
    """The direct call, bounded by ``seconds``; overrunning raises ``ProviderTimeout``."""
    try:
        async with asyncio.timeout(seconds):
            return await (completion or litellm_api.acompletion)(**kwargs)
    except TimeoutError as exc:
        if seconds is None:  # not our deadline
            raise
        raise litellm_api.timeout_error(
            f"rlm-router: latency budget reached after {seconds:.3f}s",
            model=str(kwargs.get("model")),
        ) from exc
