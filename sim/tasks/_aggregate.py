"""OOLONG-style aggregation and OOLONG-Pairs-style pair listing over labelled records.

The questions are about a few planted users whose records sit at random places among
background records, so the number of relevant records stays the same at every length: the
difficulty grows with the reading load (the length), which is what the published curves
measure, and an exact answer stays reachable for a reader that catches nearly every record.
"""

from __future__ import annotations

import itertools
import random

from rlm_router.sim.tasks._task import Scoring, Task
from rlm_router.sim.tasks.records import LABELS, background, header, plant, user_ids

OOLONG_KINDS = ("count", "most_common", "compare")

_MOST_COMMON_SHAPE = (5, 3, 2, 2, 1, 1)  # winner by a margin of 2 over 14 records


def _spread(rng: random.Random, n: int, labels: list[str]) -> list[str]:
    return [rng.choice(labels) for _ in range(n)]


def oolong(n_tokens: int, seed: int, kind: str | None = None) -> Task:
    """An aggregation question over a planted user's (or two users') hidden labels."""
    rng = random.Random(f"oolong:{seed}:{n_tokens}")
    kind = kind or rng.choice(OOLONG_KINDS)
    if kind not in OOLONG_KINDS:
        raise ValueError(f"unknown oolong kind {kind!r}; expected one of {OOLONG_KINDS}")
    focus = user_ids(rng, 4)
    records = background(rng, n_tokens, exclude_users=focus, exclude_label=None)
    label = rng.choice(LABELS)
    others = [lab for lab in LABELS if lab != label]
    user = focus[0]
    scoring: Scoring
    options: tuple[str, ...]
    if kind == "count":
        count = rng.randint(6, 12)
        plant(rng, records, user, [label] * count + _spread(rng, 20 - count, others))
        focus = focus[:1]
        question = (
            f"How many instances from user {user} have the label '{label}'? "
            "Answer with a single number."
        )
        answer, scoring, options = str(count), "numeric", ()
    elif kind == "most_common":
        shuffled = rng.sample(LABELS, len(LABELS))
        planted = [
            lab for lab, n in zip(shuffled, _MOST_COMMON_SHAPE, strict=True) for _ in range(n)
        ]
        plant(rng, records, user, planted)
        focus = focus[:1]
        question = (
            f"Which label is the most common among the instances from user {user}? "
            "Answer with the label only."
        )
        answer, scoring, options = shuffled[0], "exact", LABELS
    else:
        # One user leads by two; the others trail in a shuffled order.
        counts = rng.sample((6, 4, 3, 2), 4)
        for uid, n in zip(focus, counts, strict=True):
            plant(rng, records, uid, [label] * n + _spread(rng, 8 - n, others))
        named = ", ".join(f"user {uid}" for uid in focus[:-1]) + f" or user {focus[-1]}"
        question = (
            f"Which of these users has the most instances with the label '{label}': {named}? "
            "Answer with the user ID only."
        )
        answer, scoring, options = focus[counts.index(6)], "exact", tuple(focus)
    context = header() + "\n".join(records.lines)
    return Task(
        family="oolong",
        kind=kind,
        context=context,
        question=question,
        answer=answer,
        n_tokens=records.n_tokens + 60,
        seed=seed,
        scoring=scoring,
        options=options,
        metadata={"users": tuple(focus), "label": label},
    )


def oolong_pairs(n_tokens: int, seed: int, kind: str | None = None) -> Task:
    """List every pair of users who both have a record with a given (rare) label."""
    rng = random.Random(f"oolong_pairs:{seed}:{n_tokens}")
    label = rng.choice(LABELS)
    others = [lab for lab in LABELS if lab != label]
    qualifying = user_ids(rng, rng.randint(5, 8))
    records = background(rng, n_tokens, exclude_users=qualifying, exclude_label=label)
    for user in qualifying:
        plant(rng, records, user, [label, *_spread(rng, rng.randint(1, 4), others)])
    pairs = sorted(
        (a, b) if int(a) < int(b) else (b, a) for a, b in itertools.combinations(qualifying, 2)
    )
    question = (
        f"List all pairs of user IDs such that both users have at least one instance with the "
        f"label '{label}'. Write each pair as (smaller ID, larger ID), one pair per line."
    )
    return Task(
        family="oolong_pairs",
        kind=kind or "pairs",
        context=header() + "\n".join(records.lines),
        question=question,
        answer="\n".join(f"({a}, {b})" for a, b in pairs),
        n_tokens=records.n_tokens + 60,
        seed=seed,
        scoring="pairs_f1",
        metadata={"users": tuple(sorted(qualifying)), "label": label},
    )
