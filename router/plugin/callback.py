"""``RouterHook``: the LiteLLM callback that routes requests for the virtual model(s).

- ``async_pre_call_hook`` sees requests for a virtual model (default ``auto``): size limits,
  parameter checks, the decision, admission of RLM runs; it rewrites ``data["model"]`` to the
  direct model group or to ``rlm/<name>`` (other model names pass through untouched) and adds
  a per-request context-window fallback to ``rlm/<name>`` on the direct route. The decision
  rides along as ``RoutingMetadata``.
- ``async_log_success_event`` / ``async_post_call_failure_hook`` record the outcome of
  requests the direct route served (the RLM provider records its own).
- ``async_post_call_streaming_iterator_hook`` retries a direct stream that fails before its
  first content; ``async_post_call_response_headers_hook`` adds ``x-rlm-router-*`` headers.

The proxy calls a hook only if it is defined on the registered class itself (LiteLLM checks
the class ``__dict__``), so every hook is defined here, not inherited.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Mapping
from typing import TYPE_CHECKING

from fastapi import HTTPException

from rlm_router.policies.schema import Route
from rlm_router.rlm_core.errors import ProviderError
from rlm_router.rlm_core.litellm_api import CustomLogger
from rlm_router.rlm_core.provider import call_with_retries
from rlm_router.router.dispatch import RLM_PREFIX
from rlm_router.router.outcome import Outcome, reason_of
from rlm_router.router.params import check_params
from rlm_router.router.plugin.admission import Caller, Slot
from rlm_router.router.plugin.direct_span import DirectCall, record_direct_call
from rlm_router.router.plugin.litellm_types import CallKwargs, RequestData
from rlm_router.router.plugin.metadata import RoutingMetadata, is_inner, of_call
from rlm_router.router.plugin.service import (
    Pending,
    RouterService,
    proxy_stream,
    release,
    shared_service,
)
from rlm_router.router.plugin.warm import is_warm_up, priced_at_zero
from rlm_router.router.request import ChatRequest, InvalidRequest
from rlm_router.router.responses import (
    HEADER_POLICY_VERSION,
    RouteInfo,
    route_of,
)

if TYPE_CHECKING:
    from rlm_router.policies.schema import Limits
    from rlm_router.router.plugin.litellm_types import (
        CallTypesLiteral,
        DualCache,
        ModelResponseStream,
        UserAPIKeyAuth,
    )


__all__ = ["RouterHook"]

log = logging.getLogger("rlm_router.router.plugin")

_CHAT_CALL_TYPES = frozenset({"completion", "acompletion"})


def _client_body(data: Mapping[str, object]) -> Mapping[str, object]:
    """The body as the client sent it (LiteLLM rewrites some fields of ``data``, e.g.
    ``metadata``, before the hook runs), else ``data`` itself."""
    request = data.get("proxy_server_request")
    body = request.get("body") if isinstance(request, Mapping) else None
    return body if isinstance(body, Mapping) else data


def _request_headers(data: Mapping[str, object]) -> dict[str, str]:
    request = data.get("proxy_server_request") or {}
    headers = request.get("headers") if isinstance(request, Mapping) else None
    return dict(headers) if isinstance(headers, Mapping) else {}


def _bad_request(message: str, status_code: int = 400) -> HTTPException:
    return HTTPException(status_code=status_code, detail={"error": f"rlm-router: {message}"})


def _request_bytes(headers: Mapping[str, str]) -> int | None:
    """The body's size from its Content-Length (None when the proxy did not pass it)."""
    for key, value in headers.items():
        if key.lower() == "content-length":
            try:
                return int(value)
            except (TypeError, ValueError):
                return None
    return None


def _check_size(data: Mapping[str, object], headers: Mapping[str, str], limits: Limits) -> None:
    """413/400 for a request over the policy's size limits, before any parsing work."""
    size, most = _request_bytes(headers), limits.max_request_bytes
    if most is not None and size is not None and size > most:
        raise _bad_request(
            f"request body is {size} bytes, over this router's limit of {most} bytes "
            "(policy limits.max_request_bytes)",
            status_code=413,
        )
    messages = data.get("messages")
    limit = limits.max_messages
    if limit is not None and isinstance(messages, list) and len(messages) > limit:
        raise _bad_request(
            f"'messages' has {len(messages)} entries, over this router's limit of {limit} "
            "(policy limits.max_messages)"
        )


# Parameters LiteLLM handles before any hook sees them, so only the raw body can tell:
# it replaces a malformed ``metadata`` (a string, a list) with its own dict, and litellm
# 1.106 answers a ``tools`` that is not iterable (``5``) with a 500.
_BEFORE_HOOK = {name: f'"{name}"'.encode() for name in ("metadata", "tools")}


def raw_body_check(body: bytes) -> str | None:
    """The raw body's ``metadata`` and ``tools`` for a virtual model, checked as the hook
    checks them (a substring test first, so most bodies are not parsed twice)."""
    present = [name for name, key in _BEFORE_HOOK.items() if key in body]
    if not present:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None  # LiteLLM answers malformed JSON itself
    if (
        not isinstance(data, dict)
        or data.get("model") not in shared_service().config.virtual_models
    ):
        return None
    try:
        check_params({name: data.get(name) for name in present})
    except InvalidRequest as exc:
        return f"rlm-router: {exc}"
    return None


def _has_content(chunk: object) -> bool:
    """Whether a stream chunk carries something the client would see beyond the role."""
    for choice in getattr(chunk, "choices", None) or ():
        delta = getattr(choice, "delta", None)
        if getattr(delta, "content", None) or getattr(delta, "tool_calls", None):
            return True
        if getattr(choice, "finish_reason", None):
            return True
    return False


def _retry_kwargs(request_data: Mapping[str, object]) -> dict[str, object]:
    """A fresh streamed call for the same request: the client's parameters, the direct group."""
    body = _client_body(request_data)
    kwargs = {k: v for k, v in body.items() if k in _RETRY_PARAMS}
    kwargs.update(model=request_data["model"], messages=request_data["messages"], stream=True)
    kwargs["num_retries"] = 0
    return kwargs


_RETRY_PARAMS = frozenset(
    {
        "temperature", "top_p", "n", "stop", "max_tokens", "max_completion_tokens", "seed",
        "presence_penalty", "frequency_penalty", "logit_bias", "user", "tools", "tool_choice",
        "response_format", "stream_options", "parallel_tool_calls", "logprobs", "top_logprobs",
    }
)  # fmt: skip


def _epoch_ns(moment: object) -> int | None:
    """LiteLLM's event times (``datetime``, naive local time) as epoch nanoseconds."""
    stamp = getattr(moment, "timestamp", None)
    return int(stamp() * 1e9) if callable(stamp) else None


def _decided_ns(pending: Pending) -> int | None:
    """When the decision was made (the direct call starts then)."""
    if pending.started_ns is None:
        return None
    return pending.started_ns + int(pending.decide_s * 1e9)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _cost(value: object) -> float:
    """LiteLLM's ``response_cost`` (a float, or None when it could not price the call)."""
    return float(value) if isinstance(value, int | float) else 0.0


def _caller(user_api_key_dict: UserAPIKeyAuth) -> Caller:
    """The key and team LiteLLM's auth resolved for this request (for per-key admission)."""

    def text(name: str) -> str | None:
        value = getattr(user_api_key_dict, name, None)
        return value if isinstance(value, str) and value else None

    return Caller(key=text("token") or text("key_alias"), team=text("team_id"))


