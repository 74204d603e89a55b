"""Training requests for the prior: instructions of every kind and language around real or
synthetic text, in the layouts callers use (see ``policies/PRIOR.md``).

Each request is (body, family, text kind, drawn token count); the family is the instruction's
kind, which is what the published utility curves are indexed by.
"""

from __future__ import annotations

import random
from typing import Any

from rlm_router.policies.corpus.instructions import sample
from rlm_router.policies.corpus.sources import KINDS_OF_TEXT, text_of

LAYOUTS = (
    "last",
    "last",
    "last",
    "first",
    "glued_last",
    "glued_first",
    "tags",
    "fence",
    "system_q",
    "system_data",
    "earlier",
)
PERSONAS = (
    "You are a helpful assistant.",
    "Tu es un assistant serviable.",
    "Du bist ein hilfreicher Assistent.",
    "Eres un asistente útil.",
    "你是一个乐于助人的助手。",
)


def wrap(layout: str, instruction: str, data: str, rng: random.Random) -> list[dict[str, str]]:
    """Messages putting ``instruction`` and ``data`` in ``layout``."""
    persona = [{"role": "system", "content": rng.choice(PERSONAS)}] if rng.random() < 0.3 else []
    if layout == "last":
        return [*persona, {"role": "user", "content": f"{data}\n\n{instruction}"}]
    if layout == "first":
        return [*persona, {"role": "user", "content": f"{instruction}\n\n{data}"}]
    if layout == "glued_last":
        return [*persona, {"role": "user", "content": f"{data}\n{instruction}"}]
    if layout == "glued_first":
        return [*persona, {"role": "user", "content": f"{instruction}\n{data}"}]
    if layout == "tags":
        tag = rng.choice(("question", "task", "instructions", "query"))
        body = f"<{tag}>{instruction}</{tag}>\n<data>\n{data}\n</data>"
        if rng.random() < 0.5:
            body = f"<data>\n{data}\n</data>\n<{tag}>{instruction}</{tag}>"
        return [*persona, {"role": "user", "content": body}]
    if layout == "fence":
        return [*persona, {"role": "user", "content": f"{instruction}\n```\n{data}\n```"}]
    if layout == "system_q":
        return [{"role": "system", "content": instruction}, {"role": "user", "content": data}]
    if layout == "system_data":
        return [{"role": "system", "content": data}, {"role": "user", "content": instruction}]
    return [  # earlier
        *persona,
        {"role": "user", "content": f"Material:\n\n{data}"},
        {"role": "assistant", "content": "OK."},
        {"role": "user", "content": instruction},
    ]


def chat_request(rng: random.Random) -> dict[str, Any]:
    """A short conversation ending on a chat or lookup turn (no bulk data)."""
    messages: list[dict[str, str]] = []
    for _ in range(rng.randint(0, 3)):
        messages.append({"role": "user", "content": sample(rng, "chat")[0]})
        messages.append({"role": "assistant", "content": sample(rng, "chat")[0]})
    kind = rng.choice(("chat", "chat", "lookup", "aggregate", "pairwise", "multihop"))
    messages.append({"role": "user", "content": sample(rng, kind)[0]})
    return {"model": "auto", "messages": messages}


def data_request(rng: random.Random, kind: str, n_chars: int) -> tuple[dict[str, Any], str]:
    """(body, text kind) for an instruction of ``kind`` over ~``n_chars`` of text."""
    instruction, _ = sample(rng, kind)
    text_kind = rng.choice(KINDS_OF_TEXT)
    if kind in ("aggregate", "pairwise") and rng.random() < 0.5:
        text_kind = "records"
    data = text_of(text_kind, rng, n_chars)
    return {"model": "auto", "messages": wrap(rng.choice(LAYOUTS), instruction, data, rng)}, (
        text_kind
    )
