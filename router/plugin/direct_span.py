"""The ``chat {model}`` span and GenAI metrics of a direct-route call through the proxy.

In the proxy, LiteLLM makes the direct call itself (the hook only rewrites the model), so
the call is recorded after the fact, from LiteLLM's success event or the failure hook, with
the times LiteLLM measured: the span sits inside the request's span, and
``gen_ai.client.operation.duration`` / ``gen_ai.client.token.usage`` (with ``error.type`` on
a failure) are recorded as for every other model call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlm_router.router.plugin.service import Pending

__all__ = ["DirectCall", "record_direct_call"]

log = logging.getLogger("rlm_router.router.plugin")


@dataclass(frozen=True, kw_only=True)
class DirectCall:
    """Which model served the direct route, and when (epoch ns; None = unknown)."""

    model: str
    provider: str | None = None
    # The deployment's model as LiteLLM called it (the response's ``model`` is rewritten to
    # the name the client asked for, e.g. ``auto``).
    response_model: str | None = None
    start_ns: int | None = None
    end_ns: int | None = None


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def record_direct_call(
    pending: Pending,
    call: DirectCall,
    *,
    response: object = None,
    error: BaseException | None = None,
    cost_usd: float | None = None,
) -> None:
    """Record one direct call under ``pending``'s request span; never raises."""
    trace = pending.trace
    if trace is None:
        return
    try:
        chat = trace.chat(model=call.model, provider=call.provider, start_time_ns=call.start_ns)
        if error is not None:
            chat.record_error(error)
        else:
            usage = getattr(response, "usage", None)
            choices = getattr(response, "choices", None) or []
            reasons = [str(c.finish_reason) for c in choices if getattr(c, "finish_reason", None)]
            model = call.response_model or getattr(response, "model", None)
            response_id = getattr(response, "id", None)
            chat.record_response(
                response_model=model if isinstance(model, str) else None,
                response_id=response_id if isinstance(response_id, str) else None,
                finish_reasons=reasons,
                input_tokens=_int(getattr(usage, "prompt_tokens", None)),
                output_tokens=_int(getattr(usage, "completion_tokens", None)),
                cost_usd=cost_usd,
            )
        duration_s = None
        if call.start_ns is not None and call.end_ns is not None:
            duration_s = max(0.0, (call.end_ns - call.start_ns) / 1e9)
        chat.end(end_time_ns=call.end_ns, duration_s=duration_s)
    except Exception:  # telemetry must never fail a request
        log.debug("rlm-router: recording the direct call failed", exc_info=True)
