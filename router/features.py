"""Request features: a handful of plain numbers, cheap enough to compute on every request.

Cost is kept flat in the input size:

- Token count: exact o200k counts up to ``EXACT_MAX_CHARS`` characters (~8K tokens), by
  ``rlm_core.tokens.WordCounter``, which sums cached counts of the pieces between single
  spaces (tiktoken's own count on 129 of 152 real texts, off on tab+space indentation, worst
  0.72%; ~50 ns per character on real text once its words are cached, ~120 ns when half are
  new). Above that it is estimated from an eighth of the text (16K-48K characters) in
  slices of 128 characters, one at a jittered place in each stratum of the text, cut at
  single spaces: tokens per character on the sample times the total characters, so the cost
  stops growing at ~400K characters (``rlm_core.token_sample``). On 19 real-text sources at
  four offsets each the estimate's rms error is ~1.5% at 32K tokens, ~1.0% at 200K and
  ~1.2% at 1M (single texts up to 4.4%: heterogeneous man pages, code and dpkg's
  database); unbiased on average. It only matters near the window limit, where the
  dispatcher's context-length fallback covers it.
  The count covers every message's text as sent.
- Screen: requests under ``policies.screen``'s limit (the shipped prior: ~1.1K tokens) stop
  here; nothing below could change their route.
- Density features (compressibility, record-like lines, digit and distinct-entity rates) are
  computed on at most ``DENSITY_CHARS`` characters of context, taken as evenly spaced slices.
- Structure: the share of sampled context lines that read as prose, as code, and the dense
  share (records, tables, code: everything that is not prose), on the same sample.
- Task kind: the probabilities of ``policies.task_model`` (chat, lookup, aggregate, pairwise,
  multi-hop) for the question, i.e. the instruction as ``router.instruction`` found it;
  ``task_compositional`` is the sum of the last three. The legacy English phrase counts
  (``*_cues``) are still computed so older artifacts and traces keep working.

Features never contain request text, so they can go on spans and into training sets.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Mapping
from typing import Any

from rlm_router.policies.features import FEATURE_NAMES, RequestFeatures
from rlm_router.policies.task_model import TaskModel, default_task_model
from rlm_router.rlm_core.tokens import EXACT_MAX_CHARS as EXACT_MAX_CHARS  # used by its tests
from rlm_router.rlm_core.tokens import count_span_tokens, even_slices
from rlm_router.router.instruction import code_line, prose_line
from rlm_router.router.request import ChatRequest, TextSpan

__all__ = ["FEATURE_NAMES", "RequestFeatures", "extract_body_features", "extract_features"]

DENSITY_CHARS = 768
DENSITY_SLICES = 4
# OpenAI chat formatting: a few tokens per message plus the reply primer.
TOKENS_PER_MESSAGE = 3
REPLY_PRIMER_TOKENS = 3
DEFAULT_CONTEXT_WINDOW = 128_000

# Compositionality cues: word n-grams (1-3 words) of the lower-cased question, looked up in
# one table, so the cost is a few dict lookups per question word (regex alternations over
# dozens of phrases cost ~250 ns per character).
_CUE_PHRASES: dict[str, str] = {
    "agg": "how many|count|counts|counting|number of|total|sum|average|mean|median|most|fewest"
    "|least|highest|lowest|most common|most frequent|least common|least frequent|more common"
    "|less common|frequency|frequencies|distribution|proportion|percentage|majority|aggregate"
    "|tally|overall|across all|each|every|list all|summarise|summarize",
    "pair": "pair|pairs|pairwise|each other|both|which two|combination|combinations|compare"
    "|comparison|between",
    "multihop": "whose|then|after that|based on|in turn|given that|which of those"
    "|which of these|which of them|who also|that also|followed by|before|afterwards"
    "|subsequently",
    "lookup": "what is the|what's the|what was the|find the|who is|where is|when did"
    "|magic number|special|value of|retrieve|look up|lookup|mentioned|according to|quote"
    "|the one|the single|in which|which city|which year|which country|which person|which town"
    "|which day|which name",
}
_CUE_FAMILIES = tuple(_CUE_PHRASES)
_CUES = {
    phrase: i
    for i, family in enumerate(_CUE_FAMILIES)
    for phrase in _CUE_PHRASES[family].split("|")
}
_WORD = re.compile(r"[a-z0-9']+")
# A record-like line carries at least two field separators (OOLONG's "a || b || c", TSV, CSV,
# "key: value" pairs); counted with str.count, ~4x cheaper than a regex over the sample.
_SEPARATORS = ("|", "\t", ", ", "; ", ": ", '":')
_DIGITS = "0123456789"


def _record_line(line: str) -> bool:
    # The separators of _SEPARATORS, spelled out: a generator over them cost 3x as much.
    c = line.count
    return c("|") + c("\t") + c(", ") + c("; ") + c(": ") + c('":') >= 2


def extract_features(
    req: ChatRequest,
    *,
    context_window: int = DEFAULT_CONTEXT_WINDOW,
    task_model: TaskModel | None = None,
    screen_below: int = 0,
) -> RequestFeatures:
    """Compute the features of ``req`` against a direct model with ``context_window`` tokens.

    Under ``screen_below`` tokens (``policies.screen``: no instruction or data could make the
    classifier escalate there) only the token count and the request's flags are computed;
    the task, cue and density features are 0 (``policies.decision.decide`` marks the decision
    with rule ``screened``).
    """
    spans = req.text_spans
    n_chars = sum(len(span) for span in spans)
    text_tokens, estimated = count_span_tokens(spans, n_chars)
    n_tokens = text_tokens + TOKENS_PER_MESSAGE * len(req.messages) + REPLY_PRIMER_TOKENS
    if n_tokens < screen_below:
        question, density, cues, task = "", _UNREAD_DENSITY, _UNREAD_CUES, _UNREAD_TASK
    else:
        question = req.question
        context = req.context_spans
        density = _density(context) if context else _density(spans)
        cues = cue_counts(question)
        task = (task_model or default_task_model()).predict(question) if question else _NO_TASK
    compositional = task["aggregate"] + task["pairwise"] + task["multihop"]
    budget = req.latency_budget_ms
    window = max(1, context_window)
    return RequestFeatures(
        n_tokens=n_tokens,
        tokens_estimated=int(estimated),
        n_chars=n_chars,
        question_chars=len(question),
        context_window=window,
        window_ratio=n_tokens / window,
        log2_tokens=math.log2(1 + n_tokens),
        compress_ratio=density[0],
        record_line_frac=density[1],
        line_density=density[2],
        digit_rate=density[3],
        entity_rate=density[4],
        lexical_diversity=density[5],
        prose_line_frac=density[6],
        code_line_frac=density[7],
        dense_frac=density[8],
        task_chat=task["chat"],
        task_lookup=task["lookup"],
        task_aggregate=task["aggregate"],
        task_pairwise=task["pairwise"],
        task_multihop=task["multihop"],
        task_compositional=compositional,
        task_confidence=max(task.values()),
        agg_cues=cues[0],
        pair_cues=cues[1],
        multihop_cues=cues[2],
        lookup_cues=cues[3],
        latency_budget_ms=budget if budget is not None else 0.0,
        has_latency_budget=int(budget is not None),
        stream=int(req.stream),
        has_tools=int(req.has_tools),
        n_turns=req.n_turns,
        n_messages=len(req.messages),
    )


# What a screened request's unread features are set to: 0.
_UNREAD_DENSITY: tuple[float, ...] = (0.0,) * 9
_UNREAD_CUES = [0, 0, 0, 0]
_UNREAD_TASK = dict.fromkeys(("chat", "lookup", "aggregate", "pairwise", "multihop"), 0.0)


def extract_body_features(
    body: Mapping[str, Any], *, context_window: int = DEFAULT_CONTEXT_WINDOW
) -> RequestFeatures:
    """``extract_features`` of a request body: the ``policies.features.FeatureExtractor``
    that policy builders (``policies.prior``) are given, so ``policies`` never imports us."""
    return extract_features(ChatRequest.parse(body), context_window=context_window)


def cue_counts(question: str) -> list[int]:
    """Counts of aggregation, pairwise, multi-hop and lookup phrases in ``question``."""
    counts = [0, 0, 0, 0]
    words = _WORD.findall(question.lower())
    get = _CUES.get
    previous = before = ""
    for word in words:
        for gram in (word, f"{previous} {word}", f"{before} {previous} {word}"):
            family = get(gram)
            if family is not None:
                counts[family] += 1
        before, previous = previous, word
    return counts


_NO_TASK = {"chat": 1.0, "lookup": 0.0, "aggregate": 0.0, "pairwise": 0.0, "multihop": 0.0}


def _density(spans: tuple[TextSpan, ...]) -> tuple[float, ...]:
    """Density features of the spans (in RequestFeatures order, compress_ratio to dense_frac),
    on evenly spaced slices."""
    total = sum(len(span) for span in spans)
    if total == 0:
        return (1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0)
    sample = "\n".join(even_slices(spans, total, DENSITY_SLICES, DENSITY_CHARS // DENSITY_SLICES))
    raw = sample.encode("utf-8", "replace")
    compress_ratio = len(zlib.compress(raw, 1)) / max(1, len(raw))
    lines = sample.split("\n")
    n_lines = len(lines)
    records = sum(map(_record_line, lines))
    record_frac = records / n_lines
    # Inner lines only: the slices' first and last lines are cut in the middle.
    inner = [line for line in lines[1:-1] if line.strip()] or [ln for ln in lines if ln.strip()]
    n_inner = max(1, len(inner))
    prose = sum(map(prose_line, inner)) / n_inner
    code = sum(map(code_line, inner)) / n_inner
    words = sample.split()
    n_words = max(1, len(words))
    distinct = set(words)
    # Distinct capitalised words and numbers/ids: a cheap stand-in for named entities.
    entities = sum(map(str.istitle, distinct)) + sum(map(str.isdigit, distinct))
    return (
        compress_ratio,
        record_frac,
        1000.0 * n_lines / len(sample),
        sum(sample.count(d) for d in _DIGITS) / len(sample),
        entities / n_words,
        len(distinct) / n_words,
        prose,
        code,
        1.0 - prose,
    )
