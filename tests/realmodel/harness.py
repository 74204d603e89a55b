"""The real-model tier's harness: a recording relay in front of the model, and the record of
each engine run that the tier summarises at the end (conftest.py)."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web

from rlm_router.rlm_core import protocol
from rlm_router.sim.loopback import start_site


@dataclass
class Exchange:
    """One chat completion as the model saw it."""

    messages: list[dict[str, Any]]
    reply: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


class Relay:
    """An OpenAI-compatible hop on 127.0.0.1 in front of the model that records every call.

    It runs its own event loop in a thread, so it serves whichever loop a test runs in.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.exchanges: list[Exchange] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def start(self) -> Relay:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the relay did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._forward)
        runner, self._port = self._loop.run_until_complete(start_site(app))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(runner.cleanup())
            self._loop.close()

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.json()
        body.pop("stream_options", None)
        streamed = bool(body.get("stream"))
        body["stream"] = False  # the relay answers a stream as one SSE chunk (see below)
        async with httpx.AsyncClient(timeout=httpx.Timeout(3600.0)) as client:
            upstream = await client.post(f"{self.upstream}/chat/completions", json=body)
        if upstream.status_code != 200:
            return web.Response(status=upstream.status_code, body=upstream.content)
        data = upstream.json()
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        self.exchanges.append(
            Exchange(
                messages=body["messages"],
                reply=choice["message"].get("content") or "",
                finish_reason=choice.get("finish_reason"),
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                completion_tokens=int(usage.get("completion_tokens", 0)),
            )
        )
        if not streamed:
            return web.json_response(data)
        chunk = {**data, "object": "chat.completion.chunk"}
        chunk["choices"] = [
            {"index": 0, "delta": choice["message"], "finish_reason": choice.get("finish_reason")}
        ]
        payload = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
        return web.Response(body=payload.encode(), content_type="text/event-stream")


@dataclass
class RunRecord:
    """How one engine run on the real model went, for the tier's summary."""

    test: str
    turns: int
    turns_parsed: int  # turns with a code block or a final answer the engine could take
    feedback: list[str] = field(default_factory=list)  # what the engine told the model
    stopped_reason: str = ""
    answered: bool = False
    correct: bool = False
    wall_s: float = 0.0


RUNS: list[RunRecord] = []


def root_conversation(relay: Relay, first: int) -> list[dict[str, Any]]:
    """The longest root-model conversation sent since exchange ``first`` (root calls carry
    the system prompt; sub-calls do not)."""
    root = [e.messages for e in relay.exchanges[first:] if e.messages[0]["role"] == "system"]
    return max(root, key=len) if root else []


def replies_parsed(conversation: list[dict[str, Any]]) -> tuple[int, int]:
    """(root replies, replies with a code block or a final answer the engine could take)."""
    replies = [m["content"] for m in conversation if m["role"] == "assistant"]
    usable = [
        r for r in replies
        if protocol.parse_reply(r).code_blocks or protocol.parse_reply(r).final is not None
    ]  # fmt: skip
    return len(replies), len(usable)
