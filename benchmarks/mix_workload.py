"""The realistic-mix workload: a seeded list of requests shaped like production traffic.

About 80% short: multi-turn chat, short QA (arithmetic and reading over up to 4K tokens), and
latency-budgeted requests (QA, needles and aggregation over 2K-64K tokens carrying
``metadata.latency_budget_ms``). About 20% long, 16K-1M tokens, from the task families in
``sim.tasks``: lookups (S-NIAH), aggregation (OOLONG), pairwise (OOLONG-Pairs) and multi-hop
(director -> organisation -> city). Half of the lookups and multi-hop requests hide their
facts in real text read from this machine (Debian changelogs, man pages, the dpkg database,
standard-library source, licences: ``benchmarks.routing_eval.sources``), the rest in the
families' own filler. Lengths are skewed to the short end, as traffic is: a quarter of the
long requests are 16K, 3% are 1M.

The same ``(n, seed)`` always gives the same requests; every request has its own seed, so no
two share a question. Real text is read once per process and cut at a seeded offset.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import partial
from typing import Any

from rlm_router.sim.tasks import Filler, Task, generate

# Share of the whole workload per category (sums to 1).
MIX: dict[str, float] = {
    "chat": 0.30,
    "qa": 0.30,
    "budgeted": 0.20,
    "lookup": 0.05,
    "aggregate": 0.07,
    "pairwise": 0.04,
    "multi-hop": 0.04,
}
SHORT_CATEGORIES = ("chat", "qa", "budgeted")
LONG_SIZES: tuple[tuple[int, float], ...] = (
    (16_000, 0.25),
    (32_000, 0.25),
    (64_000, 0.18),
    (128_000, 0.14),
    (256_000, 0.10),
    (512_000, 0.05),
    (1_000_000, 0.03),
)
_LONG_FAMILY = {
    "lookup": "niah",
    "aggregate": "oolong",
    "pairwise": "oolong_pairs",
    "multi-hop": "multihop",
}
# Real-text sources a fact can hide in; the changelogs (~20 MB) cover any length alone.
REAL_TEXT = ("changelogs", "man_en", "dpkg", "code_asyncio", "licences", "man_de")
_BUDGETS_MS = (1_000.0, 2_000.0, 5_000.0, 30_000.0)


@dataclass(frozen=True)
class MixRequest:
    """One request of the mix: what to build (``task()``), its category and latency budget.

    The task is built when asked for, not kept: 400 long contexts held at once would be
    ~170 MB, and building one costs milliseconds (a 1M-token OOLONG context ~0.1 s).
    """

    index: int
    category: str
    family: str
    n_tokens: int
    seed: int
    kind: str | None = None
    latency_budget_ms: float | None = None
    text_source: str = "filler"  # where a lookup's or multi-hop's facts hide

    @property
    def long(self) -> bool:
        return self.category not in SHORT_CATEGORIES

    def task(self) -> Task:
        filler = None if self.text_source == "filler" else real_text_filler(self.text_source)
        return generate(self.family, self.n_tokens, seed=self.seed, kind=self.kind, filler=filler)


def real_text_filler(name: str) -> Filler:
    """A ``sim.tasks`` filler cutting source ``name`` at a seeded offset into paragraphs."""
    from benchmarks.routing_eval.sources import fit

    def fill(rng: random.Random, n_tokens: int) -> tuple[list[str], int]:
        text = fit(name, n_tokens, offset=rng.random() * 0.6)
        paragraphs = [p.strip("\n") + "\n\n" for p in text.split("\n\n") if p.strip()]
        return paragraphs, n_tokens

    return fill


def request_kwargs(request: MixRequest, task: Task) -> dict[str, Any]:
    """The OpenAI chat-completion arguments a client sends for ``request`` (model aside)."""
    out: dict[str, Any] = {"messages": task.messages()}
    if request.latency_budget_ms is not None:
        out["metadata"] = {"latency_budget_ms": request.latency_budget_ms}
    return out


def _counts(n: int) -> dict[str, int]:
    """Requests per category: the shares of ``MIX`` rounded so they sum to ``n``."""
    counts = {c: int(n * share) for c, share in MIX.items()}
    order = sorted(MIX, key=lambda c: n * MIX[c] - counts[c], reverse=True)
    for c in order[: n - sum(counts.values())]:
        counts[c] += 1
    return counts


def _request(index: int, category: str, seed: int, rng: random.Random) -> MixRequest:
    make = partial(MixRequest, index=index, category=category, seed=seed)
    if category == "chat":
        return make(family="chat", n_tokens=0)
    if category == "qa":
        if rng.random() < 0.3:
            return make(family="qa", n_tokens=0, kind="arithmetic")
        n = rng.choice((300, 1_000, 2_000, 4_000))
        return make(family="qa", n_tokens=n, kind="reading")
    if category == "budgeted":
        family = rng.choice(("qa", "niah", "oolong"))
        return make(
            family=family,
            n_tokens=rng.choice((2_000, 8_000, 16_000, 32_000, 64_000)),
            kind="reading" if family == "qa" else None,
            latency_budget_ms=rng.choice(_BUDGETS_MS),
        )
    family = _LONG_FAMILY[category]
    sizes, weights = zip(*LONG_SIZES, strict=True)
    n = rng.choices(sizes, weights=weights)[0]
    source = "filler"
    if family in ("niah", "multihop") and rng.random() < 0.5:
        source = rng.choice(REAL_TEXT)
    return make(family=family, n_tokens=n, text_source=source)


def build(n: int = 2_000, seed: int = 0) -> list[MixRequest]:
    """The ``n`` requests of the mix, shuffled into arrival order."""
    rng = random.Random(f"mix:{seed}:{n}")
    slots = [c for c, k in _counts(n).items() for _ in range(k)]
    rng.shuffle(slots)
    return [_request(i, c, seed * 1_000_003 + i, rng) for i, c in enumerate(slots)]
