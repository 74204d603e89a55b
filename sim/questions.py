"""How the simulated model understands a question: which task it asks and its parameters.

The simulated models read questions the way they read records: by their wording. A question
no pattern recognises is ``Question("unknown", ...)``; the models then fall back to generic
behaviour (an extractive answer, or a generic chunk-and-combine REPL program).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "count",
        re.compile(
            r"How many instances from user (?P<user>\d+) have the label '(?P<label>[^']+)'", re.I
        ),
    ),
    (
        "most_common",
        re.compile(
            r"Which label is the most common among the instances from user (?P<user>\d+)", re.I
        ),
    ),
    (
        "compare",
        re.compile(
            r"Which of these users has the most instances with the label '(?P<label>[^']+)': "
            r"(?P<named>(?:user \d+(?:, | or )?)+)",
            re.I,
        ),
    ),
    (
        "pairs",
        re.compile(
            r"List all pairs of user IDs such that both users have at least one instance with the "
            r"label '(?P<label>[^']+)'",
            re.I,
        ),
    ),
    ("needle", re.compile(r"special magic number for (?P<key>[\w-]+)", re.I)),
    (
        "arithmetic",
        re.compile(r"What is (?P<a>-?\d+) (?P<op>plus|minus|times) (?P<b>-?\d+)\?", re.I),
    ),
    # Before fact_city, whose pattern also matches this wording.
    (
        "hop_city",
        re.compile(
            r"In which city is the organisation whose director is (?P<person>[A-Z][\w-]+"
            r"(?: [A-Z][\w-]+)*) based\?"
        ),
    ),
    ("fact_org", re.compile(r"Which organisation is directed by (?P<person>.+?)\?", re.I)),
    ("fact_year", re.compile(r"In which year was (?P<entity>.+?) founded\?", re.I)),
    ("fact_city", re.compile(r"In which city is (?P<entity>.+?) based\?", re.I)),
    ("fact_count", re.compile(r"How many people does (?P<entity>.+?) employ\?", re.I)),
    ("fact_person", re.compile(r"Who is the director of (?P<entity>.+?)\?", re.I)),
    ("recall_name", re.compile(r"what name did I give you", re.I)),
    ("recall_city", re.compile(r"Which city did I say I just moved to", re.I)),
    ("recall_pet", re.compile(r"What is my (?P<pet>\w+)'s name", re.I)),
    ("recall_colour", re.compile(r"what did I say my favou?rite colou?r is", re.I)),
    ("shout", re.compile(r"reply with just the word '(?P<word>[^']+)' in capital letters", re.I)),
)

# Families whose answers aggregate over many records: these need the whole context read.
AGGREGATE_KINDS = frozenset({"count", "most_common", "compare", "pairs"})


@dataclass(frozen=True)
class Question:
    """A recognised question: its kind and the parameters read from its wording."""

    kind: str
    text: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def users(self) -> tuple[str, ...]:
        """The user ids the question is about."""
        if "named" in self.params:
            return tuple(re.findall(r"\d+", self.params["named"]))
        return (self.params["user"],) if "user" in self.params else ()


def understand(text: str) -> Question:
    """Recognise the question in ``text`` (the first pattern that matches wins)."""
    for kind, pattern in _PATTERNS:
        match = pattern.search(text)
        if match:
            params = {k: v for k, v in match.groupdict().items() if v is not None}
            return Question(kind, text.strip(), params)
    return Question("unknown", text.strip())


def split_question(content: str) -> tuple[str, str]:
    """Split a user message into (context, question): the question is the last paragraph."""
    body = content.rstrip()
    head, sep, tail = body.rpartition("\n\n")
    if not sep:
        return "", body
    return head, tail
