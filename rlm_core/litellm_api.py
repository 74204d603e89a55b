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
import importlib
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

from rlm_core.env import apply_offline_defaults
from rlm_core.errors import (
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
    name = type(exc).__name__
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


def timeout_error(message: str, *, model: str) -> ProviderTimeout:
    """The error of a call we stopped at the caller's deadline."""
    return ProviderTimeout(f"{model}: {message}", status_code=408, error_type="Timeout")


# ── models: windows, prices, registration ────────────────────────────────────────────────


def context_window(model: str) -> int | None:
    """The model's input window in tokens from litellm's model info (None when unknown)."""
    try:
        info = litellm().get_model_info(model)
    except Exception:  # litellm raises a bare Exception for unknown models
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
