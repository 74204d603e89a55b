"""``RLMProvider``: the LiteLLM ``CustomLLM`` that serves ``rlm/<name>``.

It holds an admission slot for the run and serves it through ``Dispatcher.serve_rlm``; the
engine's model calls go through the proxy's own router (``llm_router.acompletion``, so they
reuse model_list keys), are marked inner in their metadata (no key attribution, not training
data) and can never target ``rlm/*``. The escalated request's total cost is reported in
``_hidden_params["response_cost"]``, which LiteLLM's spend tracking and
``x-litellm-response-cost`` use; a streamed answer's in ``additional_response_cost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, TypeAlias

from opentelemetry import trace as otel_trace

from rlm_router.policies.schema import Route
from rlm_router.rlm_core.errors import ProviderError
from rlm_router.rlm_core.litellm_api import CustomLLM, CustomLLMError
from rlm_router.router.dispatch import RLM_PREFIX, DispatchError
from rlm_router.router.plugin.admission import Caller
from rlm_router.router.plugin.metadata import RoutingMetadata
from rlm_router.router.plugin.service import Pending, RouterService, release, shared_service
from rlm_router.router.request import ChatRequest, InvalidRequest
from rlm_router.router.responses import (
    RouteInfo,
    Served,
    generic_chunk,
    model_response,
    split_text,
)
from rlm_router.router.streaming import keepalives
from rlm_router.telemetry.tracing import shielded

if TYPE_CHECKING:
    from rlm_router.rlm_core.litellm_api import GenericStreamingChunk, ModelResponse

# An OpenAI chat message as LiteLLM hands a CustomLLM the request's ``messages`` (LiteLLM's
# parameters it declares untyped, and those this provider does not use, are ``object``).
Message: TypeAlias = Mapping[str, object]

# How long a run with no other route waits for an admission slot (see _hold_slot).
FALLBACK_QUEUE_S = 30.0


__all__ = ["RLMProvider"]


class RLMProvider(CustomLLM):
    """Serves ``rlm/<name>``: the RLM route with its fallbacks, through ``Dispatcher``."""

    def __init__(self, service: RouterService | None = None) -> None:
        super().__init__()
        self.service = service or shared_service()

    def _prepare(
        self,
        messages: list[Message],
        optional_params: Mapping[str, object],
        litellm_params: Mapping[str, object] | None,
    ) -> tuple[ChatRequest, Pending, Route, dict[str, object]]:
        routed = RoutingMetadata.read((litellm_params or {}).get("metadata"))
        body: dict[str, object] = {"messages": messages}
        if routed is not None and routed.latency_budget_ms is not None:
            body["metadata"] = {"latency_budget_ms": routed.latency_budget_ms}
        try:
            request = ChatRequest.parse(body)
        except InvalidRequest as exc:
            raise CustomLLMError(status_code=400, message=f"rlm-router: {exc}") from exc
        pending = self.service.recall(routed.decision_id if routed is not None else None)
        if pending is None:
            # A client named rlm/<name> itself: serve it on the RLM route as asked.
            started = time.monotonic()
            decided = self.service.router.decide_parsed(request)
            # As a rule decides: the route is certain (propensity 1), never exploration.
            decision = dataclasses.replace(
                decided,
                id=str(decided.id or uuid.uuid4()),
                route="rlm",
                rule=f"model {RLM_PREFIX}{self.service.config.rlm_name} requested",
                exploration=False,
                propensity=1.0,
            )
            trace = self.service.dispatcher.open_trace(
                decision, decide_s=time.monotonic() - started
            )
            pending = Pending(decision, trace, started)
            self.service.note_issued(decision.id)
        # The hook chose "llm" and LiteLLM fell back here: a context-window error.
        decided_route: Route = routed.route if routed is not None else "rlm"
        passthrough = {
            k: v
            for k, v in optional_params.items()
            if k in ("temperature", "max_tokens", "max_completion_tokens", "top_p", "stop", "seed")
        }
        return request, pending, decided_route, passthrough

    async def acompletion(
        self,
        model: str,
        messages: list[Message],
        api_base: str,
        custom_prompt_dict: dict[str, object],
        model_response: ModelResponse,
        print_verbose: Callable[..., object],
        encoding: object,
        api_key: object,
        logging_obj: object,
        optional_params: dict[str, object],
        acompletion: object = None,
        litellm_params: Mapping[str, object] | None = None,
        logger_fn: object = None,
        headers: object = None,
        timeout: object = None,  # noqa: ASYNC109 (LiteLLM's signature)
        client: object = None,
    ) -> ModelResponse:
        request, pending, decided, kwargs = self._prepare(messages, optional_params, litellm_params)
        try:
            await self._hold_slot(pending, request)
            with _shielded(pending):
                served, outcome = await self.service.dispatcher.serve_rlm(
                    request,
                    pending.decision,
                    {"messages": messages, **kwargs},
                    decided=decided,
                    started=pending.started,
                    trace=pending.trace,
                )
        except (DispatchError, ProviderError) as exc:
            raise _provider_error(exc) from exc
        finally:
            await release(pending)
        judge = self.service.dispatcher.judge
        if judge is not None and outcome.error_type is None:
            judge.submit(pending.decision.id, messages, served.text)
        return _fill(model_response, served, outcome.route)

    async def _hold_slot(self, pending: Pending, request: ChatRequest) -> None:
        """An admission slot for a run the hook did not admit (a fallback, or rlm/* named)."""
        if pending.slot is not None:
            return
        settings = self.service.router.policy.admission
        # The hook's queue is short because the direct route is its alternative; here (a
        # context-window fallback, or rlm/* named) there is none, and a refusal reaches the
        # client as the direct call's error (LiteLLM answers a failed fallback with the
        # original 400), so wait as long as an RLM run takes to free a slot.
        wait = max(settings.queue_ms / 1000.0, FALLBACK_QUEUE_S)
        if request.latency_budget_ms is not None:
            wait = min(wait, request.latency_budget_ms / 1000.0)
        pending.slot = await self.service.admission.acquire(Caller(), wait_s=wait)
        if pending.slot is None:
            self.service.dispatcher.close_trace(pending.trace, None)
            raise CustomLLMError(
                status_code=429,
                message="rlm-router: too many RLM runs in flight (policy admission limits); "
                "retry later",
            )

    async def astreaming(  # type: ignore[override,misc]
        self,
        model: str,
        messages: list[Message],
        api_base: str,
        custom_prompt_dict: dict[str, object],
        model_response: ModelResponse,
        print_verbose: Callable[..., object],
        encoding: object,
        api_key: object,
        logging_obj: object,
        optional_params: dict[str, object],
        acompletion: object = None,
        litellm_params: Mapping[str, object] | None = None,
        logger_fn: object = None,
        headers: object = None,
        timeout: object = None,  # noqa: ASYNC109 (LiteLLM's signature)
        client: object = None,
    ) -> AsyncIterator[GenericStreamingChunk]:
        request, pending, decided, kwargs = self._prepare(messages, optional_params, litellm_params)
        dispatcher = self.service.dispatcher
        try:
            await self._hold_slot(pending, request)
        except BaseException:
            await release(pending)
            raise
        # An early chunk makes LiteLLM open the response at once; keep-alives follow.
        try:
            yield generic_chunk(keepalive=True)
        except BaseException:
            await release(pending)
            raise
        with _shielded(pending):  # the task copies the context it is created in
            task = asyncio.ensure_future(
                dispatcher.serve_rlm(
                    request,
                    pending.decision,
                    {"messages": messages, **kwargs},
                    decided=decided,
                    started=pending.started,
                    trace=pending.trace,
                )
            )
        try:
            async for _ in keepalives(task, dispatcher.settings.keepalive_s):
                yield generic_chunk(keepalive=True)
            try:
                served, _outcome = task.result()
            except (DispatchError, ProviderError) as exc:
                raise _provider_error(exc) from exc
            for piece in split_text(served.text):
                yield generic_chunk(piece)
            _price_stream(logging_obj, served)
            yield generic_chunk(served=served)
        finally:
            if not task.done():
                task.cancel()
                # The run's workers and sub-calls stop before the slot is handed on.
                with contextlib.suppress(BaseException):
                    await task
            await release(pending)


def _shielded(pending: Pending) -> AbstractContextManager[None]:
    """Run the engine with a read-only stand-in of our request span current.

    Its model calls go through the proxy's router, so LiteLLM's own callbacks (``otel``)
    log each of them; they write onto the *current* span, which here is LiteLLM's (or
    FastAPI's) span of the outer request: the last inner call's system prompt, output and
    tokens would land on it. Under the stand-in they nest under our request span and write
    nowhere. Without a trace of ours, the stand-in is one of the current span itself.
    """
    span = pending.trace.span if pending.trace is not None else otel_trace.get_current_span()
    return shielded(span)


def _provider_error(exc: DispatchError | ProviderError) -> CustomLLMError:
    """What LiteLLM answers the client with: our status, or the provider's (502 if none)."""
    status = exc.status_code if isinstance(exc.status_code, int) else 502
    return CustomLLMError(status_code=status, message=str(exc))


def _price_stream(logging_obj: object, served: Served) -> None:
    """Make LiteLLM bill a streamed RLM answer at its total cost.

    A streamed response's cost is computed by LiteLLM from the final usage and the model's
    prices, and ``rlm/*`` has none (so 0); LiteLLM adds ``additional_response_cost`` to it.
    """
    details = getattr(logging_obj, "model_call_details", None)
    if isinstance(details, dict):
        details["additional_response_cost"] = served.cost_usd


def _fill(response: ModelResponse, served: Served, route: RouteInfo) -> ModelResponse:
    return model_response(served, route, into=response)
