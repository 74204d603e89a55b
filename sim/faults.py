"""The simulated provider's faults: which exist, how tests schedule them, what each one does.

A fault is asked for per request (the ``x-sim-fault`` header) or scheduled through
``POST /sim/faults`` (``{"fault": ..., "model": ..., "count": n}``) and consumed one per
matching request. Error faults answer with the provider's real error body; ``timeout`` holds
the response; the stream faults break the body mid-way.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Any

from aiohttp import web

from rlm_router.sim import wire
from rlm_router.sim.models import SimModel

__all__ = [
    "FAULTS",
    "FAULT_HEADER",
    "FaultQueue",
    "abort",
    "broken_body",
    "error_for",
    "parse_schedule",
]

FAULTS = (
    "context_length",
    "429",
    "500",
    "503",
    "timeout",
    "malformed_stream",
    "truncated_stream",
)
FAULT_HEADER = "x-sim-fault"
_ERROR_FAULTS = frozenset({"429", "500", "503", "context_length"})


def error_for(fault: str, model: SimModel, *, retry_after_s: float) -> wire.APIError:
    """The provider error an error fault answers with."""
    if fault == "429":
        return wire.rate_limited(model.name, retry_after_s)
    if fault == "500":
        return wire.server_error()
    if fault == "503":
        return wire.overloaded()
    if fault == "context_length":
        return wire.context_length_exceeded(model.context_window, model.context_window + 1)
    raise ValueError(f"{fault!r} is not an error fault; expected one of {sorted(_ERROR_FAULTS)}")


def parse_schedule(body: object, models: Collection[str]) -> tuple[str, str | None, int]:
    """(fault, model or None, count) from a ``POST /sim/faults`` body, or ``wire.APIError``."""
    entry = body if isinstance(body, dict) else {}
    fault = str(body.get("fault")) if isinstance(body, dict) else ""
    if fault not in FAULTS:
        raise wire.invalid_value("fault", f"Unknown fault {fault!r}; expected one of {FAULTS}.")
    count = entry.get("count", 1)
    model = entry.get("model")
    if not isinstance(count, int) or count < 1:
        raise wire.invalid_value("count", "count must be an integer >= 1.")
    if model is not None and model not in models:
        raise wire.model_not_found(str(model))
    return fault, model, count


class FaultQueue:
    """Faults scheduled through ``/sim/faults``, consumed one per matching request."""

    def __init__(self) -> None:
        self._queue: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, fault: str, model: str | None, count: int) -> None:
        with self._lock:
            self._queue.append({"fault": fault, "model": model, "count": count})

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self._queue]

    def take(self, model: str) -> str | None:
        with self._lock:
            for entry in self._queue:
                if entry["model"] in (None, model) and entry["count"] > 0:
                    entry["count"] -= 1
                    fault = str(entry["fault"])
                    self._queue = [e for e in self._queue if e["count"] > 0]
                    return fault
        return None


def abort(request: web.Request) -> None:
    """Drop the connection mid-body, as a crashed upstream or a proxy timeout does."""
    transport = request.transport
    if transport is not None:
        transport.abort()


async def broken_body(request: web.Request, fault: str) -> web.StreamResponse:
    """A non-streaming answer that is invalid JSON, or cut off before its declared end."""
    body = b'{"id": "chatcmpl-sim", "object": "chat.completion", "choices": [{"index": 0, '
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    if fault == "truncated_stream":
        response.content_length = len(body) * 4
    await response.prepare(request)
    await response.write(body)
    if fault == "truncated_stream":
        abort(request)
        return response
    await response.write_eof()
    return response
