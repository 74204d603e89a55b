"""OOLONG-style records: ``Date: … || User: … || Instance: <question>`` with a hidden label.

As in OOLONG's trec_coarse split, each instance is a general-knowledge question and its
hidden label is the kind of answer it asks for. The label is never written down: a reader
infers it from the question's wording, which :func:`classify_instance` does the way a
competent model would (it is the simulated provider's "world knowledge", and the generator
asserts that every generated instance classifies to the label it was generated for).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache

from rlm_router.rlm_core.tokens import count_tokens

LABELS: tuple[str, ...] = (
    "abbreviation",
    "entity",
    "description and abstract concept",
    "human being",
    "location",
    "numeric value",
)

RECORD_FORMAT = "Date: {date} || User: {user} || Instance: {instance}"
RECORD_RE = re.compile(r"^Date: ([^|\n]+?) \|\| User: (\d+) \|\| Instance: (.*)$", re.MULTILINE)

_NOUNS = (
    "lighthouse",
    "violin",
    "glacier",
    "printing press",
    "windmill",
    "telescope",
    "canal",
    "steam engine",
    "cathedral",
    "vaccine",
    "compass",
    "railway",
    "observatory",
    "harp",
    "submarine",
    "bicycle",
    "paper mill",
    "clock tower",
    "suspension bridge",
    "loom",
)
_PLACES = (
    "Varnel",
    "Quillford",
    "Ostreva",
    "Maribund",
    "Telloway",
    "Brisk Hollow",
    "Dunmere",
    "Calloway Point",
    "Esterhaze",
    "Norrin",
    "Palisade Bay",
    "Windle",
    "Orvanto",
    "Skelby",
)
_WORDS = (
    "serendipity",
    "entropy",
    "irony",
    "nostalgia",
    "inflation",
    "photosynthesis",
    "democracy",
    "gravity",
    "metaphor",
    "erosion",
    "symmetry",
    "empathy",
    "recursion",
)
_KINDS = ("animal", "instrument", "sport", "dish", "gemstone", "plant", "vehicle", "fabric")
_ACTS = (
    "cross the {p} strait",
    "map the {p} caves",
    "climb Mount {p}",
    "sail around {p}",
    "print a newspaper in {p}",
    "open a school in {p}",
)
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "abbreviation": (
        "What does {abbr} stand for?",
        "What is the full form of {abbr}?",
        "What is the abbreviation {abbr} short for?",
        "In the {place} records, what does the acronym {abbr} stand for?",
    ),
    "entity": (
        "What kind of {kind} is a {place} {word2}?",
        "What type of {kind} was used to build the first {noun}?",
        "What is the name of the {kind} shown on the flag of {place}?",
        "Which {kind} is called the pride of {place}?",
    ),
    "description and abstract concept": (
        "Why does a {noun} need regular maintenance?",
        "What is the meaning of the word {word}?",
        "What is the definition of {word}?",
        "Why do people in {place} celebrate the {noun} festival?",
        "How does a {noun} work?",
        "Why did the {place} {noun} close?",
        "Describe how the {place} {noun} changed over time.",
    ),
    "human being": (
        "Who invented the {noun}?",
        "Who was the first person to {act}?",
        "Who designed the {noun} in {place}?",
        "Which person founded the {place} {noun} society?",
    ),
    "location": (
        "Where is the {place} {noun} located?",
        "In which country is {place}?",
        "Which city hosts the annual {noun} fair?",
        "Where was the first {noun} built?",
        "Where did the {place} {noun} festival take place?",
        "In which country was the {noun} of {place} built?",
    ),
    "numeric value": (
        "How many {noun}s are there in {place}?",
        "In what year was the {place} {noun} completed?",
        "How far is {place} from {place2}?",
        "How much did the {noun} in {place} cost?",
        "How long is the {place} {noun}?",
    ),
}

# Ordered rules: the first match wins ("How does" must be tested before "How many").
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bstand for\b|\bfull form of\b|\bshort for\b"), "abbreviation"),
    (
        re.compile(r"^How does\b|^Why\b|^Describe\b|\bmeaning of\b|\bdefinition of\b"),
        "description and abstract concept",
    ),
    (re.compile(r"^Who\b|^Which person\b"), "human being"),
    (re.compile(r"^Where\b|^In which country\b|^Which city\b"), "location"),
    (
        re.compile(r"^How many\b|^How much\b|^How far\b|^How long\b|^In what year\b"),
        "numeric value",
    ),
    (
        re.compile(
            r"^What kind of\b|^What type of\b|^What is the name of\b|^Which \w+ is called\b"
        ),
        "entity",
    ),
)


def classify_instance(instance: str) -> str | None:
    """The label a careful reader gives ``instance``, or None if it is not a record question."""
    text = instance.strip()
    for pattern, label in _RULES:
        if pattern.search(text):
            return label
    return None


@dataclass(frozen=True)
class InstancePool:
    """Generated instance texts per label with their token counts as a record's tail."""

    texts: tuple[str, ...]
    labels: tuple[str, ...]
    tokens: tuple[int, ...]
    by_label: dict[str, tuple[int, ...]]


