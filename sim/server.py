"""The simulated OpenAI-compatible provider: an aiohttp server on loopback.

Endpoints: ``POST /v1/chat/completions`` (JSON or SSE streaming), ``GET /v1/models``,
``GET /v1/models/{id}``; and for tests and demos ``POST``/``DELETE``/``GET /sim/faults``
(scheduled faults) and ``GET /sim/stats`` (requests, tokens and faults per model, and the
number of distinct client connections that sent chat completions).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

from rlm_router.rlm_core.tokens import count_tokens, encoding
from rlm_router.sim import wire
from rlm_router.sim.faults import (
    FAULT_HEADER,
    FAULTS,
    FaultQueue,
    abort,
    broken_body,
    error_for,
    parse_schedule,
)
from rlm_router.sim.judge import is_judge_prompt, judge_verdict
from rlm_router.sim.loopback import start_site
from rlm_router.sim.models import SIM_MODELS, SimModel
from rlm_router.sim.reader import Reading, answer_direct
from rlm_router.sim.root import is_root_prompt, respond_as_root

_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
# Bodies up to this size are read; a 1M-token prompt is ~4 MB, so this leaves room for
# direct requests far over any window, which must still get the overflow error.
MAX_BODY_BYTES = 64 * 1024 * 1024
# Above this many characters, work happens in a thread so the event loop stays responsive.
_THREAD_CHARS = 200_000
# o200k averages ~4 characters per token on English prose; a prompt this many times the
# window in characters is over the window by any tokenization, so its size is estimated
# (an exact count of a 4 MB body costs ~0.5 s) and the overflow error reports the estimate.
_CHARS_PER_TOKEN_ESTIMATE = 4.0
_ESTIMATE_OVER_FACTOR = 8


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    """Settings of one simulated provider.

    ``time_scale`` multiplies every modelled latency (0 = instant, 0.01 = demos, 1 = real
    time). ``timeout_hold_s`` bounds how long the ``timeout`` fault holds a connection.
    """

    seed: int = 0
    time_scale: float = 1.0
    host: str = "127.0.0.1"
    port: int = 0
    timeout_hold_s: float = 30.0
    retry_after_s: float = 1.0
    models: dict[str, SimModel] = field(default_factory=lambda: dict(SIM_MODELS))


@dataclass
class _Request:
    model: SimModel
    messages: list[tuple[str, str]]
    stream: bool
    include_usage: bool
    max_tokens: int | None
    fault: str | None


def _text_of(content: Any, index: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise wire.APIError(
        400,
        f"Invalid type for 'messages[{index}].content': expected one of a string or array of "
        f"objects, but got {type(content).__name__} instead.",
        param=f"messages[{index}].content",
        code="invalid_type",
    )


def _parse_messages(raw: Any) -> list[tuple[str, str]]:
    if raw is None:
        raise wire.missing_parameter("messages")
    if not isinstance(raw, list):
        raise wire.APIError(
            400,
            f"Invalid type for 'messages': expected an array, but got {type(raw).__name__} "
            "instead.",
            param="messages",
            code="invalid_type",
        )
    if not raw:
        raise wire.APIError(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
            param="messages",
            code="empty_array",
        )
    out = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict):
            raise wire.APIError(
                400,
                f"Invalid type for 'messages[{i}]': expected an object.",
                param=f"messages[{i}]",
                code="invalid_type",
            )
        role = message.get("role")
        if role not in _ROLES:
            raise wire.invalid_value(
                f"messages[{i}].role",
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                "'function', 'tool', and 'developer'.",
            )
        out.append((str(role), _text_of(message.get("content"), i)))
    return out


def prompt_token_count(messages: list[tuple[str, str]]) -> int:
    """Prompt tokens as OpenAI counts them: content plus 3 per message and 3 to prime."""
    return sum(count_tokens(text) + 3 for _, text in messages) + 3


class SimServer:
    """The simulated provider.

    Use ``async with SimServer(SimConfig(...)) as sim`` in async code, or
    ``sim = SimServer(...).start_in_thread()`` … ``sim.stop()`` from synchronous code (the
    server then runs its own event loop in a daemon thread). ``sim.base_url`` is the
    ``api_base`` to give litellm, e.g. ``http://127.0.0.1:PORT/v1``.
    """

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.stats: dict[str, Counter[str]] = {
            "requests": Counter(),
            "prompt_tokens": Counter(),
            "completion_tokens": Counter(),
            "faults": Counter(),
        }
        # Client connections seen by chat completions, by peer address: a client that keeps
        # its connection pool makes few, one that is rebuilt per call makes one per call.
        self._peers: set[object] = set()
        self._faults = FaultQueue()
        self._ids = itertools.count()
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``http://host:port`` (no path)."""
        if self._port is None:
            raise RuntimeError("the simulated provider is not running")
        return f"http://{self.config.host}:{self._port}"

    @property
    def base_url(self) -> str:
        """The OpenAI ``api_base``: ``http://host:port/v1``."""
        return f"{self.url}/v1"

    def app(self) -> web.Application:
        """The aiohttp application (for embedding in another server or test client)."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_get("/v1/models/{model}", self._get_model)
        app.router.add_post("/sim/faults", self._add_fault)
        app.router.add_delete("/sim/faults", self._clear_faults)
        app.router.add_get("/sim/faults", self._list_faults)
        app.router.add_get("/sim/stats", self._stats)
        return app

    async def start(self) -> Self:
        """Bind and start serving; returns self."""
        self._closing = asyncio.Event()
        self._runner, self._port = await start_site(
            self.app(), self.config.host, self.config.port, backlog=1024
        )
        return self

    async def close(self) -> None:
        """Stop serving; held connections (the timeout fault) are released first."""
        if self._closing is not None:
            self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._port = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start_in_thread(self) -> Self:
        """Run the server on its own event loop in a daemon thread; returns once serving."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.close())
            loop.close()

        self._thread = threading.Thread(target=run, name="rlm-router-sim", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop a server started with :meth:`start_in_thread`."""
        if self._loop is None or self._thread is None:
            raise RuntimeError("stop() is for servers started with start_in_thread()")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop = None
        self._thread = None

    # -- control endpoints -------------------------------------------------------------
    async def _add_fault(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error_response(wire.invalid_json())
        try:
            fault, model, count = parse_schedule(body, self.config.models)
        except wire.APIError as exc:
            return _error_response(exc)
        self._faults.add(fault, model, count)
        return web.json_response({"scheduled": self._faults.pending()})

    async def _clear_faults(self, request: web.Request) -> web.Response:
        self._faults.clear()
        return web.json_response({"scheduled": []})

    async def _list_faults(self, request: web.Request) -> web.Response:
        return web.json_response({"scheduled": self._faults.pending()})

    @property
    def connections(self) -> int:
        """Distinct client connections that have sent a chat completion so far."""
        return len(self._peers)

    async def _stats(self, request: web.Request) -> web.Response:
        stats: dict[str, object] = {name: dict(c) for name, c in self.stats.items()}
        stats["connections"] = self.connections
        return web.json_response(stats)

    async def _list_models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [_model_object(m) for m in self.config.models.values()]}
        )

    async def _get_model(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        model = self.config.models.get(name)
        if model is None:
            return _error_response(wire.model_not_found(name))
        return web.json_response(_model_object(model))

    # -- chat completions --------------------------------------------------------------
    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        if request.transport is not None:
            self._peers.add(request.transport.get_extra_info("peername"))
        try:
            req = await self._parse(request)
            fault = req.fault
            if fault in ("429", "500", "503", "context_length"):
                self.stats["faults"][fault] += 1
                raise error_for(fault, req.model, retry_after_s=self.config.retry_after_s)
            prompt_tokens = await self._count_prompt(req)
            content, visible_tokens, reasoning_tokens, finish = await self._answer(
                req, prompt_tokens
            )
            completion_tokens = visible_tokens + reasoning_tokens
        except wire.APIError as exc:
            return _error_response(exc)
        self.stats["requests"][req.model.name] += 1
        self.stats["prompt_tokens"][req.model.name] += prompt_tokens
        self.stats["completion_tokens"][req.model.name] += completion_tokens
        if fault == "timeout":
            self.stats["faults"][fault] += 1
            await self._hold()
            if request.transport is None or request.transport.is_closing():
                return web.Response(status=408)  # the client gave up; nobody reads this
        ident = self._completion_id()
        created = int(time.time())
        scale = self.config.time_scale
        # Reasoning happens before the first visible token, at the model's output speed.
        first_delay = scale * (
            req.model.ttft_s
            + prompt_tokens * req.model.input_s_per_token
            + reasoning_tokens * req.model.output_s_per_token
        )
        if first_delay > 0:
            await asyncio.sleep(first_delay)
        if not req.stream:
            if fault in ("malformed_stream", "truncated_stream"):
                self.stats["faults"][fault] += 1
                return await broken_body(request, fault)
            if visible_tokens and scale > 0:
                await asyncio.sleep(scale * visible_tokens * req.model.output_s_per_token)
            return web.json_response(
                wire.completion(
                    id=ident,
                    created=created,
                    model=req.model.name,
                    content=content,
                    finish_reason=finish,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    reasoning_tokens=reasoning_tokens,
                )
            )
        return await self._stream(
            request,
            req,
            ident,
            created,
            content,
            finish,
            prompt_tokens,
            visible_tokens,
            reasoning_tokens,
        )

    async def _parse(self, request: web.Request) -> _Request:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            raise wire.invalid_json() from None
        if not isinstance(body, dict):
            raise wire.invalid_json()
        model_name = body.get("model")
        if not model_name:
            raise wire.missing_parameter("model")
        messages = _parse_messages(body.get("messages"))
        model = self.config.models.get(str(model_name))
        if model is None:
            raise wire.model_not_found(str(model_name))
        stream = bool(body.get("stream", False))
        options = body.get("stream_options") or {}
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise wire.invalid_value(
                "max_tokens",
                f"Invalid 'max_tokens': integer below minimum value. Expected a "
                f"value >= 1, but got {max_tokens} instead.",
            )
        fault = request.headers.get(FAULT_HEADER) or self._faults.take(model.name)
        if fault is not None and fault not in FAULTS:
            raise wire.invalid_value(
                FAULT_HEADER, f"Unknown fault {fault!r}; expected one of {FAULTS}."
            )
        return _Request(
            model=model,
            messages=messages,
            stream=stream,
            include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
            max_tokens=max_tokens,
            fault=fault,
        )

    async def _count_prompt(self, req: _Request) -> int:
        chars = sum(len(text) for _, text in req.messages)
        window = req.model.context_window
        if chars > window * _CHARS_PER_TOKEN_ESTIMATE * _ESTIMATE_OVER_FACTOR:
            raise wire.context_length_exceeded(window, int(chars / _CHARS_PER_TOKEN_ESTIMATE))
        if chars > _THREAD_CHARS:
            tokens = await asyncio.to_thread(prompt_token_count, req.messages)
        else:
            tokens = prompt_token_count(req.messages)
        if tokens > window:
            raise wire.context_length_exceeded(window, tokens)
        return tokens

    async def _answer(self, req: _Request, prompt_tokens: int) -> tuple[str, int, int, str]:
        """The reply, its visible and reasoning token counts, and the finish reason.

        Reasoning counts against ``max_tokens`` after the visible text, so a capped reply keeps
        the exact count the caller asked for.
        """
        reading = Reading(req.model, self.config.seed, prompt_tokens)
        root_turn = is_root_prompt(req.messages)

        def compose() -> str:
            if root_turn:
                return respond_as_root(reading, req.messages)
            if is_judge_prompt(req.messages):
                return judge_verdict(reading, req.messages)
            return answer_direct(reading, req.messages)

        chars = sum(len(text) for _, text in req.messages)
        content = await asyncio.to_thread(compose) if chars > _THREAD_CHARS else compose()
        tokens = encoding().encode(content, disallowed_special=())
        reasoning = req.model.reasoning_tokens(prompt_tokens, root_turn=root_turn)
        if req.max_tokens is not None and len(tokens) > req.max_tokens:
            return encoding().decode(tokens[: req.max_tokens]), req.max_tokens, 0, "length"
        if req.max_tokens is not None:
            reasoning = min(reasoning, req.max_tokens - len(tokens))
        return content, len(tokens), reasoning, "stop"

    async def _hold(self) -> None:
        """The timeout fault: keep the client waiting (bounded; released on shutdown)."""
        if self._closing is None:  # serving through app() embedded elsewhere
            self._closing = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), self.config.timeout_hold_s)

    def _completion_id(self) -> str:
        n = next(self._ids)
        digest = hashlib.blake2b(f"{self.config.seed}:{n}".encode(), digest_size=12).hexdigest()
        return f"chatcmpl-sim{digest}"

    async def _stream(
        self,
        request: web.Request,
        req: _Request,
        ident: str,
        created: int,
        content: str,
        finish: str,
        prompt_tokens: int,
        visible_tokens: int,
        reasoning_tokens: int,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            return wire.sse(
                wire.chunk(
                    id=ident,
                    created=created,
                    model=req.model.name,
                    delta=delta,
                    finish_reason=finish_reason,
                    with_usage_field=req.include_usage,
                )
            )

        await response.write(chunk({"role": "assistant", "content": "", "refusal": None}))
        pieces = _pieces(content)
        per_piece = (
            self.config.time_scale
            * req.model.output_s_per_token
            * visible_tokens
            / max(1, len(pieces))
        )
        for i, piece in enumerate(pieces):
            if req.fault == "malformed_stream" and i == len(pieces) // 2:
                self.stats["faults"][req.fault] += 1
                await response.write(b'data: {"id": "' + ident.encode() + b'", "choices": [{\n\n')
            if req.fault == "truncated_stream" and i == len(pieces) // 2:
                self.stats["faults"][req.fault] += 1
                abort(request)
                return response
            if per_piece > 0:
                await asyncio.sleep(per_piece)
            await response.write(chunk({"content": piece}))
        await response.write(chunk({}, finish))
        if req.include_usage:
            await response.write(
                wire.sse(
                    wire.usage_chunk(
                        id=ident,
                        created=created,
                        model=req.model.name,
                        prompt_tokens=prompt_tokens,
                        completion_tokens=visible_tokens + reasoning_tokens,
                        reasoning_tokens=reasoning_tokens,
                    )
                )
            )
        await response.write(wire.SSE_DONE)
        await response.write_eof()
        return response


_PIECE = re.compile(r"\s*\S+(?:\s+\S+){0,2}|\s+")


def _pieces(content: str) -> list[str]:
    """Stream deltas of up to three words each (whitespace kept, so they join back exactly)."""
    return _PIECE.findall(content) or [""]


def _model_object(model: SimModel) -> dict[str, Any]:
    return {
        "id": model.name,
        "object": "model",
        "created": 1_763_683_200,
        "owned_by": "rlm-router-sim",
    }


def _error_response(exc: wire.APIError) -> web.Response:
    return web.json_response(exc.body(), status=exc.status, headers=exc.headers)
