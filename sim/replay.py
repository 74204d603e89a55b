"""A replay provider: an OpenAI-compatible server on loopback that answers an RLM root with
recorded replies, in order, and sub-calls from a recording or deterministically.

Used to replay published trajectories of real root models through our engine: the recorded
replies are what a real model wrote; everything else (REPL, parsing, budgets, the litellm
client path) is ours and runs for real. A conversation is a root conversation when its first
message is a system message (the engine's protocol); anything else is a sub-call.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Sequence
from typing import Any, Self

from aiohttp import web

from rlm_router.sim import wire
from rlm_router.sim.loopback import start_site


class ReplayServer:
    """Serve ``root_replies`` to root turns in order (the last one repeats when they run out)
    and ``sub_replies`` to sub-calls in order (then a deterministic digest of the prompt)."""

    def __init__(self, root_replies: Sequence[str], sub_replies: Sequence[str] = ()) -> None:
        if not root_replies:
            raise ValueError("a replay needs at least one recorded root reply")
        self.root_replies = list(root_replies)
        self.sub_replies = list(sub_replies)
        self.requests: list[list[dict[str, Any]]] = []  # every conversation received
        self.root_turns = 0
        self.sub_calls = 0
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> Self:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner, self.port = await start_site(app)
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _reply(self, messages: list[dict[str, Any]]) -> str:
        if messages and messages[0].get("role") == "system":
            index = min(self.root_turns, len(self.root_replies) - 1)
            self.root_turns += 1
            return self.root_replies[index]
        index = self.sub_calls
        self.sub_calls += 1
        if index < len(self.sub_replies):
            return self.sub_replies[index]
        prompt = json.dumps(messages, sort_keys=True).encode()
        return f"(replayed sub-call {hashlib.sha256(prompt).hexdigest()[:12]})"

    async def _chat(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            messages = list(body["messages"])
            model = str(body["model"])
        except (ValueError, KeyError, TypeError):
            exc = wire.invalid_json()
            return web.json_response(exc.body(), status=exc.status)
        self.requests.append(messages)
        content = self._reply(messages)
        prompt_chars = sum(len(str(m.get("content", ""))) for m in messages)
        return web.json_response(
            wire.completion(
                id=f"chatcmpl-replay-{next(self._ids)}",
                created=int(time.time()),
                model=model,
                content=content,
                finish_reason="stop",
                prompt_tokens=max(1, prompt_chars // 4),
                completion_tokens=max(1, len(content) // 4),
            )
        )
