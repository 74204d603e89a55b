"""Held-out routing evaluation: does the router pick the route a careful engineer would?

``python -m benchmarks.routing_bench [--set heldout|fresh|fresh_b] [--out out/]
[--complexity-max-tokens 300000]``

Runs ``Router.decide`` on the labelled cases of ``benchmarks.routing_eval`` (164 requests from
real text on this machine, 11 categories, 8 languages; labels and their evidence are in
``benchmarks/routing_eval/cases.py``, fixed before the router saw them) and LiteLLM's
complexity router on the same requests. Prints agreement per category and language, the worst
misroutes with the router's explanation, and decision latency per input size for both
deciders; writes ``routing_bench.json``. The complexity router's tier is mapped to a route as
COMPLEX/REASONING -> rlm, others -> llm (its own notion of "needs the bigger machinery").
``--set fresh`` runs the second held-out set instead (``benchmarks/routing_eval/fresh.py``: 72
questions written blind, over files neither the first set nor the training corpus reads) and
writes ``routing_bench_fresh.json``; ``--set fresh_b`` the second such set.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.decision_bench import _complexity_router
from benchmarks.routing_eval import fresh
from benchmarks.routing_eval.cases import CASES, CATEGORIES, LANGS, Case, preload
from rlm_router.router import Router
from rlm_router.router.request import ChatRequest

SIZE_BUCKETS = (
    (2_000, "<=2K"),
    (16_000, "2K-16K"),
    (64_000, "16K-64K"),
    (256_000, "64K-256K"),
    (10**12, ">256K"),
)
WORST = 12


def _bucket(n_tokens: int) -> str:
    return next(name for limit, name in SIZE_BUCKETS if n_tokens <= limit)


def _median_ms(call: Any, reps: int) -> float:
    call()
    samples = []
    gc.disable()
    try:
        for _ in range(reps):
            start = time.thread_time()
            call()
            samples.append(time.thread_time() - start)
    finally:
        gc.enable()
    return statistics.median(samples) * 1e3


def evaluate_case(
    router: Router, complexity: Any, case: Case, *, complexity_max: int, reps: int
) -> dict[str, Any]:
    body, headers = case.body()
    decision = router.decide(body, headers)
    request = ChatRequest.parse(body, headers)
    ours_ms = _median_ms(lambda: router.decide(body, headers), reps)
    row: dict[str, Any] = {
        "id": case.id,
        "category": case.category,
        "lang": case.lang,
        "label": case.label,
        "evidence": case.evidence,
        "route": decision.route,
        "rule": decision.rule,
        "score": round(decision.score, 4),
        "threshold": decision.threshold,
        "n_tokens": decision.features.n_tokens,
        "layout": case.layout,
        "question": case.question,
        "taken_as_question": request.question[:300],
        "explain": decision.explain(),
        "ours_cpu_ms": ours_ms,
        "complexity_tier": None,
        "complexity_route": None,
        "complexity_cpu_ms": None,
    }
    if decision.features.n_tokens <= complexity_max:
        messages = body["messages"]
        result: list[Any] = []

        def classify() -> None:
            ask, system = complexity._extract_user_message_and_system_prompt(messages)
            result.append(complexity.classify(ask or "", system))

        row["complexity_cpu_ms"] = _median_ms(classify, 1 if row["n_tokens"] > 16_000 else 5)
        tier = getattr(result[-1][0], "value", str(result[-1][0]))
        row["complexity_tier"] = tier
        row["complexity_route"] = "rlm" if tier in ("COMPLEX", "REASONING") else "llm"
    return row


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    def agreement(subset: Sequence[dict[str, Any]], key: str) -> dict[str, Any]:
        judged = [r for r in subset if r[key] is not None]
        hits = sum(r[key] == r["label"] for r in judged)
        return {
            "n": len(judged),
            "agree": hits,
            "accuracy": round(hits / len(judged), 4) if judged else None,
        }

    out: dict[str, Any] = {
        "overall": {k: agreement(rows, k) for k in ("route", "complexity_route")}
    }
    for name, values in (("category", CATEGORIES), ("lang", LANGS)):
        out[f"by_{name}"] = {
            v: {
                k: agreement([r for r in rows if r[name] == v], k)
                for k in ("route", "complexity_route")
            }
            for v in values
        }
    short = [r for r in rows if r["n_tokens"] <= 8_000 and r["label"] == "llm"]
    out["short_direct"] = agreement(short, "route")
    latency: dict[str, dict[str, Any]] = defaultdict(dict)
    for _, name in SIZE_BUCKETS:
        bucket = [r for r in rows if _bucket(r["n_tokens"]) == name]
        ours = [r["ours_cpu_ms"] for r in bucket]
        theirs = [r["complexity_cpu_ms"] for r in bucket if r["complexity_cpu_ms"] is not None]
        latency[name] = {
            "n": len(bucket),
            "ours_p50_ms": statistics.median(ours) if ours else None,
            "complexity_p50_ms": statistics.median(theirs) if theirs else None,
            "complexity_n": len(theirs),
        }
    out["latency_cpu_ms"] = dict(latency)
    misses = [r for r in rows if r["route"] != r["label"]]
    misses.sort(key=lambda r: -abs(r["score"] - r["threshold"]))
    out["misroutes"] = [r["id"] for r in misses]
    return out


def _fmt(stat: dict[str, Any]) -> str:
    if not stat["n"]:
        return f"{'-':>13}"
    return f"{stat['agree']:>3}/{stat['n']:<3} {100 * stat['accuracy']:>5.1f}%"


def table(result: dict[str, Any]) -> str:
    s = result["summary"]
    lines = [f"{'':<18} {'ours':>13}   {'complexity router':>17}"]
    lines.append(
        f"{'overall':<18} {_fmt(s['overall']['route'])}   {_fmt(s['overall']['complexity_route'])}"
    )
    for name in ("category", "lang"):
        lines.append(f"-- by {name}")
        for key, stat in s[f"by_{name}"].items():
            lines.append(f"{key:<18} {_fmt(stat['route'])}   {_fmt(stat['complexity_route'])}")
    lines.append(f"short traffic direct: {_fmt(s['short_direct'])}")
    lines.append("-- decision CPU time per size (median, ms)")
    lines.append(f"{'tokens':<10} {'n':>4} {'ours':>9} {'complexity':>11} {'ratio':>8}")
    for name, row in s["latency_cpu_ms"].items():
        if not row["n"]:
            continue
        theirs = row["complexity_p50_ms"]
        ratio = f"{theirs / row['ours_p50_ms']:>7.0f}x" if theirs else f"{'-':>8}"
        cr = f"{theirs:>11.3f}" if theirs else f"{'skipped':>11}"
        lines.append(f"{name:<10} {row['n']:>4} {row['ours_p50_ms']:>9.3f} {cr} {ratio}")
    by_id = {r["id"]: r for r in result["rows"]}
    lines.append(
        f"-- worst misroutes ({len(s['misroutes'])} in all; by distance from the threshold)"
    )
    for case_id in s["misroutes"][:WORST]:
        r = by_id[case_id]
        lines.append(
            f"* {r['id']} ({r['n_tokens']:,} tokens, {r['layout']}): labelled "
            f"{r['label']}, routed {r['route']} score {r['score']:.3f}"
        )
        lines.append(f"    asked: {r['question'][:110]}")
        lines.append(f"    taken as the question: {r['taken_as_question'][:110]!r}")
        lines.append(f"    label evidence: {r['evidence']}")
        explain = [
            ln
            for ln in r["explain"].splitlines()
            if ln.startswith(("reason", "evidence", "task", "data"))
        ]
        lines.extend(f"    {ln}" for ln in explain)
    return "\n".join(lines)


def run(*, complexity_max: int, reps: int = 5, which: str = "heldout") -> dict[str, Any]:
    cases = fresh.load(which) if which in fresh.QUESTIONS else list(CASES)
    preload(cases)
    router = Router.from_config()
    complexity = _complexity_router()
    rows = [
        evaluate_case(router, complexity, case, complexity_max=complexity_max, reps=reps)
        for case in cases
    ]
    return {
        "benchmark": "routing_eval" if which == "heldout" else f"routing_eval_{which}",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
        "policy_version": router.policy_version,
        "n_cases": len(rows),
        "summary": summarise(rows),
        "rows": rows,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.routing_bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("out"))
    parser.add_argument(
        "--complexity-max-tokens",
        type=int,
        default=300_000,
        help="skip the complexity router above this size (~6 ms per 1K tokens)",
    )
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions of our decision")
    parser.add_argument(
        "--set",
        dest="which",
        choices=("heldout", *fresh.QUESTIONS),
        default="heldout",
        help="the first held-out set (cases.py) or a fresh one (fresh.py: A or B)",
    )
    args = parser.parse_args(argv)
    result = run(complexity_max=args.complexity_max_tokens, reps=args.reps, which=args.which)
    print(table(result))
    args.out.mkdir(parents=True, exist_ok=True)
    name = "routing_bench" if args.which == "heldout" else f"routing_bench_{args.which}"
    path = args.out / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
