"""Request features: a handful of plain numbers, cheap enough to compute on every request.

Cost is kept flat in the input size:

- Token count is exact (tiktoken, o200k) up to ``EXACT_MAX_CHARS`` characters of text. Above
  that it is estimated from ``SAMPLE_COUNT`` evenly spaced slices of ``SAMPLE_CHARS``
  characters: tokens-per-character on the slices times the total characters. Exact encoding
  is cheaper than sampling below ``SAMPLE_COUNT * SAMPLE_CHARS`` characters, and the threshold
  sits at twice that so the exact path stays under ~3 ms (measured by
  ``benchmarks/decision_bench.py``, which also measures the estimate's error at 1M and 10M
  tokens).
- Density features (compressibility, record-like lines, digit and distinct-entity rates) are
  computed on at most ``DENSITY_CHARS`` characters of context, taken as evenly spaced slices.
- Compositionality cues are regex counts over the question only (see ``router.request`` for
  how the question is separated from the bulk context).

Features never contain request text, so they can go on spans and into training sets.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import asdict, dataclass, fields

from rlm_core.tokens import encoding
from router.request import ChatRequest, TextSpan

EXACT_MAX_CHARS = 1536
SAMPLE_BUDGET_MIN = 1536
SAMPLE_BUDGET_MAX = 32_768
SAMPLE_COUNT = 32
SAMPLE_MIN_WIDTH = 256
DENSITY_CHARS = 1024
DENSITY_SLICES = 4
# OpenAI chat formatting: a few tokens per message plus the reply primer.
TOKENS_PER_MESSAGE = 3
REPLY_PRIMER_TOKENS = 3
DEFAULT_CONTEXT_WINDOW = 128_000

_AGGREGATION = re.compile(
    r"\b(how many|count(?:s|ing)?|number of|total|sum|average|mean|median|most (?:common|frequent)"
    r"|least (?:common|frequent)|more common|less common|frequen(?:cy|cies)|distribution|proportion"
    r"|percentage|majority|aggregate|tally|overall|across all|each|every|list all|summari[sz]e"
    r"|(?:the )?(?:most|fewest|least|highest|lowest)"
    r"|all (?:the )?\w+ (?:that|who|with))\b"
)
_PAIRWISE = re.compile(
    r"\b(pairs?|pairwise|each other|both|which two|combinations?|compare|comparison"
    r"|between\b.{1,60}?\band)\b"
)
_MULTI_HOP = re.compile(
    r"\b(whose|then|after that|based on|in turn|given that|which of (?:those|these|them)|who also"
    r"|that also|followed by|before|afterwards|subsequently)\b"
)
_LOOKUP = re.compile(
    r"\b(what is the|what's the|what was the|find the|who is|where is|when did|magic number|special"
    r"|value of|retrieve|look up|lookup|mentioned|according to|quote|the (?:one|single)"
    r"|in which|which (?:city|year|country|person|town|day|name))\b"
)
# A record-like line carries at least two field separators (OOLONG's "a || b || c", TSV, CSV,
# "key: value" pairs).
_RECORD_LINE = re.compile(r"^(?:[^\n]*?(?:\|\||\t|\||, |; |\w: )){2}", re.MULTILINE)
_DIGITS = "0123456789"


@dataclass(frozen=True, slots=True)
class RequestFeatures:
    """What the policy sees of a request. Plain numbers only."""

    n_tokens: int
    tokens_estimated: int
    n_chars: int
    question_chars: int
    context_window: int
    window_ratio: float
    log2_tokens: float
    compress_ratio: float
    record_line_frac: float
    line_density: float
    digit_rate: float
    entity_rate: float
    lexical_diversity: float
    agg_cues: int
    pair_cues: int
    multihop_cues: int
    lookup_cues: int
    latency_budget_ms: float
    has_latency_budget: int
    stream: int
    has_tools: int
    n_turns: int
    n_messages: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in fields(RequestFeatures))


def extract_features(
    req: ChatRequest, *, context_window: int = DEFAULT_CONTEXT_WINDOW
) -> RequestFeatures:
    """Compute the features of ``req`` against a direct model with ``context_window`` tokens."""
    question = req.question
    spans = req.context_spans
    if question:
        spans = (*spans, TextSpan(question, 0, len(question)))
    n_chars = sum(len(span) for span in spans)
    text_tokens, estimated = count_span_tokens(spans, n_chars)
    n_tokens = text_tokens + TOKENS_PER_MESSAGE * len(req.messages) + REPLY_PRIMER_TOKENS
    density = _density(req.context_spans) if req.context_spans else _density(spans)
    q = question.lower()
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
        agg_cues=len(_AGGREGATION.findall(q)),
        pair_cues=len(_PAIRWISE.findall(q)),
        multihop_cues=len(_MULTI_HOP.findall(q)),
        lookup_cues=len(_LOOKUP.findall(q)),
        latency_budget_ms=budget if budget is not None else 0.0,
        has_latency_budget=int(budget is not None),
        stream=int(req.stream),
        has_tools=int(req.has_tools),
        n_turns=req.n_turns,
        n_messages=len(req.messages),
    )


def count_span_tokens(spans: tuple[TextSpan, ...], n_chars: int | None = None) -> tuple[int, bool]:
    """(token count of the spans' text, whether it was estimated from samples)."""
    total = sum(len(span) for span in spans) if n_chars is None else n_chars
    encode = encoding().encode_ordinary
    if total <= EXACT_MAX_CHARS:
        return sum(len(encode(span.materialize())) for span in spans), False
    budget = min(SAMPLE_BUDGET_MAX, max(SAMPLE_BUDGET_MIN, total // 16))
    count = min(SAMPLE_COUNT, max(1, budget // SAMPLE_MIN_WIDTH))
    samples = _even_slices(spans, total, count, budget // count, align=True)
    sampled_chars = sum(len(s) for s in samples)
    if sampled_chars == 0:
        return 0, True
    sampled_tokens = sum(len(encode(s)) for s in samples)
    return round(sampled_tokens * total / sampled_chars), True


def _even_slices(
    spans: tuple[TextSpan, ...], total: int, count: int, width: int, *, align: bool
) -> list[str]:
    """``count`` slices of about ``width`` characters, evenly spaced over the spans' text.

    With ``align`` each slice starts after and ends at whitespace, so no word is cut in two
    (a cut word encodes to more tokens than it does in place, biasing the estimate upward).
    """
    if total <= count * width:
        return [span.materialize() for span in spans]
    out: list[str] = []
    stride = total / count
    span_index = 0
    span_base = 0  # virtual offset of spans[span_index]
    for k in range(count):
        target = int(k * stride + (stride - width) / 2)
        while span_index < len(spans) - 1 and target >= span_base + len(spans[span_index]):
            span_base += len(spans[span_index])
            span_index += 1
        text, start, end = spans[span_index]
        lo = max(start, start + target - span_base)
        hi = min(end, lo + width)
        if align and hi - lo > 64:
            space = text.find(" ", lo, lo + 32)
            if space >= 0:
                lo = space + 1
            space = text.rfind(" ", hi - 32, hi)
            if space >= lo:
                hi = space
        out.append(text[lo:hi])
    return out


def _density(spans: tuple[TextSpan, ...]) -> tuple[float, float, float, float, float, float]:
    """Density features of the spans (in RequestFeatures order), on evenly spaced slices."""
    total = sum(len(span) for span in spans)
    if total == 0:
        return (1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    sample = "\n".join(
        _even_slices(spans, total, DENSITY_SLICES, DENSITY_CHARS // DENSITY_SLICES, align=False)
    )
    raw = sample.encode("utf-8", "replace")
    compress_ratio = len(zlib.compress(raw, 1)) / max(1, len(raw))
    n_lines = sample.count("\n") + 1
    record_frac = min(1.0, len(_RECORD_LINE.findall(sample)) / n_lines)
    words = sample.split()
    n_words = max(1, len(words))
    distinct = set(words)
    # Distinct capitalised words and numbers/ids: a cheap stand-in for named entities.
    entities = sum(1 for w in distinct if w[0].isupper() or w[0].isdigit())
    return (
        compress_ratio,
        record_frac,
        1000.0 * n_lines / len(sample),
        sum(sample.count(d) for d in _DIGITS) / len(sample),
        entities / n_words,
        len(distinct) / n_words,
    )
