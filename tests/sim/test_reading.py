"""The simulated provider under hostile input: reading is linear, and one big request does not
hold up the others.

A 100K-character unpunctuated sub-call used to take minutes in the reader's sentence split
(quadratic backtracking), pinning the provider so every request behind it hung.
"""

from __future__ import annotations

import asyncio
import json

import httpx

from rlm_router.sim import SimServer

_UNPUNCTUATED = "lorem ipsum dolor sit amet "


def _unpunctuated(chars: int) -> str:
    return (_UNPUNCTUATED * (chars // len(_UNPUNCTUATED) + 1))[:chars]


def _body(model: str, content: str) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": content}]}).encode()


async def test_big_unpunctuated_requests_are_answered_while_short_ones_keep_flowing(
    sim_server: SimServer,
) -> None:
    url = f"{sim_server.base_url}/chat/completions"
    headers = {"content-type": "application/json"}
    question = "\n\nWhat does the text say about dolor"
    # Encoded up front: the client's own JSON work is not the provider's.
    over_window = _body("sim-large", _unpunctuated(50_000_000))
    in_window = [_body("sim-large", _unpunctuated(900_000) + question) for _ in range(2)]
    async with httpx.AsyncClient(timeout=120) as client:
        big = [
            asyncio.create_task(client.post(url, content=body, headers=headers))
            for body in (over_window, *in_window)
        ]
        short_done_meanwhile = 0
        while not all(task.done() for task in big):
            reply = await client.post(
                url, json={"model": "sim-mini", "messages": [{"role": "user", "content": "hi"}]}
            )
            assert reply.status_code == 200
            if not all(task.done() for task in big):
                short_done_meanwhile += 1
        over, *within = [task.result() for task in big]
    assert over.status_code == 400
    error = over.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert "maximum context length is 272000 tokens" in error["message"]
    for reply in within:
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"] == "The text does not say."
    # The provider kept answering other requests while it read the big ones.
    assert short_done_meanwhile >= 1


async def test_unpunctuated_sub_call_chunks_are_read_in_linear_time(sim_server: SimServer) -> None:
    """Many window-sized unpunctuated chunks, as an RLM fan-out over a 10M-token input sends:
    each used to cost O(n^2) in the sentence split (a 100K-character chunk took ~60 s)."""
    url = f"{sim_server.base_url}/chat/completions"
    excerpt = (
        "Answer the question using only the excerpt below. If it does not contain the answer, "
        "reply NONE.\n\nQuestion: What does the text say about dolor?\n\nExcerpt:\n"
    )
    async with httpx.AsyncClient(timeout=120) as client:
        replies = await asyncio.gather(
            *(
                client.post(
                    url,
                    content=_body("sim-mini", excerpt + _unpunctuated(100_000 + i)),
                    headers={"content-type": "application/json"},
                )
                for i in range(16)
            )
        )
    for reply in replies:
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"] == "NONE"
