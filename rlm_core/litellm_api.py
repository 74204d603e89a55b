"""The provider boundary: the one module of the product that imports litellm.

Everything that reaches a model or asks litellm about one goes through here: the default
completion callable (direct, RLM root and sub-calls, streams), context windows, prices, model
registration, and the types of the response objects litellm's callers expect. litellm's
exceptions are mapped here, once, to ``rlm_core.errors.ProviderError`` and its kinds (``raise
… from exc``, as httpx maps its transport's errors), and so is the one retryability rule:
``ProviderError.retryable``.

litellm is imported on first use (``import litellm`` costs ~3 s), after the offline defaults
(``rlm_core.env``) and with its stdout banners switched off — not at import time of any of our
packages. (The LiteLLM proxy imports litellm itself; ``rlm-router serve`` gives it the same
defaults through its environment.)
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

from rlm_router.rlm_core.env import apply_offline_defaults
from rlm_router.rlm_core.errors import (
    ContextWindowExceeded,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    RLMRouterError,
)

if TYPE_CHECKING:
    from litellm.integrations.custom_logger import CustomLogger as CustomLogger
    from litellm.llms.custom_llm import CustomLLM as CustomLLM
    from litellm.llms.custom_llm import CustomLLMError as CustomLLMError
    from litellm.types.utils import GenericStreamingChunk as GenericStreamingChunk
    from litellm.types.utils import ModelResponse, ModelResponseStream

# An async callable with litellm.acompletion's signature (the proxy passes its router's).
Completion = Callable[..., Awaitable[Any]]

_RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
_CONTEXT_WINDOW_MARKERS = ("contextwindowexceeded", "context_length_exceeded")
_lock = threading.Lock()
_module: ModuleType | None = None


def litellm() -> ModuleType:
    """The litellm module, imported once with the offline defaults applied first."""
    global _module
    if _module is None:
        with _lock:
            if _module is None:
                apply_offline_defaults()
                import litellm as module

                # Without this litellm prints "Provider List: …" / "Give Feedback …" banners on
                # stdout for unknown models and exceptions, which corrupts `--json` output.
                module.suppress_debug_info = True
                _module = module
    return _module


# The base classes the proxy plugin registers with LiteLLM, resolved on first access (PEP 562)
# so that importing them applies the offline defaults before litellm loads.
_PROXY_CLASSES = {
    "CustomLogger": "litellm.integrations.custom_logger",
    "CustomLLM": "litellm.llms.custom_llm",
    "CustomLLMError": "litellm.llms.custom_llm",
}


def __getattr__(name: str) -> Any:
    module = _PROXY_CLASSES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    litellm()
    return getattr(importlib.import_module(module), name)


def warm_up() -> None:
    """Load what litellm loads lazily on its first call, without a network call: one mocked
    completion (its response building, logging and cost paths) and its default tokenizer."""
    module = litellm()
    messages = [{"role": "user", "content": "warm-up"}]
    with contextlib.suppress(Exception):
        module.completion(model="openai/warm-up", messages=messages, mock_response="ok")
    with contextlib.suppress(Exception):
        module.token_counter(model="gpt-4o", messages=messages)


async def acompletion(**kwargs: Any) -> Any:
    """``litellm.acompletion`` (the default ``Completion``); errors are not mapped here, the
    caller's retry loop maps them (so injected completion callables are treated alike)."""
    return await litellm().acompletion(**kwargs)


# ── errors ────────────────────────────────────────────────────────────────────────────────


def map_error(
    exc: BaseException, *, model: str | None = None, api_base: str | None = None
) -> BaseException:
    """The ``ProviderError`` kind for an exception raised by a completion callable.

    Our own errors (and cancellation) are returned unchanged; anything else is a failed
    provider call. Raise the result ``from exc``. The message names the model and, when
    given, the URL it was called at ("Connection error" alone does not say where).
    """
    if isinstance(exc, RLMRouterError | asyncio.CancelledError) or not isinstance(exc, Exception):
        return exc
    name = exc.error_type if isinstance(exc, LeanHTTPError) else type(exc).__name__
    where = f"{model} at {api_base}" if model and api_base else model or api_base
    prefix = f"{where}: " if where else ""
    message = f"{prefix}{name}: {exc}"[:2000]
    status = _status(exc)
    kind: type[ProviderError]
    if _is_missing_credentials(exc):
        # The provider SDK refused before any request (litellm reports it as a 500): retrying
        # cannot help, so it is a rejection, and the message says what to set.
        message = (
            f"{prefix}no API key: set the provider's key variable (e.g. OPENAI_API_KEY), "
            f"api_key_env of the model in the policy, or --api-key ({name}: {exc})"
        )[:2000]
        return ProviderRejected(message, status_code=401, error_type="MissingCredentials")
    if _is_context_window(exc):
        kind = ContextWindowExceeded
    elif _is_timeout(exc):
        kind = ProviderTimeout
    elif status == 429 or _isinstance_litellm(exc, "RateLimitError"):
        kind = RateLimited
    elif _is_unavailable(exc, status):
        kind = ProviderUnavailable
    elif status is not None and 400 <= status < 500:
        kind = ProviderRejected
    else:
        kind = ProviderError
    return kind(message, status_code=status, error_type=name, retry_after_s=_retry_after(exc))


