"""Instruction wordings for the task model, in eight languages, by task kind.

Templates are combined with per-language slot fillers (plural nouns, attributes, values,
names), so each kind has hundreds of distinct wordings per language. Kinds:

- ``chat``: conversation, advice, explanations, code help on a snippet, rewriting/translating;
- ``lookup``: one fact from the material (also with "total", "most recent", "both",
  "before" in it: a single record's total is still a lookup);
- ``aggregate``: counting, sums, averages, shares, rankings, distributions, "list all X that",
  summarising everything;
- ``pairwise``: pairs/couples of items meeting a condition (quadratic in the items);
- ``multihop``: chained questions (find A, then use it to find B) and questions about how the
  parts of a large body of code or documents relate (call/import structure).

The nouns deliberately avoid the held-out evaluation's subjects (packages, models, maintainers,
changelog entries): ``benchmarks.routing_eval`` tests generalisation to them.
"""

from __future__ import annotations

import random

from rlm_router.policies.corpus.fillers import FILL, NOISE_WORDS, WRAPPERS
from rlm_router.policies.corpus.templates import TEMPLATES

__all__ = ["KINDS", "TEMPLATES", "fill", "instructions", "sample"]

KINDS = ("chat", "lookup", "aggregate", "pairwise", "multihop")


def instructions(seed: int = 0, per_template: int = 3) -> list[tuple[str, str, str]]:
    """(text, kind, language) for every template, filled ``per_template`` times."""
    rng = random.Random(seed)
    out: list[tuple[str, str, str]] = []
    for lang, kinds in TEMPLATES.items():
        fill = FILL[lang]
        for kind, joined in kinds.items():
            for template in joined.split("|"):
                seen = set()
                for _ in range(per_template if "{" in template else 1):
                    text = template.format(**{k: rng.choice(v) for k, v in fill.items()})
                    if text not in seen:
                        seen.add(text)
                        out.append((text, kind, lang))
    return out


def fill(template: str, lang: str, rng: random.Random) -> str:
    """``template`` with its slots filled (identifiers in the slots, often) and a random
    neutral framing; a third of the time lower-cased without punctuation."""
    slots = {k: rng.choice(v) for k, v in FILL[lang].items()}
    for key in ("x", "v", "n", "a"):
        if rng.random() < (0.5 if key in "xv" else 0.25):
            slots[key] = rng.choice(NOISE_WORDS)
    text = rng.choice(WRAPPERS[lang]).format(template.format(**slots))
    if rng.random() < 0.33:
        text = "".join(ch for ch in text.lower() if ch not in "?？.。!！,，:：")
    return text


def sample(rng: random.Random, kind: str, lang: str | None = None) -> tuple[str, str]:
    """(instruction, language) of ``kind``, in ``lang`` or a random language."""
    lang = lang or rng.choice(tuple(TEMPLATES))
    template = rng.choice(TEMPLATES[lang][kind].split("|"))
    return fill(template, lang, rng), lang
