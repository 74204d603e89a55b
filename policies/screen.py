"""The screen: below how many tokens no request can reach the classifier's threshold.

Reading the instruction (``policies.task_model``) and the data's density costs ~0.1 ms per
request at every size, half of a 1K-token request's decision budget. On short requests it
is wasted: the classifier's terms that can lift a score (task kind times length, density
times length, window share) are too small there for any instruction or data to reach the
threshold. ``Screen.build`` finds that size for a classifier, exactly, from its artifact:

- Every feature but the token-derived ones is *unknown* before the expensive step, with a
  sound range: the five task probabilities lie on the simplex, the density shares in [0, 1],
  counts in [0, inf). The token-derived ones (``n_tokens``, ``log2_tokens``,
  ``window_ratio``) lie in the interval of token counts being checked.
- A term is a product of factors; when no factor repeats, at most one of them is a task
  probability, and its clip cannot bind on those ranges, the term is multilinear in the
  unknowns (linear on the simplex), and a sum of such terms takes its maximum at a vertex:
  a pure task kind, each other factor at an end of its range. Other terms are bounded on
  their own (all ranges are non-negative, so a product's range is the product of the ends).
- Token counts are checked in intervals from 0 upwards (5% wide); the limit is the start
  of the first interval whose bound reaches the threshold.

So a request below the limit is routed direct exactly as the full decision would route it;
the router only skips computing what could not change that (``Router.decide``). With
exploration on, nothing is skipped: an explored request needs its features for training.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rlm_router.policies.classifier import LinearClassifier, Term, sigmoid

TASK = ("task_chat", "task_lookup", "task_aggregate", "task_pairwise", "task_multihop")
# task_compositional is aggregate + pairwise + multihop: linear on the simplex too.
TASK_SUMS = {"task_compositional": frozenset(TASK[2:])}
TOKEN_DERIVED = ("n_tokens", "log2_tokens", "window_ratio")
# Sound ranges of what is not known before the expensive features are computed.
UNKNOWN_RANGES: Mapping[str, tuple[float, float]] = {
    "compress_ratio": (0.0, 12.0),  # zlib on a few bytes can exceed the input 10x
    "record_line_frac": (0.0, 1.0),
    "line_density": (0.0, 1000.0),  # lines per 1,000 characters
    "digit_rate": (0.0, 1.0),
    "entity_rate": (0.0, 1.0),
    "lexical_diversity": (0.0, 1.0),
    "prose_line_frac": (0.0, 1.0),
    "code_line_frac": (0.0, 1.0),
    "dense_frac": (0.0, 1.0),
    "task_confidence": (0.0, 1.0),
    "question_chars": (0.0, math.inf),
    "agg_cues": (0.0, math.inf),
    "pair_cues": (0.0, math.inf),
    "multihop_cues": (0.0, math.inf),
    "lookup_cues": (0.0, math.inf),
    # known per request, but not from the token count alone
    "tokens_estimated": (0.0, 1.0),
    "n_chars": (0.0, math.inf),
    "latency_budget_ms": (0.0, math.inf),
    "has_latency_budget": (0.0, 1.0),
    "stream": (0.0, 1.0),
    "has_tools": (0.0, 1.0),
    "n_turns": (0.0, math.inf),
    "n_messages": (0.0, math.inf),
}
KNOWN_NAMES = frozenset((*UNKNOWN_RANGES, *TASK, *TASK_SUMS, *TOKEN_DERIVED, "context_window"))
INTERVAL_RATIO = 1.05
MAX_VERTEX_VARIABLES = 8  # 5 x 2^8 vertices per interval at most
SCAN_MAX_TOKENS = 1 << 24


@dataclass(frozen=True, slots=True)
class Screen:
    """Requests under ``limit`` tokens cannot reach the threshold; ``score_bound`` is the
    highest score any of them could get (what a screened decision reports as its score)."""

    limit: int
    highs: tuple[int, ...]  # interval ends, ascending, each interval's bound below
    bounds: tuple[float, ...]

    @classmethod
    def build(cls, classifier: LinearClassifier, threshold: float, context_window: int) -> Screen:
        """The screen of ``classifier`` at ``threshold`` against a direct model with
        ``context_window`` tokens (``limit`` 0: it cannot apply)."""
        highs: list[int] = []
        bounds: list[float] = []
        if not 0.0 < threshold < 1.0:
            return cls(0, (), ())
        target = math.log(threshold / (1.0 - threshold))
        window = max(1, context_window)
        low, high = 0, 64
        while low < SCAN_MAX_TOKENS:
            bound = max_logit(classifier, low, high, window)
            if bound is None or bound >= target:
                break
            highs.append(high)
            bounds.append(bound)
            low, high = high, max(high + 1, int(high * INTERVAL_RATIO))
        return cls(low, tuple(highs), tuple(bounds))

    def score_bound(self, n_tokens: int) -> float:
        """An upper bound of the score of a request of ``n_tokens`` (< ``limit``)."""
        index = min(bisect.bisect_left(self.highs, n_tokens), len(self.bounds) - 1)
        return sigmoid(self.bounds[index])


def max_logit(classifier: LinearClassifier, low: int, high: int, window: int) -> float | None:
    """An upper bound of the classifier's logit over every request of ``low``-``high``
    tokens (None: no finite bound)."""
    known = {
        "n_tokens": (float(low), float(high)),
        "log2_tokens": (math.log2(1 + low), math.log2(1 + high)),
        "window_ratio": (low / window, high / window),
        "context_window": (float(window), float(window)),
    }
    constant = classifier.intercept
    vertex_terms: list[tuple[Term, tuple[str, ...]]] = []
    for term in classifier.terms:
        variables = _variables(term)
        if variables is None:
            return None
        ranges = [_range(name, known) for name in variables]
        v_low = math.prod(r[0] for r in ranges)
        v_high = math.prod(r[1] for r in ranges)
        if _multilinear(variables) and term.clip_low <= v_low and v_high <= term.clip_high:
            vertex_terms.append((term, variables))
            continue
        extreme = v_high if term.coef > 0 else v_low
        if math.isinf(extreme):
            extreme = term.clip_high if term.coef > 0 else term.clip_low
        if math.isinf(extreme):
            return None
        clipped = min(term.clip_high, max(term.clip_low, extreme))
        constant += term.coef * (clipped - term.mean) / term.scale
    box = sorted({v for _, vs in vertex_terms for v in vs if not _is_task(v)})
    if len(box) > MAX_VERTEX_VARIABLES:
        return None
    box_ranges = {name: _range(name, known) for name in box}
    if any(math.isinf(box_ranges[name][1]) for name in box):
        return None
    best = -math.inf
    for task in TASK:
        for ends in itertools.product((0, 1), repeat=len(box)):
            point = {name: box_ranges[name][end] for name, end in zip(box, ends, strict=True)}
            logit = constant
            for term, variables in vertex_terms:
                value = math.prod(_at(name, point, task) for name in variables)
                logit += term.coef * (value - term.mean) / term.scale
            best = max(best, logit)
    return best


def _variables(term: Term) -> tuple[str, ...] | None:
    """The term's factors as bound variables: a capped factor is its own variable (its
    capped value), so the cap needs no special case; None for an unknown feature name."""
    out = []
    for factor, cap in zip(term.factors, term.caps, strict=True):
        if factor not in KNOWN_NAMES:
            return None
        out.append(factor if cap is None else f"{factor}@{cap!r}")
    return tuple(out)


def _multilinear(variables: Iterable[str]) -> bool:
    names = list(variables)
    return len(set(names)) == len(names) and sum(map(_is_task, names)) <= 1


def _is_task(name: str) -> bool:
    return name in TASK or name in TASK_SUMS


def _range(name: str, known: Mapping[str, tuple[float, float]]) -> tuple[float, float]:
    base, _, cap = name.partition("@")
    if base in known:
        low, high = known[base]
    elif base in UNKNOWN_RANGES:
        low, high = UNKNOWN_RANGES[base]
    else:  # a task probability (or a sum of them): [0, 1]
        low, high = 0.0, 1.0
    if cap:
        limit = float(cap)
        low, high = min(low, limit), min(high, limit)
    return low, high


def _at(name: str, point: Mapping[str, float], task: str) -> float:
    """A variable's value at a vertex: ``task`` is the pure task kind."""
    if name in TASK:
        return 1.0 if name == task else 0.0
    if name in TASK_SUMS:
        return 1.0 if task in TASK_SUMS[name] else 0.0
    return point[name]