def _isinstance_litellm(exc: BaseException, *names: str) -> bool:
    module = sys.modules.get("litellm")  # an exception of litellm's means litellm is loaded
    if module is None:
        return False
    classes = tuple(c for c in (getattr(module, n, None) for n in names) if isinstance(c, type))
    return bool(classes) and isinstance(exc, classes)


def _is_context_window(exc: BaseException) -> bool:
    if _isinstance_litellm(exc, "ContextWindowExceededError"):
        return True
    text = f"{type(exc).__name__} {exc}".lower()
    return any(marker in text for marker in _CONTEXT_WINDOW_MARKERS)


def _is_missing_credentials(exc: BaseException) -> bool:
    text = str(exc)
    return "Missing credentials" in text or "api_key client option must be set" in text


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or _isinstance_litellm(exc, "Timeout")


def _is_unavailable(exc: BaseException, status: int | None) -> bool:
    if isinstance(exc, ConnectionError) or _isinstance_litellm(
        exc,
        "APIConnectionError",
        "InternalServerError",
        "ServiceUnavailableError",
        "BadGatewayError",
    ):
        return True
    if status is not None:
        return status in _RETRYABLE_STATUS
    return type(exc).__name__ in {"APIConnectionError", "APITimeoutError"}


def _status(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) else None


