"""Haystack text: essay-like paragraphs, token-counted once, assembled to any length.

Counting tokens per request would make a 10M-token haystack take minutes, so a fixed set of
paragraphs is generated and counted once per process; a haystack is a seeded sequence of
them whose size is the sum of their counts.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import lru_cache

from rlm_router.rlm_core.tokens import count_tokens

_SUBJECTS = (
    "The committee",
    "A careful reader",
    "Every small company",
    "The old harbour town",
    "Our research group",
    "The garden club",
    "A patient teacher",
    "The night shift",
    "Most travellers",
    "The city council",
    "A young architect",
    "The river valley",
    "The orchestra",
    "An experienced sailor",
    "The village bakery",
    "Each new student",
)
_VERBS = (
    "revisited",
    "questioned",
    "described",
    "reorganised",
    "celebrated",
    "measured",
    "ignored",
    "postponed",
    "improved",
    "documented",
    "borrowed",
    "rebuilt",
    "explained",
    "compared",
    "painted",
    "rehearsed",
)
_OBJECTS = (
    "the long winter plans",
    "a forgotten recipe",
    "the shape of the coastline",
    "its weekly routine",
    "the price of lamp oil",
    "a set of letters",
    "the northern road",
    "the choice of colours",
    "the schedule for the fair",
    "an unfinished bridge",
    "the habits of migrating birds",
    "the rules of an old card game",
    "the library catalogue",
    "a quiet afternoon",
    "the budget for repairs",
    "the story of the lighthouse",
)
_TAILS = (
    "before the first snow arrived",
    "with more patience than expected",
    "after a long discussion",
    "without telling anyone",
    "for the third time that year",
    "while the rain kept falling",
    "as the market opened",
    "in a surprisingly short time",
    "to everyone's mild amusement",
    "because nobody else would",
    "late in the evening",
    "under a grey and heavy sky",
    "despite the noise from the street",
    "in careful detail",
)
_CONNECTIVES = ("Later,", "Meanwhile,", "In the end,", "Afterwards,", "Even so,", "By then,")

N_PARAGRAPHS = 256


def _paragraph(rng: random.Random) -> str:
    sentences = []
    for i in range(rng.randint(6, 12)):
        opener = f"{rng.choice(_CONNECTIVES)} " if i and rng.random() < 0.3 else ""
        subject = rng.choice(_SUBJECTS)
        if opener:
            subject = subject[0].lower() + subject[1:]
        sentences.append(
            f"{opener}{subject} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}."
        )
    return " ".join(sentences)


# How a family gets its haystack: (rng, n_tokens) -> (paragraphs, each ending in a blank
# line, and their token count). ``haystack`` below is the default; the realistic-mix benchmark
# passes one over real text.
Filler = Callable[[random.Random, int], tuple[list[str], int]]


@lru_cache(maxsize=1)
def paragraphs() -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The fixed paragraphs (each ending in a blank line) and their token counts."""
    rng = random.Random("rlm-router filler v1")
    texts = tuple(_paragraph(rng) + "\n\n" for _ in range(N_PARAGRAPHS))
    return texts, tuple(count_tokens(text) for text in texts)


def haystack(rng: random.Random, n_tokens: int) -> tuple[list[str], int]:
    """Paragraphs totalling about ``n_tokens`` tokens, and their exact-by-block token count."""
    texts, counts = paragraphs()
    mean = sum(counts) / len(counts)
    picks = rng.choices(range(len(texts)), k=max(1, int(n_tokens / mean)))
    total = sum(counts[i] for i in picks)
    while total < n_tokens - mean / 2:
        extra = rng.randrange(len(texts))
        picks.append(extra)
        total += counts[extra]
    return [texts[i] for i in picks], total
