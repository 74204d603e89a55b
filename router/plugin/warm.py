"""The proxy's own first-request costs, paid at start-up instead of by the first client.

``Router.warm_up`` (run when the plugin loads) pays ours: importing litellm, tiktoken's
encoding, the policy and a first decision. What a fresh proxy still paid on its first routed
request was LiteLLM's and FastAPI's, measured in-process on litellm 1.108 / FastAPI 0.165
(cProfile of the first request against the second, under load): FastAPI building every
route's matching state on the first match (~1.6 s), the chat path's first-use imports in
LiteLLM's key auth and pre-call code (guardrail translation mappings ~1.1 s, the MCP server
manager ~0.9 s, more) and the proxy router's first async completion (~0.7 s). Those are
LiteLLM internals that move between releases, so they are not named here one by one: once
LiteLLM has built its router, ``install_on_running_proxy``'s task sends one chat completion
through the proxy's own app, in-process (no socket), with the master key, to the direct
model group (not a virtual model, so our hook routes nothing and records no decision, span or
training row); our hook recognises it (``is_warm_up``) and has LiteLLM answer it with a mock
reply at zero prices, so the provider is not called and nothing is booked. In LiteLLM's own
logs it is a $0 request tagged ``rlm-router-warm-up``, user ``rlm-router-warm-up``. Until it
is over, the proxy's other HTTP requests wait (``_UntilWarm``), probes included: start-up
ends when the proxy is warm.

Failures are logged and ignored: the proxy serves either way, only the first request is
slower. The outcome and the seconds it took go to the log (``rlm-router: warmed ...``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING

from rlm_router.router.plugin.litellm_types import RequestData
from rlm_router.router.plugin.running_proxy import running_proxy, running_proxy_app

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("rlm_router.plugin")

WAIT_FOR_ROUTER_S = 120.0
WARM_UP_TAG = "rlm-router-warm-up"
_MESSAGES = [{"role": "user", "content": "rlm-router warm-up"}]
_task: asyncio.Task[float | None] | None = None
# Marks this process's own warm-up request for our hook, which makes it a mock at zero prices:
# the proxy drops ``mock_response`` from a request body and rejects prices in it, and LiteLLM
# prices a mock's made-up usage like a real one. A client cannot know this process's secret.
_TOKEN_KEY = "rlm_router_warm_up"
_TOKEN = secrets.token_hex(16)
_HEADER = b"x-rlm-router-warm-up"  # the warm-up's own request passes the gate


def is_warm_up(data: Mapping[str, object]) -> bool:
    """Whether a request body (as the pre-call hook sees it) is this process's warm-up."""
    metadata = data.get("metadata")
    return isinstance(metadata, dict) and metadata.get(_TOKEN_KEY) == _TOKEN


def priced_at_zero(data: RequestData) -> RequestData:
    """The warm-up's body answered by LiteLLM itself at zero prices: no provider call (the
    proxy drops a client's ``mock_response`` before the hooks), nothing booked."""
    return {
        **data,
        "mock_response": "ok",
        "input_cost_per_token": 0.0,
        "output_cost_per_token": 0.0,
    }


def install_on_running_proxy(direct_group: str | None) -> bool:
    """Start the warm-up task if this process is the LiteLLM proxy (else do nothing), and
    hold the proxy's HTTP requests (health probes included) until it is over, so a client's
    first request, or a readiness probe, is answered by a warm proxy."""
    global _task
    module, app = running_proxy(), running_proxy_app()
    if module is None or app is None or _task is not None:
        return False
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not loading inside the proxy's startup
        return False
    ready = asyncio.Event()
    _task = loop.create_task(warm_proxy(module, direct_group, ready), name="rlm-router warm-up")
    stack = app.middleware_stack
    if stack is None:
        app.add_middleware(_UntilWarm, ready=ready)
    else:  # already serving its lifespan (the plugin loads during the proxy's startup)
        app.middleware_stack = _UntilWarm(stack, ready=ready)
    return True


class _UntilWarm:
    """ASGI middleware: HTTP requests wait until the warm-up is over (it always ends: done,
    failed or timed out), except the warm-up's own."""

    def __init__(self, app: ASGIApp, *, ready: asyncio.Event) -> None:
        self.app = app
        self.ready = ready

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "http" and not self.ready.is_set():
            own = (_HEADER, _TOKEN.encode()) in scope.get("headers", ())
            if not own:
                await self.ready.wait()
        await self.app(scope, receive, send)


async def warm_proxy(
    proxy: ModuleType, direct_group: str | None, ready: asyncio.Event
) -> float | None:
    """Go through the proxy's first-request paths once, then set ``ready``; returns the
    seconds (None: failed or skipped)."""
    try:
        return await _warm(proxy, direct_group)
    finally:
        ready.set()


async def _warm(proxy: ModuleType, direct_group: str | None) -> float | None:
    deadline = time.monotonic() + WAIT_FOR_ROUTER_S
    while getattr(proxy, "llm_router", None) is None:  # LiteLLM is still loading its config
        if time.monotonic() > deadline:
            log.warning("rlm-router: no warm-up, the proxy's router was not built in time")
            return None
        await asyncio.sleep(0.02)
    started = time.perf_counter()
    key = getattr(proxy, "master_key", None)
    if not direct_group or not key:
        log.info("rlm-router: no warm-up request (no direct model group or no master key)")
        return None
    body = {
        "model": direct_group,
        "messages": _MESSAGES,
        "user": WARM_UP_TAG,
        "metadata": {"tags": [WARM_UP_TAG], _TOKEN_KEY: _TOKEN},
    }
    try:
        import httpx

        transport = httpx.ASGITransport(app=proxy.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://warm-up") as client:
            response = await client.post(
                "/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {key}", _HEADER.decode(): _TOKEN},
                timeout=WAIT_FOR_ROUTER_S,
            )
        response.raise_for_status()
    except Exception:  # the proxy must serve either way
        log.warning("rlm-router: warm-up failed; the first request pays for it", exc_info=True)
        return None
    elapsed = time.perf_counter() - started
    log.info("rlm-router: warmed the proxy's first-request paths in %.2f s", elapsed)
    return elapsed
