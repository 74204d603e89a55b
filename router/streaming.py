"""Streaming on the RLM route: the routed stream object and the keep-alive loop.

An RLM answer takes seconds to minutes and is only known at the end, so a streamed request
gets a first chunk at once and a keep-alive chunk every ``keepalive_s`` while the engine works
(clients and proxies drop silent connections). The library (``Dispatcher``, which yields
``ModelResponseStream`` chunks) and the proxy plugin (``RLMProvider.astreaming``, which yields
``GenericStreamingChunk`` dicts) share ``keepalives``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from rlm_router.router.responses import RouteInfo, attach_route

if TYPE_CHECKING:
    from rlm_router.router.outcome import Outcome

__all__ = ["RoutedStream", "empty", "keepalives"]


async def keepalives(task: asyncio.Future[Any], interval_s: float) -> AsyncIterator[None]:
    """Yield once every ``interval_s`` while ``task`` runs; stop when it is done."""
    while True:
        done, _ = await asyncio.wait({task}, timeout=interval_s)
        if done:
            return
        yield None


class RoutedStream:
    """An async iterator of chunks (as litellm returns for ``stream=True``) plus route info.

    ``_hidden_params["rlm_router"]`` holds the route; for the RLM route it is final once the
    stream is exhausted (a fallback is only known then). ``outcome`` is set at the end.
    """

    def __init__(self, chunks: AsyncIterator[Any], route: RouteInfo) -> None:
        self._chunks = chunks
        self._hidden_params: dict[str, Any] = {}
        self.outcome: Outcome | None = None
        attach_route(self, route)

    def __aiter__(self) -> RoutedStream:
        return self

    async def __anext__(self) -> Any:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()


async def empty() -> AsyncIterator[Any]:
    """An exhausted stream (a placeholder until the real chunks are attached)."""
    return
    yield  # pragma: no cover
