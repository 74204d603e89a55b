"""The shipped prior: a synthetic data set built from published LLM-vs-RLM behaviour, and its fit.

``rlm-router policy prior [--out policies/default_classifier.json] [--seed 0] [--n 300]``

How the data set is built (and from which figures) is documented in ``policies/PRIOR.md``.
In short: for each task family and a log-uniform input length, a request is synthesised
(text built here, independent of ``sim.tasks``), its features are extracted with the
production extractor (given by the caller: ``policies`` does not import ``router``),
and its label is drawn from the expected utility of each route, using
quality-vs-length curves anchored on the paper's figures and Table 1's cost ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import random
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

from policies.classifier import LinearClassifier
from policies.features import FeatureExtractor
from policies.fit import TermSpec, fit_linear

DEFAULT_OUT = Path(__file__).with_name("default_classifier.json")
WINDOW = 272_000  # the GPT-5-like direct model the figures were measured on
BUILD_MAX_TOKENS = 6_000  # texts are built up to this size; longer inputs scale the count
# Utility = quality - LAMBDA * cost_usd, minus RLM_OVERHEAD for the RLM route (its several
# sequential root calls: latency and moving parts for no gain when quality ties). TAU is the
# label noise (a sigmoid's temperature) on the utility difference.
LAMBDA = 0.25
RLM_OVERHEAD = 0.03
TAU = 0.02
PRICE_IN = 1.25e-6  # $/token, GPT-5 input (Table 1's root model)
ANSWER_COST = 500 * 10e-6  # ~500 output tokens at $10/M

# Quality vs log2(input tokens), anchored on DESIGN.md "Published reference numbers":
# dense aggregation: GPT-5 ~0.90 at 8K -> 0.44 at 131K (OOLONG) -> <0.30 at 262K; RLM 0.565
# at 131K. Pairwise: base 0.001 vs RLM 0.58 F1 at 32K. Multi-hop: CodeQA 0.24 vs 0.62,
# BrowseComp+ 0.0 vs 0.91 at 6-11M. Lookups (S-NIAH): RLM ~= base.
CURVES: dict[str, tuple[dict[float, float], dict[float, float], float]] = {
    # family: (llm anchors, rlm anchors, RLM/LLM cost ratio)
    "aggregate": (
        {8: 0.97, 13: 0.90, 17: 0.44, 18: 0.28, 20: 0.15, 24: 0.05},
        {8: 0.86, 13: 0.86, 15: 0.78, 17: 0.565, 20: 0.50, 24: 0.45},
        3.0,  # OOLONG $0.14 -> $0.43
    ),
    "pairwise": (
        {8: 0.90, 10: 0.80, 12: 0.50, 15: 0.01, 24: 0.0},
        {8: 0.78, 10: 0.75, 12: 0.70, 15: 0.58, 20: 0.45, 24: 0.35},
        2.0,  # OOLONG-Pairs $0.16 -> $0.33
    ),
    "multihop": (
        {8: 0.90, 13: 0.75, 17: 0.40, 20: 0.24, 24: 0.02},
        {8: 0.78, 13: 0.72, 17: 0.62, 20: 0.62, 24: 0.60},
        0.85,  # CodeQA $0.13 -> $0.11
    ),
    "lookup": ({8: 0.95, 18: 0.92}, {8: 0.93, 18: 0.91}, 1.5),  # S-NIAH: RLM ~= base
    "chat": ({4: 0.90, 12: 0.90}, {4: 0.88, 12: 0.88}, 3.0),
}

# (family, question kind, context kind, log2 token range)
RECIPES: tuple[tuple[str, str, str, tuple[float, float]], ...] = (
    ("chat", "chat", "chat", (5.0, 11.0)),
    ("lookup", "lookup", "prose", (8.0, 18.0)),
    ("lookup", "lookup", "records", (8.0, 18.0)),
    ("aggregate", "aggregate", "records", (8.0, 20.0)),
    ("aggregate", "aggregate", "prose", (9.0, 19.0)),
    ("pairwise", "pairwise", "records", (8.0, 19.0)),
    ("multihop", "multihop", "prose", (9.0, 20.0)),
)

_CUES = ("agg", "pair", "multihop", "lookup")
TERMS: tuple[TermSpec, ...] = (
    TermSpec("log2_tokens", ("log2_tokens",), 0.0, 24.0),
    TermSpec("window_ratio", ("window_ratio",), 0.0, 1.5),
    *(TermSpec(f"{cue}_cue", (f"{cue}_cues",), 0.0, 1.0) for cue in _CUES),
    *(
        TermSpec(f"{cue}_x_len", (f"{cue}_cues", "log2_tokens"), 0.0, 24.0, (1.0, None))
        for cue in _CUES
    ),
    TermSpec("n_turns", ("n_turns",), 0.0, 20.0),
)


def quality(anchors: dict[float, float], x: float) -> float:
    """Piecewise-linear interpolation in log2(tokens), flat beyond the ends."""
    points = sorted(anchors.items())
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]


def p_rlm_better(family: str, n_tokens: int) -> float:
    """Probability that the RLM route has the higher utility (quality minus priced cost)."""
    llm, rlm, cost_ratio = CURVES[family]
    x = math.log2(max(2, n_tokens))
    cost_llm = n_tokens * PRICE_IN + ANSWER_COST
    delta = (
        quality(rlm, x) - quality(llm, x) - LAMBDA * (cost_ratio - 1.0) * cost_llm - RLM_OVERHEAD
    )
    return 1.0 / (1.0 + math.exp(-delta / TAU))


# --- synthetic requests -------------------------------------------------------------------

_NAMES = ("Alder", "Brisa", "Corin", "Delphine", "Emrys", "Fenna", "Galen", "Hollis", "Ione")
_NOUNS = ("invoice", "ledger", "harbour", "turbine", "orchard", "archive", "tariff", "kiln")
_VERBS = ("audited", "repaired", "moved", "signed", "cancelled", "approved", "shipped")
_CATEGORIES = ("billing", "shipping", "refund", "login", "hardware", "feedback")

_QUESTIONS: dict[str, tuple[str, ...]] = {
    "chat": (
        "Thanks! Could you suggest a name for my new cat?",
        "What did I tell you my sister's name was?",
        "Can you say that again more politely?",
        "Any idea what I could cook tonight?",
        "What's the weather usually like in {name}ville in spring?",
    ),
    "lookup": (
        "What is the access code for {name} given in the text above?",
        "What value was recorded for the {noun} inspection?",
        "When did {name} open the first {noun} office?",
        "Who is the director of the {noun} department according to the document?",
        "Find the passphrase hidden in the text and reply with it only.",
        "Which city is the {noun} company based in?",
    ),
    "aggregate": (
        "How many records have the category '{cat}'?",
        "Which category appears most often for user {uid}?",
        "What is the total number of entries logged in March?",
        "Count the lines about {cat} and report the number.",
        "What proportion of all entries are {cat} issues?",
        "Which user has the highest number of {cat} entries?",
        "Summarise the distribution of categories across all records.",
        "Which category is least frequent overall?",
    ),
    "pairwise": (
        "List every pair of users who both filed a {cat} entry, as (id, id).",
        "Which two users share the most categories? Compare each pair.",
        "Find all pairs of records with the same date and write them one pair per line.",
        "List all pairs of users such that both have more than two {cat} items.",
    ),
    "multihop": (
        "Which city is the founder of the company that bought the {noun} based in?",
        "Find the person whose manager approved the {noun} order, then give their start year.",
        "Based on the reports, which team did the author of the {noun} memo later join?",
        "Who signed the {noun} contract, and which office did that person move to after that?",
    ),
}


def _sentence(rng: random.Random) -> str:
    return (
        f"{rng.choice(_NAMES)} {rng.choice(_VERBS)} the {rng.choice(_NOUNS)} "
        f"{rng.choice(('after lunch', 'in the north wing', 'without notice', 'twice'))}."
    )


def _prose(rng: random.Random, n_chars: int) -> str:
    parts: list[str] = []
    size = 0
    while size < n_chars:
        paragraph = " ".join(_sentence(rng) for _ in range(rng.randint(3, 8)))
        parts.append(paragraph)
        size += len(paragraph) + 2
    return "\n\n".join(parts)


def _record(rng: random.Random, style: int) -> str:
    day = date(2023, rng.randint(1, 12), rng.randint(1, 28)).isoformat()
    uid = rng.randint(1000, 99999)
    text = _sentence(rng)
    cat = rng.choice(_CATEGORIES)
    if style == 0:
        return f"Date: {day} || User: {uid} || Instance: {text}"
    if style == 1:
        return f"{day},{uid},{cat},{text}"
    if style == 2:
        return f'{{"ts": "{day}", "user": {uid}, "text": "{text}"}}'
    return f"{day}T10:{rng.randint(10, 59)}:00 INFO user={uid} category={cat} msg={text}"


def _records(rng: random.Random, n_chars: int) -> str:
    style = rng.randrange(4)
    lines: list[str] = []
    size = 0
    while size < n_chars:
        line = _record(rng, style)
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def synth_request(rng: random.Random, question_kind: str, context_kind: str, n_tokens: int) -> dict:
    """An OpenAI chat request of about ``n_tokens`` (built up to ``BUILD_MAX_TOKENS``)."""
    question = rng.choice(_QUESTIONS[question_kind]).format(
        name=rng.choice(_NAMES),
        noun=rng.choice(_NOUNS),
        cat=rng.choice(_CATEGORIES),
        uid=rng.randint(1000, 99999),
    )
    if context_kind == "chat":
        turns: list[dict[str, str]] = [
            {"role": "system", "content": "You are a helpful assistant."}
        ]
        for _ in range(rng.randint(0, min(6, n_tokens // 40))):
            turns.append({"role": "user", "content": _sentence(rng)})
            turns.append({"role": "assistant", "content": _sentence(rng)})
        turns.append({"role": "user", "content": question})
        return {"model": "auto", "messages": turns}
    n_chars = 4 * min(n_tokens, BUILD_MAX_TOKENS)
    context = _prose(rng, n_chars) if context_kind == "prose" else _records(rng, n_chars)
    return {"model": "auto", "messages": [{"role": "user", "content": f"{context}\n\n{question}"}]}


def build_dataset(
    n_per_recipe: int, seed: int, extract: FeatureExtractor
) -> tuple[list[dict[str, float]], list[int], list[str]]:
    """(feature rows, labels 1=rlm, family per row)."""
    rng = random.Random(seed)
    rows: list[dict[str, float]] = []
    labels: list[int] = []
    families: list[str] = []
    for family, question_kind, context_kind, (lo, hi) in RECIPES:
        for _ in range(n_per_recipe):
            n_tokens = int(2 ** rng.uniform(lo, hi))
            body = synth_request(rng, question_kind, context_kind, n_tokens)
            features = extract(body, context_window=WINDOW)
            if features.n_tokens < n_tokens:  # built shorter: scale the extensive features
                scale = n_tokens / features.n_tokens
                features = dataclasses.replace(
                    features,
                    n_tokens=n_tokens,
                    n_chars=int(features.n_chars * scale),
                    window_ratio=n_tokens / WINDOW,
                    log2_tokens=math.log2(1 + n_tokens),
                    tokens_estimated=1,
                )
            rows.append(features.as_dict())
            labels.append(int(rng.random() < p_rlm_better(family, features.n_tokens)))
            families.append(family)
    return rows, labels, families


def fit_prior(
    extract: FeatureExtractor, n_per_recipe: int = 300, seed: int = 0
) -> LinearClassifier:
    """Build the data set with ``extract`` (e.g. ``router.features.extract_body_features``)
    and fit the prior on it."""
    rows, labels, families = build_dataset(n_per_recipe, seed, extract)
    classifier = fit_linear(
        rows,
        labels,
        TERMS,
        version=f"prior-{date.today().isoformat()}-s{seed}",
        c=1.0,
        training={
            "kind": "prior",
            "built_by": "rlm-router policy prior",
            "doc": "policies/PRIOR.md",
            "n_rows": len(rows),
            "seed": seed,
            "lambda_quality_per_usd": LAMBDA,
            "tau": TAU,
            "rlm_overhead": RLM_OVERHEAD,
            "rlm_share": sum(labels) / len(labels),
            "families": sorted(set(families)),
        },
    )
    agreement = _agreement(classifier, rows, labels)
    return dataclasses.replace(
        classifier, training={**classifier.training, "train_accuracy": agreement}
    )


def _agreement(
    classifier: LinearClassifier, rows: Sequence[dict[str, float]], labels: Sequence[int]
) -> float:
    from types import SimpleNamespace

    hits = 0
    for row, label in zip(rows, labels, strict=True):
        score, _ = classifier.score(SimpleNamespace(**row))  # type: ignore[arg-type]
        hits += int((score >= 0.5) == bool(label))
    return round(hits / len(rows), 4)


def main(
    argv: Sequence[str] | None = None,
    *,
    extract: FeatureExtractor,
    out: Callable[[str], None] = print,
) -> int:
    parser = argparse.ArgumentParser(prog="rlm-router policy prior", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=300, help="examples per recipe")
    args = parser.parse_args(argv)
    classifier = fit_prior(extract, args.n, args.seed)
    classifier.dump(args.out)
    accuracy = classifier.training["train_accuracy"]
    out(f"wrote {args.out} ({classifier.version}, train accuracy {accuracy})")
    return 0
