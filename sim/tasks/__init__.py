"""Benchmark task families with their scorers, parameterised by length and seed.

``generate(family, n_tokens=..., seed=...)`` builds one :class:`Task`; the same arguments
always build the same task. Families:

- ``chat``: a short conversation whose answer the user gave earlier (must stay direct).
- ``qa``: short reading-comprehension or arithmetic questions (must stay direct).
- ``niah``: S-NIAH, one needle in a long haystack, substring-scored.
- ``oolong``: OOLONG-style aggregation over ``Date || User || Instance`` records with hidden
  labels; counts scored 0.75^|error|, labels and user ids by exact match.
- ``oolong_pairs``: OOLONG-Pairs-style, every user-id pair meeting a label condition, F1.
- ``multihop``: two facts far apart in a long text, chained (director -> organisation ->
  city), exact match.

``niah`` and ``multihop`` take ``filler=`` to plant their facts in other text than the
essay filler (e.g. real text).
"""

from __future__ import annotations

import typing

from rlm_router.sim.tasks import _aggregate, _chat, _lookup, _multihop
from rlm_router.sim.tasks._aggregate import OOLONG_KINDS
from rlm_router.sim.tasks._filler import Filler
from rlm_router.sim.tasks._task import Task, parse_pairs, render_request
from rlm_router.sim.tasks.records import LABELS, classify_instance

if typing.TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "FAMILIES",
    "LABELS",
    "OOLONG_KINDS",
    "Filler",
    "Task",
    "classify_instance",
    "generate",
    "parse_pairs",
    "render_request",
]

_GENERATORS: dict[str, Callable[[int, int, str | None], Task]] = {
    "chat": _chat.chat,
    "qa": _lookup.qa,
    "niah": _lookup.niah,
    "oolong": _aggregate.oolong,
    "oolong_pairs": _aggregate.oolong_pairs,
    "multihop": _multihop.multihop,
}
_FILLED: dict[str, Callable[[int, int, str | None, Filler | None], Task]] = {
    "niah": _lookup.niah,
    "multihop": _multihop.multihop,
}
FAMILIES: tuple[str, ...] = tuple(_GENERATORS)


def generate(
    family: str,
    n_tokens: int = 8_000,
    seed: int = 0,
    *,
    kind: str | None = None,
    filler: Filler | None = None,
) -> Task:
    """Build the ``family`` task of about ``n_tokens`` context tokens for ``seed``.

    ``kind`` picks a question type within the family (e.g. oolong's "count"); by default the
    seed picks it. Short families (chat, arithmetic qa) ignore ``n_tokens``. ``filler`` (niah
    and multihop only) supplies the haystack text.
    """
    try:
        generator = _GENERATORS[family]
    except KeyError:
        raise ValueError(f"unknown task family {family!r}; expected one of {FAMILIES}") from None
    if n_tokens < 0:
        raise ValueError("n_tokens must be >= 0")
    if filler is not None:
        if family not in _FILLED:
            raise ValueError(f"family {family!r} takes no filler; only {tuple(_FILLED)} do")
        return _FILLED[family](n_tokens, seed, kind, filler)
    return generator(n_tokens, seed, kind)