def _fill(template: str, rng: random.Random) -> str:
    abbr = "".join(rng.choice("ABCDEFGHKLMNPRSTVW") for _ in range(rng.randint(3, 5)))
    place, place2 = rng.sample(_PLACES, 2)
    act = rng.choice(_ACTS).format(p=rng.choice(_PLACES))
    return template.format(
        abbr=abbr,
        place=place,
        place2=place2,
        noun=rng.choice(_NOUNS),
        word=rng.choice(_WORDS),
        word2=rng.choice(_WORDS),
        kind=rng.choice(_KINDS),
        act=act,
    )


@lru_cache(maxsize=1)
def instance_pool() -> InstancePool:
    """A fixed pool of instances, 300 per label, token-counted once per process."""
    rng = random.Random("rlm-router records v1")
    texts: list[str] = []
    labels: list[str] = []
    seen: set[str] = set()
    for label in LABELS:
        made = 0
        while made < 300:
            text = _fill(rng.choice(_TEMPLATES[label]), rng)
            if text in seen:
                continue
            assert classify_instance(text) == label, (text, label)
            seen.add(text)
            texts.append(text)
            labels.append(label)
            made += 1
    tokens = tuple(count_tokens(f" {text}\n") for text in texts)
    by_label = {lab: tuple(i for i, x in enumerate(labels) if x == lab) for lab in LABELS}
    return InstancePool(tuple(texts), tuple(labels), tokens, by_label)


@lru_cache(maxsize=1)
def _dates() -> tuple[str, ...]:
    start = date(2021, 1, 1)
    return tuple(
        (start + timedelta(days=i)).strftime("%b %d, %Y").replace(" 0", " ") for i in range(1461)
    )


# Tokens of "Date: Mon D, YYYY || User: NNNNN || Instance:" (the instance adds its own).
SCAFFOLD_TOKENS = 18


@dataclass
class RecordSet:
    """Records under construction: a line per record, with its user and label known."""

    lines: list[str]
    users: list[str]
    labels: list[str]
    n_tokens: int
    planted: set[int] = field(default_factory=set)


def user_ids(rng: random.Random, n: int, exclude: Sequence[str] = ()) -> list[str]:
    """``n`` distinct 5-digit user ids, none in ``exclude``."""
    taken = set(exclude)
    out: list[str] = []
    while len(out) < n:
        uid = str(rng.randint(10000, 99999))
        if uid not in taken:
            taken.add(uid)
            out.append(uid)
    return out


def background(
    rng: random.Random, n_tokens: int, *, exclude_users: Sequence[str], exclude_label: str | None
) -> RecordSet:
    """Random records totalling about ``n_tokens`` tokens."""
    pool = instance_pool()
    allowed = [i for lab in LABELS if lab != exclude_label for i in pool.by_label[lab]]
    mean = SCAFFOLD_TOKENS + sum(pool.tokens[i] for i in allowed) / len(allowed)
    n_lines = max(24, int(n_tokens / mean))
    n_users = max(8, min(20000, n_lines // 8))
    users_pool = user_ids(rng, n_users, exclude_users)
    picks = rng.choices(allowed, k=n_lines)
    users = rng.choices(users_pool, k=n_lines)
    dates = rng.choices(_dates(), k=n_lines)
    texts = pool.texts
    lines = [
        f"Date: {d} || User: {u} || Instance: {texts[i]}"
        for d, u, i in zip(dates, users, picks, strict=True)
    ]
    total = n_lines * SCAFFOLD_TOKENS + sum(pool.tokens[i] for i in picks)
    return RecordSet(lines, users, [pool.labels[i] for i in picks], total)


def plant(rng: random.Random, records: RecordSet, user: str, labels: Sequence[str]) -> None:
    """Overwrite random records with ones from ``user`` carrying the given hidden labels."""
    pool = instance_pool()
    free = [i for i in range(len(records.lines)) if i not in records.planted]
    for label, pos in zip(labels, rng.sample(free, len(labels)), strict=True):
        inst = rng.choice(pool.by_label[label])
        old_tail = records.lines[pos].split("|| Instance: ", 1)[1]
        records.lines[pos] = RECORD_FORMAT.format(
            date=rng.choice(_dates()), user=user, instance=pool.texts[inst]
        )
        records.users[pos] = user
        records.labels[pos] = label
        records.planted.add(pos)
        records.n_tokens += pool.tokens[inst] - count_tokens(f" {old_tail}\n")


def header(labels: Sequence[str] = LABELS) -> str:
    """The preamble OOLONG puts before its records."""
    return (
        "The following lines contain general-knowledge questions posted by users, one record "
        "per line. Each question has exactly one of these labels, determined by the kind of "
        f"answer it asks for: {', '.join(labels)}. The labels are not written down.\n"
    )
