"""The LiteLLM proxy plugin: a pre-call hook that routes, and a provider that serves ``rlm/*``.

Wiring (``rlm-router serve`` writes it; see ``router.plugin.config``)::

    model_list:
      - model_name: rlm/default
        litellm_params: {model: rlm/default}
    litellm_settings:
      callbacks: ["router.plugin.hook"]
      custom_provider_map:
        - {provider: rlm, custom_handler: router.plugin.rlm_provider}

- ``RouterHook.async_pre_call_hook`` sees requests for a virtual model (default ``auto``),
  decides, and rewrites ``data["model"]`` to the direct model group or to ``rlm/<name>``.
  Other model names pass through untouched. On the direct route it adds a per-request
  context-window fallback to ``rlm/<name>``. The decision rides along in
  ``data["metadata"]["rlm_router"]``.
- ``RLMProvider`` (a ``CustomLLM``) runs the RLM route through ``Dispatcher.serve_rlm``; the
  engine's model calls go through the proxy's own router (``llm_router.acompletion``, so they
  reuse model_list keys), are marked inner in their metadata (no key attribution, not training
  data) and can never target ``rlm/*``. The escalated request's total cost is reported in
  ``_hidden_params["response_cost"]``, which LiteLLM's spend tracking and
  ``x-litellm-response-cost`` use.
- ``RouterHook.async_post_call_response_headers_hook`` adds ``x-rlm-router-*`` headers.

The proxy calls a hook only if it is defined on the registered class itself (LiteLLM checks
the class ``__dict__``), so both hooks are defined here, not inherited.

``hook`` and ``rlm_provider`` are created on first access (PEP 562), so importing this module
does no work; the router and its policy load on the first request.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException

from policies.decision import Decision
from policies.schema import Route
from rlm_core import litellm_api
from rlm_core.errors import ProviderError
from rlm_core.litellm_api import CustomLLM, CustomLLMError, CustomLogger
from router.dispatch import INNER_METADATA_KEY, RLM_PREFIX, Dispatcher, DispatchError
from router.outcome import Outcome, reason_of
from router.params import check_params
from router.plugin.admission import Admission, Caller, LocalAdmission, Slot
from router.plugin.config import ServiceConfig
from router.plugin.reload import PolicyReloader, ReloadResult
from router.request import ChatRequest, InvalidRequest
from router.responses import (
    HEADER_DECISION_ID,
    HEADER_DEGRADED,
    HEADER_REASON,
    HEADER_ROUTE,
    RouteInfo,
    Served,
    generic_chunk,
    model_response,
    route_of,
    split_text,
)
from router.streaming import keepalives

if TYPE_CHECKING:
    from policies.schema import Limits
    from rlm_core.litellm_api import GenericStreamingChunk, ModelResponse

log = logging.getLogger(__name__)

METADATA_KEY = "rlm_router"
_CHAT_CALL_TYPES = frozenset({"completion", "acompletion"})
_MAX_PENDING_DECISIONS = 4096


@dataclass
class _Pending:
    """A routed request between the hook and whoever serves it."""

    decision: Decision
    trace: Any  # telemetry.RequestTrace | None
    started: float  # time.monotonic() when the hook saw the request
    slot: Slot | None = None  # the admitted RLM run's slot, released when the run ends


class RouterService:
    """Process-wide plugin state: config, router and dispatcher, built on first use."""

    def __init__(
        self, config: ServiceConfig | None = None, *, admission: Admission | None = None
    ) -> None:
        self._config = config
        self._admission = admission
        self._reloader: PolicyReloader | None = None
        self._lock = threading.Lock()
        self._router: Any = None
        self._dispatcher: Dispatcher | None = None
        self._telemetry: Any = None
        self._telemetry_loaded = False
        # decision id -> the hook's decision and trace, for the provider or the log events.
        self._pending: OrderedDict[str, _Pending] = OrderedDict()

    @property
    def config(self) -> ServiceConfig:
        if self._config is None:
            self._config = ServiceConfig.from_env()
        return self._config

    @property
    def router(self) -> Any:
        if self._router is None:
            with self._lock:
                if self._router is None:
                    from router import Router

                    path = self.config.policy_path
                    self._router = self._fitted(Router.from_config(str(path) if path else None))
        return self._router

    def _fitted(self, router: Any) -> Any:
        """``router`` measuring inputs against the window of the config's direct group."""
        from router import Router

        config = self.config
        window = config.group_window(config.direct) if config.direct else None
        if window is None:
            return router
        # Features measure the input against the window of the model that actually serves
        # the direct route here: the config's group.
        windows = {**router.windows, router.policy.models.direct.model: window}
        return Router(router.policy, router.classifier, windows=windows, warning=router.warning)

    def reload(self, trigger: str) -> ReloadResult:
        """Re-read the policy file and classifier; on failure keep serving the last good one.

        Requests in flight finish on the policy they started with."""
        router = self.router
        ok = router.reload(self.config.policy_path)
        if ok:
            self._router = self._fitted(router)
            self._dispatcher = None  # rebuilt from the new policy on next use
            if isinstance(self._admission, LocalAdmission):
                self._admission.settings = router.policy.admission
        version = self.router.policy_version
        error = None if ok else router.warning
        if ok:
            log.info("rlm-router: policy reloaded (%s): now %s", trigger, version)
        else:
            log.warning("rlm-router: policy reload (%s) failed: %s", trigger, error)
        metrics = getattr(self.telemetry, "metrics", None)
        if metrics is not None:
            with contextlib.suppress(Exception):
                metrics.policy_reload(ok=ok, trigger=trigger)
        return ReloadResult(ok=ok, policy_version=version, error=error)

    def watched_files(self) -> list[Path]:
        """The files a reload reads: the policy file and its classifier artifact."""
        policy = self.router.policy
        files = [policy.source] if policy.source is not None else []
        return [*files, policy.classifier.artifact_path()]

    @property
    def reloader(self) -> PolicyReloader:
        if self._reloader is None:
            self._reloader = PolicyReloader(self.reload, self.watched_files)
        return self._reloader

    @property
    def dispatcher(self) -> Dispatcher:
        if self._dispatcher is None:
            from router.dispatch_settings import DispatchSettings

            config = self.config
            settings = DispatchSettings.from_policy(
                self.router.policy,
                direct=config.direct,
                rlm_root=config.rlm_root,
                rlm_sub=config.rlm_sub,
                rlm_name=config.rlm_name,
                proxy=True,
            )
            self._dispatcher = Dispatcher(
                decide=self.router.decide,
                decide_parsed=self.router.decide_parsed,
                settings=settings,
                completion=_proxy_completion,
                telemetry=self.telemetry,
            )
        return self._dispatcher

    @property
    def telemetry(self) -> Any:
        """The router's telemetry, else one configured from the OTEL_* environment."""
        if not self._telemetry_loaded:
            self._telemetry_loaded = True
            self._telemetry = self.router.telemetry
            if self._telemetry is None:
                try:
                    from telemetry import Telemetry

                    self._telemetry = Telemetry.from_env()
                except Exception:  # telemetry must never stop the proxy from serving
                    log.warning("rlm-router: telemetry disabled", exc_info=True)
        return self._telemetry

    @property
    def admission(self) -> Admission:
        """Bounds concurrent RLM runs (``LocalAdmission`` from the policy unless given one)."""
        if self._admission is None:
            self._admission = LocalAdmission(self.router.policy.admission)
        return self._admission

    def remember(self, pending: _Pending) -> None:
        self._pending[pending.decision.id] = pending
        while len(self._pending) > _MAX_PENDING_DECISIONS:
            _, dropped = self._pending.popitem(last=False)
            _release_soon(dropped)
            self.dispatcher.close_trace(dropped.trace, None)

    def recall(self, decision_id: object) -> _Pending | None:
        if not isinstance(decision_id, str):
            return None
        return self._pending.pop(decision_id, None)


