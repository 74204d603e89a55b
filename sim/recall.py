"""The recall curve: the chance that a reading of a prompt catches one relevant item.

One curve per model, a log-logistic in the reading *load*::

    r(load) = recall_max / (1 + (load / recall_half_load) ** recall_slope)

For information-dense prompts (records that all have to be read) the load is the prompt's
token count. A single needle in a low-density haystack loads a reader far less: its load is
the prompt's tokens divided by ``SPARSE_LOAD_DIVISOR``, so lookups stay near the top of the
curve up to the window, as published S-NIAH results show. Parameters and the measurements
they reproduce are in CALIBRATION.md.

Whether a given item is caught is a pure function of (seed, model, item, prompt size): a hash
mapped to [0, 1) compared with r. No global random state, so every answer is reproducible.
"""

from __future__ import annotations

import hashlib

from rlm_router.sim.models import SimModel

SPARSE_LOAD_DIVISOR = 16.0


def recall(model: SimModel, load: float) -> float:
    """The probability of catching one relevant item at this reading load (tokens)."""
    if load <= 0:
        return model.recall_max
    return model.recall_max / (1.0 + (load / model.recall_half_load) ** model.recall_slope)


def draw(seed: int, model: str, item: str, prompt_tokens: int, salt: str = "") -> float:
    """A deterministic uniform number in [0, 1) for this item in this reading."""
    key = f"{seed}|{model}|{prompt_tokens}|{salt}|{item}".encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def caught(
    model: SimModel, seed: int, item: str, prompt_tokens: int, *, sparse: bool = False
) -> bool:
    """Whether this reading of a ``prompt_tokens``-token prompt catches ``item``."""
    load = prompt_tokens / SPARSE_LOAD_DIVISOR if sparse else prompt_tokens
    return draw(seed, model.name, item, prompt_tokens) < recall(model, load)
