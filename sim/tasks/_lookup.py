"""Single-lookup families: S-NIAH (one needle in a long haystack) and short QA."""

from __future__ import annotations

import random

from rlm_router.sim.tasks._filler import Filler, haystack
from rlm_router.sim.tasks._task import Task

_KEY_ADJECTIVES = (
    "silent",
    "crimson",
    "amber",
    "hollow",
    "brisk",
    "distant",
    "gentle",
    "frozen",
    "golden",
    "restless",
    "narrow",
    "quiet",
    "velvet",
    "wandering",
    "bright",
    "northern",
)
_KEY_NOUNS = (
    "harbor",
    "falcon",
    "meadow",
    "lantern",
    "orchard",
    "river",
    "summit",
    "compass",
    "willow",
    "anchor",
    "beacon",
    "canyon",
    "thistle",
    "glacier",
    "ember",
    "quarry",
)

NIAH_HEADER = (
    "Some special magic numbers are hidden within the following text. Make sure to memorize "
    "them. I will quiz you about the numbers afterwards.\n\n"
)


def niah(
    n_tokens: int,
    seed: int,
    kind: str | None = None,
    filler: Filler | None = None,
) -> Task:
    """One needle sentence carrying a key's 7-digit value at a random depth of a haystack
    (the essay filler, or the paragraphs ``filler`` returns)."""
    rng = random.Random(f"niah:{seed}:{n_tokens}")
    key = f"{rng.choice(_KEY_ADJECTIVES)}-{rng.choice(_KEY_NOUNS)}"
    value = str(rng.randint(1_000_000, 9_999_999))
    paragraphs, total = (filler or haystack)(rng, max(64, n_tokens - 40))
    needle = f"One of the special magic numbers for {key} is: {value}.\n\n"
    depth = rng.uniform(0.05, 0.95)
    paragraphs.insert(int(depth * len(paragraphs)), needle)
    question = (
        f"What is the special magic number for {key} mentioned in the provided text? "
        "Answer with the number only."
    )
    context = NIAH_HEADER + "".join(paragraphs).rstrip()
    return Task(
        family="niah",
        kind=kind or "single_needle",
        context=context,
        question=question,
        answer=value,
        n_tokens=total + 40,
        seed=seed,
        scoring="substring",
        metadata={"key": key, "depth": round(depth, 3)},
    )


ORGS = (
    "the Varnel Bridge Company",
    "the Quillford Museum",
    "the Ostreva Rowing Club",
    "the Maribund Observatory",
    "the Telloway Press",
    "the Dunmere Seed Bank",
    "the Norrin Glassworks",
    "the Skelby Ferry Service",
    "the Orvanto Library",
)
PEOPLE = (
    "Ilse Marrow",
    "Tomas Greaves",
    "Anika Solberg",
    "Rafael Oduya",
    "Mei Lindqvist",
    "Hugo Baptiste",
    "Priya Castellan",
    "Jonah Whitcombe",
)
CITIES = ("Lisbon", "Tallinn", "Porto", "Ghent", "Bergen", "Lyon", "Krakow", "Turin")

# (fact sentence, question, answer slot): {org} is the entity, {v} the value.
QA_FACTS: tuple[tuple[str, str, str], ...] = (
    ("{org} was founded in {v}.", "In which year was {org} founded?", "year"),
    ("{org} is based in {v}.", "In which city is {org} based?", "city"),
    ("{org} employs {v} people.", "How many people does {org} employ?", "count"),
    ("The director of {org} is {v}.", "Who is the director of {org}?", "person"),
)


def _value(slot: str, rng: random.Random) -> str:
    if slot == "year":
        return str(rng.randint(1820, 2015))
    if slot == "city":
        return rng.choice(CITIES)
    if slot == "count":
        return str(rng.randint(12, 4800))
    return rng.choice(PEOPLE)


def qa(n_tokens: int, seed: int, kind: str | None = None) -> Task:
    """A short reading-comprehension or arithmetic question (stays on the direct route)."""
    rng = random.Random(f"qa:{seed}:{n_tokens}")
    kind = kind or rng.choice(("reading", "reading", "arithmetic"))
    if kind == "arithmetic":
        a, b = rng.randint(12, 999), rng.randint(2, 99)
        op, result = rng.choice((("plus", a + b), ("minus", a - b), ("times", a * b)))
        question = f"What is {a} {op} {b}? Answer with the number only."
        return Task(
            family="qa",
            kind=kind,
            context="",
            question=question,
            answer=str(result),
            n_tokens=0,
            seed=seed,
            scoring="numeric",
        )
    orgs = rng.sample(ORGS, 3)
    facts = []
    for org in orgs:
        for sentence, _, slot in rng.sample(QA_FACTS, 3):
            facts.append((org, sentence, slot, _value(slot, rng)))
    rng.shuffle(facts)
    org, sentence, slot, value = rng.choice(facts)
    question_template = next(q for s, q, _ in QA_FACTS if s == sentence)
    text = " ".join(
        s.format(org=o, v=v)[0].upper() + s.format(org=o, v=v)[1:] for o, s, _, v in facts
    )
    paragraphs, total = haystack(rng, n_tokens - 150) if n_tokens > 600 else ([], 0)
    paragraphs.insert(rng.randint(0, len(paragraphs)), text + "\n\n")
    context = "".join(paragraphs).rstrip()
    return Task(
        family="qa",
        kind=kind,
        context=context,
        question=question_template.format(org=org) + " Answer briefly.",
        answer=value,
        n_tokens=total + len(text) // 4,
        seed=seed,
        scoring="substring",
        metadata={"entity": org},
    )