class RouterHook(CustomLogger):
    """Routes requests for the virtual model(s); see the module docstring."""

    def __init__(self, service: RouterService | None = None) -> None:
        super().__init__()
        self.service = service or shared_service()
        self._watching = False

    async def async_pre_call_hook(
        self,
        user_api_key_dict: UserAPIKeyAuth,
        cache: DualCache,
        data: RequestData,
        call_type: CallTypesLiteral,
    ) -> RequestData | None:
        model = data.get("model")
        config = self.service.config
        if call_type not in _CHAT_CALL_TYPES or model not in config.virtual_models:
            return priced_at_zero(data) if is_warm_up(data) else data
        if is_inner(data.get("metadata")):
            raise _bad_request("inner calls may not target a virtual model")
        if not self._watching:
            # The first routed request starts the policy watch and SIGHUP on this loop.
            self._watching = True
            self.service.reloader.start()
        headers = _request_headers(data)
        router = self.service.router
        limits = router.policy.limits
        _check_size(data, headers, limits)
        try:
            check_params(_client_body(data))
            request = ChatRequest.parse(data, headers)
            explore = await self._may_explore()
            started_ns = time.time_ns()
            started = time.perf_counter()
            decision = router.decide_parsed(request, explore=explore)
            decide_s = time.perf_counter() - started
        except InvalidRequest as exc:
            raise _bad_request(str(exc)) from exc
        n_tokens = getattr(decision.features, "n_tokens", 0)
        if limits.max_input_tokens is not None and n_tokens > limits.max_input_tokens:
            raise _bad_request(
                f"the input is ~{n_tokens} tokens, over this router's limit of "
                f"{limits.max_input_tokens} (policy limits.max_input_tokens)"
            )
        if decision.exploration and router.policy.exploration.max_per_hour is not None:
            await self.service.exploration.spend()
        dispatcher = self.service.dispatcher
        pending = Pending(
            decision, None, time.monotonic() - decide_s, started_ns=started_ns, decide_s=decide_s
        )
        route: Route = "rlm" if decision.route == "rlm" else "llm"
        degraded = None
        if route == "rlm":
            pending.slot = await self._admit(pending, request, user_api_key_dict)
            if pending.slot is None:
                route, degraded = "llm", "admission_full"
        self.service.remember(pending)
        # Spans cost ~0.5 ms of CPU: start them on the next loop turn, while the request
        # waits on the provider, not before it is sent.
        asyncio.get_running_loop().call_soon(self._open_trace, pending, str(model), request.stream)
        direct = dispatcher.settings.models.direct.model
        RoutingMetadata(
            decision_id=decision.id,
            route=route,
            reason=reason_of(decision),
            score=decision.score,
            latency_budget_ms=request.latency_budget_ms,
            decide_ms=decide_s * 1000.0,
            degraded=degraded,
            policy_version=decision.policy_version,
        ).attach(data)
        if route == "rlm":
            data["model"] = config.rlm_model
            # A failed RLM run is not worth repeating whole: the engine already retried its
            # own calls and the dispatcher fell back to the direct route where it could.
            # (LiteLLM's router would otherwise rerun it twice on a 5xx.)
            data["num_retries"] = 0
        else:
            data["model"] = direct
            # Only this request falls back to RLM on a context-window error; apps calling the
            # direct group by name keep LiteLLM's behaviour.
            data.setdefault("context_window_fallbacks", [{direct: [config.rlm_model]}])
            # Provider errors on the direct route are retried as the policy says.
            data.setdefault("num_retries", max(0, dispatcher.settings.retry.max_attempts - 1))
        return data

    async def _may_explore(self) -> bool:
        """Whether this decision may explore: the policy's hourly exploration budget (shared
        by the fleet when the instances share state) is not spent."""
        exploration = self.service.router.policy.exploration
        if exploration.rate <= 0.0 or exploration.max_per_hour is None:
            return True
        return await self.service.exploration.has_room(exploration.max_per_hour)

    async def _admit(
        self, pending: Pending, request: ChatRequest, user_api_key_dict: UserAPIKeyAuth
    ) -> Slot | None:
        """A slot for this escalation; None = degrade to direct; 429 when that is not allowed."""
        settings = self.service.router.policy.admission
        wait = settings.queue_ms / 1000.0
        if request.latency_budget_ms is not None:
            wait = min(wait, request.latency_budget_ms / 1000.0)
        slot = await self.service.admission.acquire(_caller(user_api_key_dict), wait_s=wait)
        if slot is not None:
            return slot
        features = pending.decision.features
        fits = getattr(features, "n_tokens", 0) < getattr(features, "context_window", 0)
        if settings.when_full == "direct" and fits:
            log.info("rlm-router: RLM runs at their limit; %s served directly", pending.decision.id)
            return None
        raise _bad_request(
            f"too many RLM runs in flight (policy 'admission' limits; waited {wait:.1f}s for a "
            "slot); retry later",
            status_code=429,
        )

    def _open_trace(self, pending: Pending, model: str, stream: bool) -> None:
        pending.trace = self.service.dispatcher.open_trace(
            pending.decision,
            decide_s=pending.decide_s,
            model=model,
            stream=stream,
            started_ns=pending.started_ns,
        )

    async def async_log_success_event(
        self, kwargs: CallKwargs, response_obj: object, start_time: object, end_time: object
    ) -> None:
        pending = self._direct_pending(kwargs)
        if pending is None:
            return
        usage = getattr(response_obj, "usage", None)
        decision = pending.decision
        routed = of_call(kwargs)
        degraded = routed.degraded if routed is not None else None
        outcome = Outcome(
            route=RouteInfo(
                decision_id=decision.id,
                route="llm",
                decided="rlm" if degraded else "llm",
                reason=reason_of(decision),
                score=decision.score,
                degraded=degraded,
            ),
            cost_usd=_cost(kwargs.get("response_cost")),
            input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            latency_ms=(time.monotonic() - pending.started) * 1000.0,
        )
        end_ns = _epoch_ns(end_time)
        record_direct_call(
            pending,
            DirectCall(
                model=self._direct_group(),
                provider=_text(kwargs.get("custom_llm_provider"))
                or self.service.config.group_provider(self._direct_group()),
                response_model=_text(kwargs.get("model")),
                start_ns=_epoch_ns(start_time),
                end_ns=end_ns,
            ),
            response=response_obj,
            cost_usd=outcome.cost_usd,
        )
        self.service.dispatcher.close_trace(pending.trace, outcome, end_time_ns=end_ns)
        judge = self.service.dispatcher.judge
        messages = kwargs.get("messages")
        if judge is not None and isinstance(messages, list):
            choices = getattr(response_obj, "choices", None) or []
            message = getattr(choices[0], "message", None) if choices else None
            text = getattr(message, "content", None)
            if isinstance(text, str):
                judge.submit(decision.id, messages, text)

    async def async_post_call_failure_hook(
        self,
        request_data: RequestData,
        original_exception: Exception,
        user_api_key_dict: UserAPIKeyAuth,
        traceback_str: str | None = None,
    ) -> None:
        # Once per failed request (a failed attempt that LiteLLM retries or falls back from
        # is not the request's outcome). A request the provider served or failed has no
        # pending entry left: it recorded its own outcome.
        routed = RoutingMetadata.read(request_data.get("metadata"))
        if routed is not None:
            pending = self.service.recall(routed.decision_id)
            if pending is not None:
                await release(pending)
                if routed.route == "llm":
                    # The direct call failed (after LiteLLM's retries): its chat span and
                    # metrics carry error.type, as the "model call errors" panel reads them.
                    record_direct_call(
                        pending,
                        DirectCall(
                            model=self._direct_group(),
                            provider=self.service.config.group_provider(self._direct_group()),
                            start_ns=_decided_ns(pending),
                            end_ns=time.time_ns(),
                        ),
                        error=original_exception,
                    )
                self.service.dispatcher.close_trace(pending.trace, None, original_exception)
        return None

    async def async_post_call_streaming_iterator_hook(
        self,
        user_api_key_dict: UserAPIKeyAuth,
        response: AsyncIterable[ModelResponseStream],
        request_data: RequestData,
    ) -> AsyncGenerator[ModelResponseStream, None]:
        """Retry a routed direct stream that fails before its first content chunk.

        Nothing but the role chunk has reached the client then, so a new attempt (per the
        policy's retry settings, retryable errors only: the one retry loop,
        ``call_with_retries``) is invisible to it; once content has gone out, an error is the
        stream's end as before.
        """
        routed = RoutingMetadata.read(request_data.get("metadata"))
        if routed is None or routed.route != "llm":
            async for chunk in response:
                yield chunk
            return
        stream = response

        async def until_content(
            attempt: int,
        ) -> tuple[list[ModelResponseStream], AsyncIterator[ModelResponseStream] | None]:
            """The chunks up to the first with content (and the rest of the stream), from a
            fresh call after the first attempt."""
            nonlocal stream
            if attempt > 1:
                stream = await proxy_stream(**_retry_kwargs(request_data))
            chunks = aiter(stream)
            held: list[ModelResponseStream] = []
            async for chunk in chunks:
                held.append(chunk)
                if _has_content(chunk):
                    return held, chunks
            return held, None

        try:
            held, rest = await call_with_retries(
                until_content,
                retry=self.service.dispatcher.settings.retry,
                model=str(request_data.get("model")),
            )
        except ProviderError as exc:
            # LiteLLM turns its own exception types into the client's error response.
            raise (exc.__cause__ or exc) from None
        for chunk in held:
            yield chunk
        if rest is not None:
            async for chunk in rest:
                yield chunk

    def _direct_group(self) -> str:
        """The model_list group the direct route is served by."""
        return self.service.dispatcher.settings.models.direct.model

    def _direct_pending(self, kwargs: Mapping[str, object]) -> Pending | None:
        """The hook's pending entry for a finished direct-route call (not inner, not rlm/*)."""
        params = kwargs.get("litellm_params") or {}
        metadata = params.get("metadata") if isinstance(params, Mapping) else None
        if not isinstance(metadata, Mapping) or is_inner(metadata):
            return None
        routed = RoutingMetadata.read(metadata)
        if routed is None or routed.route != "llm":
            return None
        if str(kwargs.get("model", "")).startswith(RLM_PREFIX):
            return None
        if kwargs.get("custom_llm_provider") == "rlm":
            return None
        return self.service.recall(routed.decision_id)

    async def async_post_call_response_headers_hook(
        self,
        data: RequestData,
        user_api_key_dict: UserAPIKeyAuth,
        response: object,
        request_headers: dict[str, str] | None = None,
        litellm_call_info: dict[str, object] | None = None,
    ) -> dict[str, str] | None:
        served = route_of(response)
        routed = RoutingMetadata.read(data.get("metadata"))
        if served is not None:
            headers = RouteInfo(**served).headers()
        elif routed is not None:
            # A direct (or streamed direct) response: the four headers as on every other
            # route, x-rlm-router-fallback "none" included.
            headers = RouteInfo(
                decision_id=routed.decision_id,
                route=routed.route,
                decided=routed.route,
                reason=routed.reason,
                degraded=routed.degraded,
            ).headers()
        else:
            return None
        if routed is not None and routed.policy_version:
            # Which policy decided: behind several instances, whether all serve the same one.
            headers[HEADER_POLICY_VERSION] = routed.policy_version
        return headers
