"""Multi-hop lookups: two facts, far apart in a long text, that must be chained.

The text holds a few organisations, each with a director and a city, stated in separate
sentences at random depths. The question names a director and asks for the city of that
director's organisation: the first hop finds the organisation, the second its city. A reader
that finds only one fact cannot answer, and the distractor organisations make a guess
unlikely. The haystack is the essay filler by default; ``filler`` lets a caller plant the
facts in other text (the realistic-mix benchmark uses real text from the machine).
"""

from __future__ import annotations

import random

from rlm_router.sim.tasks._filler import Filler, haystack
from rlm_router.sim.tasks._lookup import CITIES, ORGS, PEOPLE
from rlm_router.sim.tasks._task import Task

N_ORGS = 5
HOP_QUESTION = (
    "In which city is the organisation whose director is {person} based? First find the "
    "organisation, then its city. Answer with the city only."
)
_FACTS_TOKENS = 25  # per planted sentence, about


def multihop(
    n_tokens: int, seed: int, kind: str | None = None, filler: Filler | None = None
) -> Task:
    """A director → organisation → city question over ``N_ORGS`` organisations."""
    rng = random.Random(f"multihop:{seed}:{n_tokens}")
    orgs = rng.sample(ORGS, N_ORGS)
    people = rng.sample(PEOPLE, N_ORGS)
    cities = [rng.choice(CITIES) for _ in orgs]
    target = rng.randrange(N_ORGS)
    # Distractors never share the target's city, so only the right chain gives the answer.
    for i in range(N_ORGS):
        while i != target and cities[i] == cities[target]:
            cities[i] = rng.choice(CITIES)
    sentences = [f"The director of {o} is {p}.\n\n" for o, p in zip(orgs, people, strict=True)]
    sentences += [
        f"{o[0].upper()}{o[1:]} is based in {c}.\n\n" for o, c in zip(orgs, cities, strict=True)
    ]
    paragraphs, total = (filler or haystack)(rng, max(64, n_tokens - _FACTS_TOKENS * N_ORGS * 2))
    for sentence in sentences:
        paragraphs.insert(int(rng.uniform(0.02, 0.98) * len(paragraphs)), sentence)
    return Task(
        family="multihop",
        kind=kind or "director_city",
        context="".join(paragraphs).rstrip(),
        question=HOP_QUESTION.format(person=people[target]),
        answer=cities[target],
        n_tokens=total + _FACTS_TOKENS * N_ORGS * 2,
        seed=seed,
        scoring="exact",
        options=tuple(sorted(set(CITIES))),
        metadata={"organisation": orgs[target], "person": people[target]},
    )