def _retry_after(exc: BaseException) -> float | None:
    """The provider's requested wait, from the error's response headers (litellm keeps them in
    ``litellm_response_headers``; its ``response`` is often a stand-in without headers)."""
    headers = (
        getattr(exc, "litellm_response_headers", None)
        or getattr(getattr(exc, "response", None), "headers", None)
        or (exc.headers if isinstance(exc, LeanHTTPError) else None)
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


def timeout_error(message: str, *, model: str) -> ProviderTimeout:
    """The error of a call we stopped at the caller's deadline."""
    return ProviderTimeout(f"{model}: {message}", status_code=408, error_type="Timeout")


# ── models: windows, prices, registration ────────────────────────────────────────────────


def model_info(model: str) -> dict[str, Any] | None:
    """litellm's model info (window, prices, provider) without its unset keys; None when
    litellm does not know the model."""
    try:
        info = litellm().get_model_info(model)
    except Exception:  # litellm raises a bare Exception for unknown models
        return None
    return {key: value for key, value in dict(info).items() if value is not None}


def context_window(model: str) -> int | None:
    """The model's input window in tokens from litellm's model info (None when unknown)."""
    info = model_info(model)
    if info is None:
        return None
    window = info.get("max_input_tokens") or info.get("max_tokens")
    return int(window) if window else None


def register_models(info: Mapping[str, Mapping[str, Any]]) -> None:
    """Tell litellm the windows and prices of models it does not know."""
    litellm().register_model({name: dict(entry) for name, entry in info.items()})


def response_cost(response: Any) -> float:
    """USD cost of a litellm response: the provider's/litellm's own figure when it has one,
    else computed from litellm's cost map; 0.0 for a model the map does not know."""
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost")
    if isinstance(cost, int | float) and cost > 0:
        return float(cost)
    try:
        return float(litellm().completion_cost(completion_response=response) or 0.0)
    except Exception:
        return 0.0


def token_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """USD cost of a token count on ``model`` from litellm's cost map (0.0 when unknown)."""
    try:
        prompt, completion = litellm().cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
        return float(prompt + completion)
    except Exception:
        return 0.0


# ── response objects ──────────────────────────────────────────────────────────────────────


def new_model_response() -> ModelResponse:
    """An empty ``ModelResponse`` (one choice) to fill in."""
    litellm()
    from litellm.types.utils import ModelResponse

    return ModelResponse()


def new_usage(input_tokens: int, output_tokens: int) -> Any:
    """litellm's ``Usage`` for a token count."""
    litellm()
    from litellm.types.utils import Usage

    return Usage(
        prompt_tokens=input_tokens,
        completion_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )


def new_stream_chunk(
    *, id: str, created: int, model: str, delta: Mapping[str, Any], finish_reason: str | None
) -> ModelResponseStream:
    """One ``ModelResponseStream`` chunk with a single choice."""
    litellm()
    from litellm.types.utils import Delta, ModelResponseStream, StreamingChoices

    return ModelResponseStream(
        id=id,
        created=created,
        model=model,
        choices=[StreamingChoices(index=0, delta=Delta(**delta), finish_reason=finish_reason)],
    )


# ── the engine's lean call path ───────────────────────────────────────────────────────────
#
# An RLM request makes hundreds of model calls; through ``litellm.acompletion`` each costs
# ~4 ms of host CPU (its logging payload, cost calculation, response building, httpx/openai
# client layers): twice the official engine's per call. For the endpoints that speak the
# OpenAI chat API, the engine's calls inside a run scope (``engine_call_scope``) go instead
# straight to ``{api_base}/chat/completions`` over one aiohttp session per run (~0.15 ms a
# call), with the route (provider, URL, key) resolved by litellm once per model and the
# price read from litellm's cost map once per model. Everything else still goes through
# litellm: other providers, parameters the lean path does not send, and any run while a
# LiteLLM logger is registered (``litellm.callbacks`` and friends), so the loggers a user set
# up keep seeing the inner calls with their tags.

# Providers whose chat endpoint is OpenAI's API at the base litellm resolves for them.
_LEAN_PROVIDERS = frozenset(
    {
        "openai", "hosted_vllm", "lm_studio", "llamafile", "groq", "deepseek", "together_ai",
        "fireworks_ai", "openrouter", "deepinfra", "xai", "cerebras", "mistral", "nvidia_nim",
        "sambanova",
    }
)  # fmt: skip
_LEAN_KWARGS = frozenset(
    {"model", "messages", "api_base", "api_key", "num_retries", "max_retries", "timeout",
     "metadata", "max_tokens"}
)  # fmt: skip
# OpenAI's reasoning models take max_completion_tokens; litellm maps it, the lean path not.
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
_CALLBACK_LISTS = (
    "callbacks", "success_callback", "failure_callback", "_async_success_callback",
    "_async_failure_callback", "input_callback", "_async_input_callback",
)  # fmt: skip
_OPENAI_BASE = "https://api.openai.com/v1"


@dataclass(frozen=True, slots=True)
class _Route:
    url: str
    headers: Mapping[str, str]
    model: str  # the name the endpoint knows
    provider: str
    price_in: float | None  # USD per token; None: price each call through litellm
    price_out: float | None
    priced_as: str


_routes: dict[tuple[str, str | None, str | None], _Route | None] = {}
_scope: contextvars.ContextVar[_CallScope | None] = contextvars.ContextVar(
    "rlm_core_engine_call_scope", default=None
)


class _CallScope:
    """One run's HTTP session (made on the first lean call, closed with the scope)."""

    def __init__(self) -> None:
        self.session: Any = None

    def http(self) -> Any:
        if self.session is None:
            import aiohttp

            # No connection cap here: the run's ledger bounds the calls in flight.
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self.session


@asynccontextmanager
async def engine_call_scope() -> AsyncIterator[None]:
    """The scope of one engine run: ``engine_acompletion`` calls inside share one session."""
    scope = _CallScope()
    token = _scope.set(scope)
    try:
        yield
    finally:
        _scope.reset(token)
        if scope.session is not None:
            await scope.session.close()


async def engine_acompletion(**kwargs: Any) -> Any:
    """The engine's default completion: the lean path when it applies, else litellm's."""
    scope = _scope.get()
    route = _lean_route(kwargs) if scope is not None else None
    if route is None or scope is None:
        return await acompletion(**kwargs)
    return await _lean_call(scope, route, kwargs)


def _lean_route(kwargs: Mapping[str, Any]) -> _Route | None:
    if not _LEAN_KWARGS.issuperset(kwargs):
        return None
    module = litellm()
    if any(getattr(module, name, None) for name in _CALLBACK_LISTS):
        return None
    model = str(kwargs.get("model", ""))
    key = (model, kwargs.get("api_base"), kwargs.get("api_key"))
    if key not in _routes:
        _routes[key] = _resolve(*key)
    route = _routes[key]
    reasoning = route is not None and route.model.startswith(_REASONING_PREFIXES)
    if reasoning and route is not None and route.provider == "openai" and "max_tokens" in kwargs:
        return None
    return route


def _resolve(model: str, api_base: str | None, api_key: str | None) -> _Route | None:
    """The lean route of a model (None: litellm's path), resolved once per process."""
    import os

    try:
        name, provider, key, base = litellm().get_llm_provider(
            model, api_base=api_base, api_key=api_key
        )
    except Exception:
        return None
    if provider not in _LEAN_PROVIDERS:
        return None
    base = base or (_OPENAI_BASE if provider == "openai" else None)
    key = key or (os.environ.get("OPENAI_API_KEY") if provider == "openai" else None)
    if not base or not key:
        return None
    price_in, price_out = _linear_prices(model)
    return _Route(
        url=base.rstrip("/") + "/chat/completions",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        model=name,
        provider=provider,
        price_in=price_in,
        price_out=price_out,
        priced_as=model,
    )


def _linear_prices(model: str) -> tuple[float | None, float | None]:
    """Per-token prices when the model's price is linear (no tiers), from one lookup."""
    try:
        info = litellm().get_model_info(model)
    except Exception:
        return 0.0, 0.0  # unknown to the cost map: litellm would price it at 0 too
    if any(k.startswith(("input_cost_per_token_above", "output_cost_per_token_above"))
           and info.get(k) for k in info):  # fmt: skip
        return None, None
    return float(info.get("input_cost_per_token") or 0.0), float(
        info.get("output_cost_per_token") or 0.0
    )


@dataclass(slots=True)
class _Message:
    content: str | None
    role: str = "assistant"


@dataclass(slots=True)
class _Choice:
    message: _Message
    finish_reason: str | None


@dataclass(slots=True)
class _Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass(slots=True)
class LeanResponse:
    """What the engine reads of a chat completion (the lean path's reply)."""

    model: str
    choices: list[_Choice]
    usage: _Usage
    _hidden_params: dict[str, Any]


# litellm's exception names for the statuses, so error.type reads the same on both paths.
_ERROR_TYPES = {
    400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
    404: "NotFoundError", 408: "Timeout", 422: "UnprocessableEntityError",
    429: "RateLimitError", 500: "InternalServerError", 502: "BadGatewayError",
    503: "ServiceUnavailableError",
}  # fmt: skip


class LeanHTTPError(Exception):
    """A non-2xx reply on the lean path (mapped by ``map_error`` like litellm's errors)."""

    def __init__(self, message: str, *, status_code: int, headers: Mapping[str, str]) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.headers = headers
        lowered = message.lower()
        if status_code == 400 and any(m in lowered for m in _CONTEXT_WINDOW_MARKERS):
            self.error_type = "ContextWindowExceededError"
        else:
            self.error_type = _ERROR_TYPES.get(status_code, "APIError")


async def _lean_call(scope: _CallScope, route: _Route, kwargs: Mapping[str, Any]) -> LeanResponse:
    import aiohttp
    import msgspec

    body: dict[str, Any] = {"model": route.model, "messages": kwargs["messages"]}
    if kwargs.get("max_tokens") is not None:
        body["max_tokens"] = kwargs["max_tokens"]
    timeout = kwargs.get("timeout")
    try:
        async with scope.http().post(
            route.url,
            data=msgspec.json.encode(body),
            headers=route.headers,
            timeout=aiohttp.ClientTimeout(total=float(timeout) if timeout else None),
        ) as reply:
            raw = await reply.read()
            status, headers = reply.status, dict(reply.headers)
    except aiohttp.ClientConnectionError as exc:
        raise ConnectionError(f"{route.url}: {type(exc).__name__}: {exc}") from exc
    if status >= 300:
        text = raw[:2000].decode("utf-8", "replace")
        raise LeanHTTPError(f"HTTP {status}: {text}", status_code=status, headers=headers)
    data = msgspec.json.decode(raw)
    choice = data["choices"][0]
    usage = data.get("usage") or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    if route.price_in is not None and route.price_out is not None:
        cost = prompt * route.price_in + completion * route.price_out
    else:
        cost = token_cost(route.priced_as, prompt, completion)
    message = choice.get("message") or {}
    return LeanResponse(
        model=str(data.get("model") or route.model),
        choices=[_Choice(_Message(message.get("content")), choice.get("finish_reason"))],
        usage=_Usage(prompt, completion),
        _hidden_params={"response_cost": cost},
    )
