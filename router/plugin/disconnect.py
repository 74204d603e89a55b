"""A client that goes away cancels its request's work (ASGI middleware for the proxy).

Uvicorn does not cancel a request handler when its client disconnects; LiteLLM watches for it
only while streaming. A non-streamed RLM run would keep its sandbox workers and sub-calls
going for minutes after the caller gave up. This middleware owns the connection's ``receive``:
it relays the body to the app, keeps listening, and when ``http.disconnect`` arrives before
the response has started it cancels the app's task, so the cancellation reaches the RLM run
(whose cleanup kills its workers) and every sub-call in flight. Once a response has started
(a stream), Starlette and LiteLLM handle the disconnect themselves.

Because it holds the body, it is also where a check of the body *as the client sent it* runs
(``BodyCheck``): LiteLLM replaces a malformed ``metadata`` (a string, a list) with its own
dict before any hook sees it, and litellm 1.106 fails on a non-list ``tools`` with a 500.
A check that returns a message gets a 400 without the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from rlm_router.router.plugin.running_proxy import running_proxy_app

if TYPE_CHECKING:
    # Starlette's ASGI types (its scope and messages are ``MutableMapping[str, Any]``: ASGI
    # messages are heterogeneous dicts, declared so by Starlette).
    from starlette.applications import Starlette
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

# The raw request body -> None (fine) or the message of a 400.
BodyCheck = Callable[[bytes], str | None]

_INSTALLED_FLAG = "rlm_router_cancel_on_disconnect"
_PATH_SUFFIX = "/chat/completions"
# The plugin's own POST endpoints, whose bodies are checked the same way.
_OURS = frozenset({"/rlm-router/feedback"})


class CancelOnDisconnect:
    """Wraps an ASGI app; see the module docstring. Other paths pass straight through."""

    def __init__(self, app: ASGIApp, check: BodyCheck | None = None) -> None:
        self.app = app
        self.check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope.get("type") != "http" or not path.endswith(_PATH_SUFFIX):
            if scope.get("type") == "http" and scope.get("method") == "POST" and path in _OURS:
                await self._check_object_body(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        started = disconnected = False
        if self.check is not None:
            # The app reads the whole body before doing anything, so holding it costs no time.
            chunks: list[bytes] = []
            while True:
                message = await receive()
                if message.get("type") != "http.request":
                    return  # gone before the body arrived
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            problem = _not_an_object(body) or self.check(body)
            if problem is not None:
                await _send_error(send, 400, problem)
                return
            await inbox.put({"type": "http.request", "body": body, "more_body": False})

        async def relay_send(message: Message) -> None:
            nonlocal started
            if message.get("type") == "http.response.start":
                started = True
            await send(message)

        app_task = asyncio.ensure_future(self.app(scope, inbox.get, relay_send))

        async def listen() -> None:
            nonlocal disconnected
            while True:
                message = await receive()
                await inbox.put(message)
                if message.get("type") == "http.disconnect":
                    if not started and not app_task.done():
                        disconnected = True
                        log.info("rlm-router: client disconnected; cancelling its request")
                        app_task.cancel()
                    return

        listener = asyncio.ensure_future(listen())
        try:
            await app_task
        except asyncio.CancelledError:
            if not disconnected:
                raise  # this middleware's own caller was cancelled
            # The client is gone: nobody to answer.
        finally:
            listener.cancel()
            with contextlib.suppress(BaseException):
                await listener

    async def _check_object_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Our own endpoints: a body that is not a JSON object is a 400 before LiteLLM's auth
        (which answers 500 when it cannot read one)."""
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message.get("type") != "http.request":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = _not_an_object(body)
        if problem is not None:
            await _send_error(send, 400, problem)
            return
        replay = [{"type": "http.request", "body": body, "more_body": False}]

        async def replayed() -> Message:
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)


def _not_an_object(body: bytes) -> str | None:
    """LiteLLM answers a JSON body that is not an object (``[]``, ``3``, ``null``) with a 500;
    the first byte tells (invalid JSON is left to LiteLLM, which answers it 400)."""
    first = body.lstrip()[:1]
    if first in (b"{", b""):
        return None if first else "rlm-router: the request body is empty; expected a JSON object"
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return f"rlm-router: the request body must be a JSON object, got {type(value).__name__}"


async def _send_error(send: Send, status: int, message: str) -> None:
    body = json.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "code": str(status)}}
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def install(app: Starlette, check: BodyCheck | None = None) -> bool:
    """Wrap ``app`` once; returns whether it was wrapped now."""
    if getattr(app.state, _INSTALLED_FLAG, False):
        return False
    stack = app.middleware_stack
    if stack is None:
        app.add_middleware(CancelOnDisconnect, check=check)
    else:  # already serving (the plugin loads during the proxy's startup)
        app.middleware_stack = CancelOnDisconnect(stack, check)
    setattr(app.state, _INSTALLED_FLAG, True)
    return True


def install_on_running_proxy(check: BodyCheck | None = None) -> bool:
    """Install on the LiteLLM proxy's app if this process is the proxy (else do nothing)."""
    app = running_proxy_app()
    if app is None:
        return False
    try:
        return install(app, check)
    except Exception:  # the proxy must serve even without it
        log.warning("rlm-router: could not install cancel-on-disconnect", exc_info=True)
        return False
