"""Short multi-turn chat: the answer is something the user said earlier in the conversation."""

from __future__ import annotations

import random

from rlm_router.sim.tasks._task import Task

_NAMES = ("Priya", "Tomas", "Aiko", "Lena", "Omar", "Sofia", "Mateo", "Ingrid", "Kwame", "Nadia")
_CITIES = ("Lisbon", "Tallinn", "Porto", "Ghent", "Bergen", "Lyon", "Krakow", "Turin")
_PETS = ("dog", "cat", "parrot", "rabbit", "tortoise")
_PET_NAMES = ("Biscuit", "Juniper", "Pepper", "Mochi", "Rufus", "Clementine", "Waffles")
_COLOURS = ("teal", "orange", "lavender", "crimson", "olive", "navy")

CHAT_SYSTEM = "You are a helpful assistant. Keep answers short."

# kind -> (question, slot it asks for)
_QUESTIONS = {
    "name": ("Sorry, remind me: what name did I give you at the start?", "name"),
    "city": ("Which city did I say I just moved to?", "city"),
    "pet": ("What is my {pet}'s name again?", "pet_name"),
    "colour": ("What did I say my favourite colour is?", "colour"),
    "shout": ("Please reply with just the word '{word}' in capital letters.", "word"),
}


def chat(n_tokens: int, seed: int, kind: str | None = None) -> Task:
    """A four-turn conversation and a question answered by an earlier user turn."""
    rng = random.Random(f"chat:{seed}:{n_tokens}")
    kind = kind or rng.choice(tuple(_QUESTIONS))
    facts = {
        "name": rng.choice(_NAMES),
        "city": rng.choice(_CITIES),
        "pet": rng.choice(_PETS),
        "pet_name": rng.choice(_PET_NAMES),
        "colour": rng.choice(_COLOURS),
        "word": rng.choice(("ready", "done", "confirmed", "thanks")),
    }
    turns = (
        {"role": "system", "content": CHAT_SYSTEM},
        {
            "role": "user",
            "content": (
                f"Hi! My name is {facts['name']}. I just moved to {facts['city']} with my "
                f"{facts['pet']}, {facts['pet_name']}."
            ),
        },
        {
            "role": "assistant",
            "content": (
                f"Welcome, {facts['name']}! I hope you and {facts['pet_name']} settle in well."
            ),
        },
        {
            "role": "user",
            "content": (
                f"Thanks. By the way, my favourite colour is {facts['colour']}. Any ideas for "
                "decorating a small flat?"
            ),
        },
        {
            "role": "assistant",
            "content": (f"A few {facts['colour']} cushions and a plant or two go a long way."),
        },
    )
    template, slot = _QUESTIONS[kind]
    question = template.format(**facts)
    answer = facts[slot].upper() if kind == "shout" else facts[slot]
    context = "\n".join(f"{t['role']}: {t['content']}" for t in turns[1:])
    return Task(
        family="chat",
        kind=kind,
        context=context,
        question=question,
        answer=answer,
        n_tokens=len(context) // 4,
        seed=seed,
        scoring="substring",
        turns=turns,
    )
