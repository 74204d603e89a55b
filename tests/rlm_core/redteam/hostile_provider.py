"""An honest OpenAI-compatible provider on loopback that serves a hostile root model.

Root turns (conversations that open with a system message) get the scripted replies in order
(the last one repeats); sub-calls get a short fixed answer. Usage is counted exactly with the
engine's tokenizer, so litellm prices every call from real token counts. Every request body
is logged byte for byte: the tests search it for secrets and price what was really sent.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Sequence
from typing import Any, Self

from aiohttp import web

from rlm_router.rlm_core.litellm_api import token_cost
from rlm_router.rlm_core.tokens import count_tokens
from rlm_router.sim.loopback import start_site

MODEL = "openai/gpt-4o-mini"  # in litellm's cost map: calls are priced for real


class HostileProvider:
    def __init__(self, root_replies: Sequence[str]) -> None:
        self.root_replies = list(root_replies)
        self.bodies: list[bytes] = []  # every request body, as received
        self.input_tokens = 0
        self.root_turns = 0
        self.sub_calls = 0
        self.root_called = asyncio.Event()  # set at the first root turn
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log_text(self) -> str:
        return b"\n".join(self.bodies).decode("utf-8", "replace")

    def cost_of_input(self) -> float:
        """What every input token the provider received costs at the model's price."""
        return token_cost(MODEL, self.input_tokens, 0)

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner, self.port = await start_site(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.bodies.append(body)
        payload: dict[str, Any] = json.loads(body)
        messages = payload["messages"]
        prompt_tokens = 3 + sum(3 + count_tokens(str(m.get("content", ""))) for m in messages)
        self.input_tokens += prompt_tokens
        if messages and messages[0].get("role") == "system":
            content = self.root_replies[min(self.root_turns, len(self.root_replies) - 1)]
            self.root_turns += 1
            self.root_called.set()
        else:
            content = "ok"
            self.sub_calls += 1
        completion_tokens = count_tokens(content)
        return web.json_response(
            {
                "id": f"chatcmpl-hostile-{next(self._ids)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": payload["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )
