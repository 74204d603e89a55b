"""The one adapter between the router's results and LiteLLM's response objects.

Everything else in the router works with ``Served`` (what answered, with what text, usage and
cost) and ``RouteInfo`` (which route, why). This module turns them into what callers of
``litellm.acompletion`` expect: a ``ModelResponse``, a stream of ``ModelResponseStream`` chunks,
or, inside the proxy, the ``GenericStreamingChunk`` dicts a ``CustomLLM`` yields.

Route information travels where OpenAI clients ignore it: ``_hidden_params["rlm_router"]`` in
the library and ``x-rlm-router-*`` response headers through the proxy.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import rlm_router.rlm_core.litellm_api as litellm_api
from rlm_router.policies.schema import Route

if TYPE_CHECKING:
    from rlm_router.rlm_core.litellm_api import (
        GenericStreamingChunk,
        ModelResponse,
        ModelResponseStream,
    )

Fallback = Literal["none", "rlm_to_llm", "llm_to_rlm"]

HIDDEN_KEY = "rlm_router"
HEADER_ROUTE = "x-rlm-router-route"
HEADER_DECISION_ID = "x-rlm-router-decision-id"
HEADER_REASON = "x-rlm-router-reason"
HEADER_FALLBACK = "x-rlm-router-fallback"
HEADER_DEGRADED = "x-rlm-router-degraded"
HEADER_POLICY_VERSION = "x-rlm-router-policy-version"
# Clients ignore unknown delta fields; LiteLLM forwards a chunk only when it carries something,
# and provider_specific_fields counts, so keep-alive chunks put their status there.
KEEPALIVE_FIELDS: Mapping[str, str] = {"rlm_router": "working"}
_MAX_HEADER_CHARS = 200


@dataclass(frozen=True, kw_only=True)
class RouteInfo:
    """Which route served a request and why; safe to show to the caller."""

    decision_id: str
    route: Route  # the route that served the answer
    decided: Route  # the route the decision chose
    reason: str
    score: float | None = None
    fallback: Fallback = "none"
    degraded: str | None = None  # "partial_at_deadline", "partial_at_budget", "direct_at_deadline"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def headers(self) -> dict[str, str]:
        """The ``x-rlm-router-*`` response headers (ASCII, one line each)."""
        headers = {
            HEADER_ROUTE: self.route,
            HEADER_DECISION_ID: self.decision_id,
            HEADER_REASON: _header_value(self.reason),
            HEADER_FALLBACK: self.fallback,
        }
        if self.degraded:
            headers[HEADER_DEGRADED] = self.degraded
        return headers


@dataclass(frozen=True, kw_only=True)
class TokenUsage:
    """Tokens an answer cost (the engine's wider record is ``rlm_core.Usage``)."""

    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, kw_only=True)
class Served:
    """A finished answer, whichever route produced it."""

    text: str
    model: str
    finish_reason: str  # "stop", or "length" for a partial answer
    usage: TokenUsage
    cost_usd: float


def _header_value(text: str) -> str:
    flat = " ".join(text.split())
    flat = flat.encode("ascii", "replace").decode("ascii")
    return flat[:_MAX_HEADER_CHARS]


def attach_route(response: object, route: RouteInfo) -> None:
    """Put ``route`` into a response's (or stream's) ``_hidden_params``."""
    hidden = getattr(response, "_hidden_params", None)
    if not isinstance(hidden, dict):
        hidden = {}
        try:
            response._hidden_params = hidden  # type: ignore[attr-defined]
        except AttributeError:
            return
    hidden[HIDDEN_KEY] = route.as_dict()


def route_of(response: object) -> dict[str, Any] | None:
    """The route information a response carries, if any."""
    hidden = getattr(response, "_hidden_params", None)
    if isinstance(hidden, dict):
        value = hidden.get(HIDDEN_KEY)
        if isinstance(value, dict):
            return value
    return None


def served_from_response(response: ModelResponse, *, cost_usd: float | None) -> Served:
    """Read a litellm ``ModelResponse`` (a direct call's result) into ``Served``."""
    choice = response.choices[0]
    message = getattr(choice, "message", None)
    text = getattr(message, "content", None) or ""
    usage = getattr(response, "usage", None)
    return Served(
        text=text,
        model=str(response.model or ""),
        finish_reason=str(getattr(choice, "finish_reason", None) or "stop"),
        usage=TokenUsage(
            input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        ),
        cost_usd=float(cost_usd or 0.0),
    )


def model_response(
    served: Served, route: RouteInfo, *, into: ModelResponse | None = None
) -> ModelResponse:
    """A ``ModelResponse`` for ``served`` (filled into ``into`` when given, as a CustomLLM must)."""
    response = into if into is not None else litellm_api.new_model_response()
    response.model = served.model
    choice: Any = response.choices[0]
    choice.message.content = served.text
    choice.message.role = "assistant"
    choice.finish_reason = served.finish_reason
    response.usage = litellm_api.new_usage(  # type: ignore[attr-defined]
        served.usage.input_tokens, served.usage.output_tokens
    )
    # LiteLLM reads the cost of a response from here (spend tracking, x-litellm-response-cost).
    response._hidden_params["response_cost"] = served.cost_usd
    attach_route(response, route)
    return response


@dataclass
class ChunkFactory:
    """Builds the OpenAI chunks of one streamed answer (same id and model throughout)."""

    model: str
    id: str = ""
    created: int = 0

    def __post_init__(self) -> None:
        self.id = self.id or f"chatcmpl-{uuid.uuid4().hex}"
        self.created = self.created or int(time.time())

    def _chunk(
        self, delta: dict[str, Any], finish_reason: str | None = None
    ) -> ModelResponseStream:
        return litellm_api.new_stream_chunk(
            id=self.id,
            created=self.created,
            model=self.model,
            delta=delta,
            finish_reason=finish_reason,
        )

    def role(self) -> ModelResponseStream:
        return self._chunk({"role": "assistant", "content": ""})

    def keepalive(self) -> ModelResponseStream:
        return self._chunk({"content": "", "provider_specific_fields": dict(KEEPALIVE_FIELDS)})

    def text(self, text: str) -> ModelResponseStream:
        return self._chunk({"content": text})

    def finish(self, served: Served) -> ModelResponseStream:
        chunk: Any = self._chunk({}, finish_reason=served.finish_reason)
        chunk.usage = litellm_api.new_usage(served.usage.input_tokens, served.usage.output_tokens)
        return chunk


def generic_chunk(
    text: str = "", *, keepalive: bool = False, served: Served | None = None
) -> GenericStreamingChunk:
    """A chunk as a ``CustomLLM.astreaming`` yields it (``served`` marks the final one)."""
    chunk: dict[str, Any] = {
        "text": text,
        "is_finished": served is not None,
        "finish_reason": served.finish_reason if served is not None else "",
        "usage": None,
        "index": 0,
        "tool_use": None,
    }
    if keepalive:
        chunk["provider_specific_fields"] = dict(KEEPALIVE_FIELDS)
    if served is not None:
        chunk["usage"] = {
            "prompt_tokens": served.usage.input_tokens,
            "completion_tokens": served.usage.output_tokens,
            "total_tokens": served.usage.input_tokens + served.usage.output_tokens,
        }
    return chunk  # type: ignore[return-value]


def split_text(text: str, size: int = 64) -> list[str]:
    """Pieces of ``text`` to stream, cut after whitespace where possible."""
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            space = text.rfind(" ", start + 1, end)
            if space > start:
                end = space + 1
        pieces.append(text[start:end])
        start = end
    return pieces
