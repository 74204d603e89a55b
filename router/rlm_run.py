"""The RLM route's run: the engine built from the settings, its sub-calls marked as inner, and
what a run (or a failed one) spent."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import rlm_router.rlm_core.litellm_api as litellm_api
from rlm_router.rlm_core.errors import ProviderFailure
from rlm_router.router.call import RequestCall
from rlm_router.router.dispatch_settings import DispatchSettings
from rlm_router.router.errors import DispatchError
from rlm_router.router.responses import Served, TokenUsage

if TYPE_CHECKING:
    from rlm_router.rlm_core import RLMResult
    from rlm_router.rlm_core.litellm_api import Completion

__all__ = [
    "INNER_METADATA_KEY",
    "INNER_TAG",
    "RLM_PREFIX",
    "failure_cost",
    "inner_completion",
    "result_cost",
    "rlm_served",
    "run_engine",
    "stop_name",
    "usage_int",
    "usage_int0",
]

INNER_METADATA_KEY = "rlm_router_inner"
INNER_TAG = "rlm-router:inner"
RLM_PREFIX = "rlm/"


def inner_completion(completion: Completion | None, decision_id: str) -> Completion:
    """The engine's model calls: marked as inner, never routed back into ``rlm/*``."""
    call = completion or litellm_api.engine_acompletion

    async def inner(**kwargs: Any) -> Any:
        model = str(kwargs.get("model", ""))
        if model.startswith(RLM_PREFIX):
            raise DispatchError(f"an RLM sub-call may not target {model!r} (would recurse)")
        metadata = dict(kwargs.get("metadata") or {})
        metadata[INNER_METADATA_KEY] = True
        metadata["rlm_router_decision_id"] = decision_id
        # For LiteLLM loggers that filter on tags (Langfuse, spend-by-tag reports).
        metadata["tags"] = [*metadata.get("tags", ()), INNER_TAG]
        kwargs["metadata"] = metadata
        return await call(**kwargs)

    return inner


async def run_engine(
    settings: DispatchSettings,
    completion: Completion | None,
    call: RequestCall,
    deadline: float | None,
) -> RLMResult:
    engine = settings.engine(
        observer=call.trace.observer(),
        completion=inner_completion(completion, call.decision.id),
    )
    run = engine.acompletion(call.request.question, call.request.context_text, deadline=deadline)
    if deadline is None:
        return await run
    grace = settings.latency.grace_ms / 1000.0
    return await asyncio.wait_for(run, timeout=max(0.0, deadline - time.monotonic()) + grace)


def rlm_served(
    settings: DispatchSettings, text: str, result: RLMResult | None, finish_reason: str
) -> Served:
    """``Served`` for an RLM answer (or partial answer) with the run's usage and cost."""
    return Served(
        text=text,
        model=f"{RLM_PREFIX}{settings.models.rlm_name}",
        finish_reason=finish_reason,
        usage=TokenUsage(
            input_tokens=usage_int0(result, "input_tokens"),
            output_tokens=usage_int0(result, "output_tokens"),
        ),
        cost_usd=result_cost(result),
    )


def stop_name(result: RLMResult | None) -> str:
    return "error" if result is None else result.stopped_reason.value.lower()


def usage_int(result: RLMResult | None, name: str) -> int | None:
    return None if result is None else int(getattr(result.usage, name))


def usage_int0(result: RLMResult | None, name: str) -> int:
    return usage_int(result, name) or 0


def result_cost(result: RLMResult | None) -> float:
    return 0.0 if result is None else result.usage.cost_usd


def failure_cost(error: BaseException | None) -> float:
    """What a failed RLM run spent before failing: the calls of its trajectory.

    (Read before as ``trajectory.cost_usd``, which does not exist, so it was always 0.)
    """
    if isinstance(error, ProviderFailure) and error.trajectory is not None:
        return sum(call.cost_usd for call in error.trajectory.calls)
    return 0.0