async def _proxy_completion(**kwargs: Any) -> Any:
    """Model calls through the running proxy's router (its model_list, keys and retries)."""
    from litellm.proxy import proxy_server

    llm_router = proxy_server.llm_router
    if llm_router is None:
        return await litellm_api.acompletion(**kwargs)
    return await llm_router.acompletion(**kwargs)


def _client_body(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """The body as the client sent it (LiteLLM rewrites some fields of ``data``, e.g.
    ``metadata``, before the hook runs), else ``data`` itself."""
    request = data.get("proxy_server_request")
    body = request.get("body") if isinstance(request, Mapping) else None
    return body if isinstance(body, Mapping) else data


def _request_headers(data: Mapping[str, Any]) -> dict[str, str]:
    request = data.get("proxy_server_request") or {}
    headers = request.get("headers") if isinstance(request, Mapping) else None
    return dict(headers) if isinstance(headers, Mapping) else {}


def _bad_request(message: str, status_code: int = 400) -> HTTPException:
    return HTTPException(status_code=status_code, detail={"error": f"rlm-router: {message}"})


def _release_soon(pending: _Pending) -> None:
    """Release a pending request's admission slot from a synchronous path."""
    slot, pending.slot = pending.slot, None
    if slot is not None:
        with contextlib.suppress(RuntimeError):  # no running loop: nothing to hand back to
            asyncio.get_running_loop().create_task(slot.release())


async def _release(pending: _Pending) -> None:
    slot, pending.slot = pending.slot, None
    if slot is not None:
        await slot.release()


def _request_bytes(data: Mapping[str, Any], headers: Mapping[str, str]) -> int | None:
    """The body's size from its Content-Length (None when the proxy did not pass it)."""
    for key, value in headers.items():
        if key.lower() == "content-length":
            try:
                return int(value)
            except (TypeError, ValueError):
                return None
    return None


def _check_size(data: Mapping[str, Any], headers: Mapping[str, str], limits: Limits) -> None:
    """413/400 for a request over the policy's size limits, before any parsing work."""
    size, most = _request_bytes(data, headers), limits.max_request_bytes
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


def _metadata_check(body: bytes) -> str | None:
    """The raw body's ``metadata`` for a virtual model must be an object (LiteLLM drops any
    other value before the hook runs, so only the raw body can tell)."""
    if b'"metadata"' not in body:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None  # LiteLLM answers malformed JSON itself
    if not isinstance(data, dict) or data.get("model") not in _SERVICE.config.virtual_models:
        return None
    try:
        check_params({"metadata": data.get("metadata")})
    except InvalidRequest as exc:
        return f"rlm-router: {exc}"
    return None


def _retryable(exc: BaseException) -> bool:
    """The one retryability rule (``ProviderError.retryable``) for a LiteLLM stream error."""
    return bool(getattr(litellm_api.map_error(exc), "retryable", False))


def _has_content(chunk: Any) -> bool:
    """Whether a stream chunk carries something the client would see beyond the role."""
    for choice in getattr(chunk, "choices", None) or ():
        delta = getattr(choice, "delta", None)
        if getattr(delta, "content", None) or getattr(delta, "tool_calls", None):
            return True
        if getattr(choice, "finish_reason", None):
            return True
    return False


def _retry_kwargs(request_data: Mapping[str, Any]) -> dict[str, Any]:
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


def _routed_metadata(kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The hook's routing record in a finished call's LiteLLM kwargs ({} if none)."""
    params = kwargs.get("litellm_params") or {}
    metadata = params.get("metadata") if isinstance(params, Mapping) else None
    routed = metadata.get(METADATA_KEY) if isinstance(metadata, Mapping) else None
    return routed if isinstance(routed, Mapping) else {}


def _caller(user_api_key_dict: Any) -> Caller:
    """The key and team LiteLLM's auth resolved for this request (for per-key admission)."""

    def text(name: str) -> str | None:
        value = getattr(user_api_key_dict, name, None)
        return value if isinstance(value, str) and value else None

    return Caller(key=text("token") or text("key_alias"), team=text("team_id"))


class RouterHook(CustomLogger):
    """Routes requests for the virtual model(s); see the module docstring."""

    def __init__(self, service: RouterService | None = None) -> None:
        super().__init__()
        self.service = service or _SERVICE
        self._watching = False

    async def async_pre_call_hook(
        self,
        user_api_key_dict: Any,
        cache: Any,
        data: dict[str, Any],
        call_type: str,
    ) -> dict[str, Any] | None:
        model = data.get("model")
        config = self.service.config
        if call_type not in _CHAT_CALL_TYPES or model not in config.virtual_models:
            return data
        if INNER_METADATA_KEY in (data.get("metadata") or {}):
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
            started = time.perf_counter()
            decision = router.decide_parsed(request)
            decide_s = time.perf_counter() - started
        except InvalidRequest as exc:
            raise _bad_request(str(exc)) from exc
        n_tokens = getattr(decision.features, "n_tokens", 0)
        if limits.max_input_tokens is not None and n_tokens > limits.max_input_tokens:
            raise _bad_request(
                f"the input is ~{n_tokens} tokens, over this router's limit of "
                f"{limits.max_input_tokens} (policy limits.max_input_tokens)"
            )
        dispatcher = self.service.dispatcher
        pending = _Pending(decision, None, time.monotonic() - decide_s)
        route = "rlm" if decision.route == "rlm" else "llm"
        degraded = None
        if route == "rlm":
            pending.slot = await self._admit(pending, request, user_api_key_dict)
            if pending.slot is None:
                route, degraded = "llm", "admission_full"
        self.service.remember(pending)
        # Spans cost ~0.5 ms of CPU: start them on the next loop turn, while the request
        # waits on the provider, not before it is sent.
        asyncio.get_running_loop().call_soon(
            self._open_trace, pending, decide_s, str(model), request.stream
        )
        direct = dispatcher.settings.models.direct.model
        metadata = data.get("metadata")
        if not isinstance(metadata, dict):
            metadata = data["metadata"] = {}
        metadata[METADATA_KEY] = {
            "decision_id": decision.id,
            "route": route,
            "reason": reason_of(decision),
            "score": decision.score,
            "latency_budget_ms": request.latency_budget_ms,
            "decide_ms": decide_s * 1000.0,
            "degraded": degraded,
        }
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

    async def _admit(
        self, pending: _Pending, request: ChatRequest, user_api_key_dict: Any
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

    def _open_trace(self, pending: _Pending, decide_s: float, model: str, stream: bool) -> None:
        pending.trace = self.service.dispatcher.open_trace(
            pending.decision, decide_s=decide_s, model=model, stream=stream
        )

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        pending = self._direct_pending(kwargs)
        if pending is None:
            return
        usage = getattr(response_obj, "usage", None)
        decision = pending.decision
        routed = _routed_metadata(kwargs)
        degraded = routed.get("degraded")
        outcome = Outcome(
            route=RouteInfo(
                decision_id=decision.id,
                route="llm",
                decided="rlm" if degraded else "llm",
                reason=reason_of(decision),
                score=decision.score,
                degraded=degraded if isinstance(degraded, str) else None,
            ),
            cost_usd=float(kwargs.get("response_cost") or 0.0),
            input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            latency_ms=(time.monotonic() - pending.started) * 1000.0,
        )
        self.service.dispatcher.close_trace(pending.trace, outcome)

    async def async_post_call_failure_hook(
        self,
        request_data: dict[str, Any],
        original_exception: Exception,
        user_api_key_dict: Any,
        traceback_str: str | None = None,
    ) -> Any:
        # Once per failed request (a failed attempt that LiteLLM retries or falls back from
        # is not the request's outcome). A request the provider served or failed has no
        # pending entry left: it recorded its own outcome.
        routed = (request_data.get("metadata") or {}).get(METADATA_KEY)
        if isinstance(routed, Mapping):
            pending = self.service.recall(routed.get("decision_id"))
            if pending is not None:
                await _release(pending)
                self.service.dispatcher.close_trace(pending.trace, None, original_exception)
        return None

    async def async_post_call_streaming_iterator_hook(
        self, user_api_key_dict: Any, response: Any, request_data: dict[str, Any]
    ) -> AsyncGenerator[Any, None]:
        """Retry a routed direct stream that fails before its first content chunk.

        Nothing but the role chunk has reached the client then, so a new attempt (per the
        policy's retry settings, retryable errors only) is invisible to it; once content has
        gone out, an error is the stream's end as before.
        """
        routed = (request_data.get("metadata") or {}).get(METADATA_KEY)
        if not isinstance(routed, Mapping) or routed.get("route") != "llm":
            async for chunk in response:
                yield chunk
            return
        retry = self.service.dispatcher.settings.retry
        held: list[Any] | None = []
        for attempt in range(1, max(1, retry.max_attempts) + 1):
            try:
                async for chunk in response:
                    if held is None:
                        yield chunk
                        continue
                    held.append(chunk)
                    if _has_content(chunk):
                        for early in held:
                            yield early
                        held = None
                for early in held or ():
                    yield early
                return
            except Exception as exc:
                if held is None or attempt >= retry.max_attempts or not _retryable(exc):
                    raise
                delay = retry.backoff(attempt, None)
                log.info(
                    "rlm-router: stream failed before content (%s); retry in %.2fs", exc, delay
                )
                await asyncio.sleep(delay)
                response = await _proxy_completion(**_retry_kwargs(request_data))
                held = []

    def _direct_pending(self, kwargs: Mapping[str, Any]) -> _Pending | None:
        """The hook's pending entry for a finished direct-route call (not inner, not rlm/*)."""
        params = kwargs.get("litellm_params") or {}
        metadata = params.get("metadata") if isinstance(params, Mapping) else None
        if not isinstance(metadata, Mapping) or INNER_METADATA_KEY in metadata:
            return None
        routed = metadata.get(METADATA_KEY)
        if not isinstance(routed, Mapping) or routed.get("route") != "llm":
            return None
        if str(kwargs.get("model", "")).startswith(RLM_PREFIX):
            return None
        if kwargs.get("custom_llm_provider") == "rlm":
            return None
        return self.service.recall(routed.get("decision_id"))

    async def async_post_call_response_headers_hook(
        self,
        data: dict[str, Any],
        user_api_key_dict: Any,
        response: Any,
        request_headers: dict[str, str] | None = None,
        litellm_call_info: dict[str, Any] | None = None,
    ) -> dict[str, str] | None:
        served = route_of(response)
        if served is not None:
            return RouteInfo(**served).headers()
        routed = (data.get("metadata") or {}).get(METADATA_KEY)
        if not isinstance(routed, Mapping):
            return None
        headers = {
            HEADER_ROUTE: str(routed.get("route")),
            HEADER_DECISION_ID: str(routed.get("decision_id")),
            HEADER_REASON: RouteInfo(
                decision_id="", route="llm", decided="llm", reason=str(routed.get("reason"))
            ).headers()[HEADER_REASON],
        }
        if routed.get("degraded"):
            headers[HEADER_DEGRADED] = str(routed["degraded"])
        return headers


class RLMProvider(CustomLLM):
    """Serves ``rlm/<name>``: the RLM route with its fallbacks, through ``Dispatcher``."""

    def __init__(self, service: RouterService | None = None) -> None:
        super().__init__()
        self.service = service or _SERVICE

    def _prepare(
        self, messages: list[Any], optional_params: Mapping[str, Any], litellm_params: Any
    ) -> tuple[ChatRequest, _Pending, Route, dict[str, Any]]:
        metadata = (litellm_params or {}).get("metadata") or {}
        routed = metadata.get(METADATA_KEY) if isinstance(metadata, Mapping) else None
        routed = routed if isinstance(routed, Mapping) else {}
        body: dict[str, Any] = {"messages": messages}
        budget = routed.get("latency_budget_ms")
        if budget is not None:
            body["metadata"] = {"latency_budget_ms": budget}
        try:
            request = ChatRequest.parse(body)
        except InvalidRequest as exc:
            raise CustomLLMError(status_code=400, message=f"rlm-router: {exc}") from exc
        pending = self.service.recall(routed.get("decision_id"))
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
            pending = _Pending(decision, trace, started)
        # The hook chose "llm" and LiteLLM fell back here: a context-window error.
        decided_route: Route = "llm" if routed.get("route") == "llm" else "rlm"
        passthrough = {
            k: v
            for k, v in optional_params.items()
            if k in ("temperature", "max_tokens", "max_completion_tokens", "top_p", "stop", "seed")
        }
        return request, pending, decided_route, passthrough

    async def acompletion(
        self,
        model: str,
        messages: list[Any],
        api_base: str,
        custom_prompt_dict: dict[str, Any],
        model_response: ModelResponse,
        print_verbose: Any,
        encoding: Any,
        api_key: Any,
        logging_obj: Any,
        optional_params: dict[str, Any],
        acompletion: Any = None,
        litellm_params: Any = None,
        logger_fn: Any = None,
        headers: Any = None,
        timeout: Any = None,  # noqa: ASYNC109 (LiteLLM's signature)
        client: Any = None,
    ) -> ModelResponse:
        request, pending, decided, kwargs = self._prepare(messages, optional_params, litellm_params)
        try:
            await self._hold_slot(pending, request)
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
            await _release(pending)
        return _fill(model_response, served, outcome.route)

    async def _hold_slot(self, pending: _Pending, request: ChatRequest) -> None:
        """An admission slot for a run the hook did not admit (a fallback, or rlm/* named)."""
        if pending.slot is not None:
            return
        settings = self.service.router.policy.admission
        wait = settings.queue_ms / 1000.0
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
        messages: list[Any],
        api_base: str,
        custom_prompt_dict: dict[str, Any],
        model_response: ModelResponse,
        print_verbose: Any,
        encoding: Any,
        api_key: Any,
        logging_obj: Any,
        optional_params: dict[str, Any],
        acompletion: Any = None,
        litellm_params: Any = None,
        logger_fn: Any = None,
        headers: Any = None,
        timeout: Any = None,  # noqa: ASYNC109 (LiteLLM's signature)
        client: Any = None,
    ) -> AsyncIterator[GenericStreamingChunk]:
        request, pending, decided, kwargs = self._prepare(messages, optional_params, litellm_params)
        dispatcher = self.service.dispatcher
        try:
            await self._hold_slot(pending, request)
        except BaseException:
            await _release(pending)
            raise
        # An early chunk makes LiteLLM open the response at once; keep-alives follow.
        try:
            yield generic_chunk(keepalive=True)
        except BaseException:
            await _release(pending)
            raise
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
            await _release(pending)


def _provider_error(exc: DispatchError | ProviderError) -> CustomLLMError:
    """What LiteLLM answers the client with: our status, or the provider's (502 if none)."""
    status = exc.status_code if isinstance(exc.status_code, int) else 502
    return CustomLLMError(status_code=status, message=str(exc))


def _price_stream(logging_obj: Any, served: Served) -> None:
    """Make LiteLLM bill a streamed RLM answer at its total cost.

    A streamed response's cost is computed by LiteLLM from the final usage and the model's
    prices, and ``rlm/*`` has none (so 0); LiteLLM adds ``additional_response_cost`` to it.
    """
    details = getattr(logging_obj, "model_call_details", None)
    if isinstance(details, dict):
        details["additional_response_cost"] = served.cost_usd


def _fill(response: ModelResponse, served: Any, route: RouteInfo) -> ModelResponse:
    return model_response(served, route, into=response)


def _shared_service() -> RouterService:
    """One service per process, even if LiteLLM loads this file as two module objects.

    (LiteLLM execs a callback's module from a file next to the config when one exists, once
    per reference, so the hook and the provider could otherwise hold different services.)
    """
    from router.plugin import config as service_config

    service = service_config.PROCESS_STATE.get("plugin_service")
    if not isinstance(service, RouterService):
        service = RouterService()
        service_config.PROCESS_STATE["plugin_service"] = service
    return service


_SERVICE = _shared_service()
_INSTANCES: dict[str, Any] = {}
_FACTORIES: dict[str, type[RouterHook] | type[RLMProvider]] = {
    "hook": RouterHook,
    "rlm_provider": RLMProvider,
}


def __getattr__(name: str) -> Any:
    factory = _FACTORIES.get(name)
    if factory is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _INSTANCES:
        instance = factory()
        # LiteLLM resolves these while loading its config: load ours now too, so a bad
        # rlm_router section or policy stops the proxy at startup with the reason.
        try:
            _ = instance.service.dispatcher
        except Exception as exc:
            raise RuntimeError(f"rlm-router plugin cannot start: {exc}") from exc
        _INSTANCES[name] = instance
        if name == "hook":  # the proxy loads the hook at startup: add POST /rlm-router/feedback
            from router.plugin import disconnect, reload
            from router.plugin.feedback import install_on_running_proxy

            install_on_running_proxy(lambda: _SERVICE.telemetry)
            reload.install_on_running_proxy(
                lambda: _SERVICE.reloader, lambda: _SERVICE.router.policy_version
            )
            # A client that goes away cancels its RLM run, its sub-calls and its workers.
            disconnect.install_on_running_proxy(_metadata_check)
    return _INSTANCES[name]
