"""Decision latency: ``Router.decide`` vs LiteLLM's complexity router, on the same requests.

``python -m benchmarks.decision_bench [--sizes 1000,32000,1000000,10000000] [--out out/]``

For each size two requests are built once: an OOLONG-style one (``sim.tasks``) and one over
real text (Debian changelogs on this machine, ``benchmarks.routing_eval.sources``, with an
aggregation question after it); both deciders see the same request dict. Ours is the whole
decision (parse, features, rules, classifier); the complexity router's is its local
(rules-only) path: pick the user ask and system prompt, then ``classify`` it. Also
measured: our token estimate against an exact tiktoken count.
The token estimate is also checked on every real-text source of ``benchmarks.routing_eval``
(19: stdlib code, man pages in eight languages, licences, changelogs, dpkg's database, JSON
prices, configuration, git log), each cut at two offsets, at ``--token-sizes``.
Decisions on real text decided once (not repeated, so the token counter's cache has not seen
it; also with the cache emptied) are timed at ``--unseen-sizes``.
Prints tables and writes ``decision_bench.json``. Targets (issue 11): p50 <= 0.2 ms at 1K,
<= 1 ms at 32K, <= 5 ms at 1M and 10M tokens; token-estimate error <= 2% from 1K up.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from rlm_router.rlm_core.tokens import count_tokens, estimate_tokens
from rlm_router.router import Router
from rlm_router.router.features import REPLY_PRIMER_TOKENS, TOKENS_PER_MESSAGE
from rlm_router.sim.tasks import generate

TARGETS_P50_MS = {1_000: 0.2, 32_000: 1.0, 1_000_000: 5.0, 10_000_000: 5.0}
REAL_QUESTION = "For each maintainer, how many uploads are listed above? Rank them."
# (ours, complexity router) repetitions per size: enough for a stable p50 within minutes.
REPS = {1_000: (3000, 300), 32_000: (1000, 30), 1_000_000: (200, 3), 10_000_000: (40, 1)}


def _percentiles(samples_s: Sequence[float], cpu_s: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples_s)
    p99_index = min(len(ordered) - 1, int(0.99 * len(ordered)))
    return {
        "p50_ms": statistics.median(ordered) * 1e3,
        "p99_ms": ordered[p99_index] * 1e3,
        # CPU time of this thread: what the decision costs when the CPU is shared (wall time
        # includes waiting for other processes).
        "cpu_p50_ms": statistics.median(cpu_s) * 1e3,
        "n": len(ordered),
    }


def _time(call: Callable[[], object], reps: int) -> dict[str, float]:
    call()  # warm caches (regexes, tiktoken) outside the measurement
    samples, cpu = [], []
    gc.disable()
    try:
        for _ in range(reps):
            start, start_cpu = time.perf_counter(), time.thread_time()
            call()
            cpu.append(time.thread_time() - start_cpu)
            samples.append(time.perf_counter() - start)
    finally:
        gc.enable()
    return _percentiles(samples, cpu)


def _complexity_router() -> Any:
    from litellm.router_strategy.complexity_router.complexity_router import ComplexityRouter

    return ComplexityRouter(
        model_name="auto",
        litellm_router_instance=cast(Any, None),  # only used by non-local classifiers
        complexity_router_config={"tiers": {"SIMPLE": "small", "MEDIUM": "large"}},
    )


def run(sizes: Sequence[int], *, complexity_max: int, seed: int = 0) -> dict[str, Any]:
    router = Router.from_config()
    complexity = _complexity_router()
    rows = []
    from benchmarks.routing_eval.sources import fit

    for size, kind in ((size, kind) for size in sizes for kind in ("oolong", "real")):
        if kind == "oolong":
            messages_in = generate("oolong", n_tokens=size, seed=seed).messages()
        else:
            text_in = f"{fit('changelogs', size)}\n\n{REAL_QUESTION}"
            messages_in = [{"role": "user", "content": text_in}]
        body: dict[str, Any] = {"model": "auto", "messages": messages_in}
        ours_reps, theirs_reps = REPS.get(size, (100, 3))
        decision = router.decide(body)

        def ours_call(body: dict[str, Any] = body) -> object:
            return router.decide(body)

        ours = _time(ours_call, ours_reps)

        messages = body["messages"]

        def classify(messages: Any = messages) -> object:
            ask, system = complexity._extract_user_message_and_system_prompt(messages)
            return complexity.classify(ask or "", system)

        theirs = _time(classify, theirs_reps) if size <= complexity_max else None
        text = messages[-1]["content"]
        exact = count_tokens(text) + TOKENS_PER_MESSAGE * len(messages) + REPLY_PRIMER_TOKENS
        rows.append(
            {
                "tokens": size,
                "text": kind,
                "chars": len(text),
                "route": decision.route,
                "rule": decision.rule,
                "ours": ours,
                "complexity_router": theirs,
                "token_count": {
                    "exact": exact,
                    "features": decision.features.n_tokens,
                    "estimated": bool(decision.features.tokens_estimated),
                    "error_pct": 100.0 * (decision.features.n_tokens / exact - 1.0),
                },
                "target_p50_ms": TARGETS_P50_MS.get(size),
            }
        )
    return {
        "benchmark": "decision_latency",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
        "policy_version": router.policy_version,
        "rows": rows,
    }


UNSEEN_SIZES = (1_000, 32_000, 1_000_000)
UNSEEN_OFFSETS = (0.25, 0.75)


def unseen_text(sizes: Sequence[int]) -> list[dict[str, Any]]:
    """Decision CPU on text the router has not seen: each of 38 real-text requests (19
    sources x 2 offsets, none used above) decided once. "warm": the token counter's cache
    holds what the runs above and the earlier texts left (a serving process); "cold": its
    cache emptied before each decision (every word new: the worst case)."""
    from benchmarks.routing_eval.sources import NAMES, fit
    from rlm_router.rlm_core.tokens import word_counter

    router = Router.from_config()
    rows = []
    for size in sizes:
        bodies = [
            {
                "model": "auto",
                "messages": [
                    {"role": "user", "content": f"{fit(name, size, offset=off)}\n\n{REAL_QUESTION}"}
                ],
            }
            for name in NAMES
            for off in UNSEEN_OFFSETS
        ]
        row: dict[str, Any] = {"tokens": size, "n_requests": len(bodies)}
        for mode in ("warm", "cold"):
            cpu = []
            for body in bodies:
                if mode == "cold":
                    word_counter.cache_clear()
                    word_counter()
                start = time.thread_time()
                router.decide(body)
                cpu.append(time.thread_time() - start)
            row[mode] = {
                "cpu_p50_ms": statistics.median(cpu) * 1e3,
                "cpu_max_ms": max(cpu) * 1e3,
            }
        rows.append(row)
    return rows


def _unseen_table(rows: Sequence[dict[str, Any]]) -> str:
    header = (
        f"{'tokens':>10} {'n':>3} {'warm p50':>9} {'warm max':>9} {'cold p50':>9} {'cold max':>9}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        warm, cold = row["warm"], row["cold"]
        lines.append(
            f"{row['tokens']:>10,} {row['n_requests']:>3} {warm['cpu_p50_ms']:>7.3f}ms "
            f"{warm['cpu_max_ms']:>7.3f}ms {cold['cpu_p50_ms']:>7.3f}ms "
            f"{cold['cpu_max_ms']:>7.3f}ms"
        )
    return "\n".join(lines)


TOKEN_ERROR_SIZES = (1_000, 4_000, 8_000, 32_000, 200_000, 1_000_000)
TOKEN_ERROR_OFFSETS = (0.0, 0.5)


def token_errors(sizes: Sequence[int]) -> list[dict[str, Any]]:
    """The token estimate against tiktoken's exact count on every real-text source, per size."""
    from benchmarks.routing_eval.sources import NAMES, fit

    rows = []
    for size in sizes:
        errors: dict[str, float] = {}
        for name in NAMES:
            for offset in TOKEN_ERROR_OFFSETS:
                text = fit(name, size, offset=offset)
                errors[f"{name}@{offset:g}"] = 100.0 * (
                    estimate_tokens(text) / count_tokens(text) - 1
                )
        values = list(errors.values())
        worst = max(errors, key=lambda key: abs(errors[key]))
        rows.append(
            {
                "tokens": size,
                "n_texts": len(values),
                "max_abs_error_pct": abs(errors[worst]),
                "worst": worst,
                "rms_error_pct": statistics.fmean(v * v for v in values) ** 0.5,
                "mean_error_pct": statistics.fmean(values),
                "within_2pct": sum(abs(v) <= 2.0 for v in values),
                "errors_pct": errors,
            }
        )
    return rows


def _token_table(rows: Sequence[dict[str, Any]]) -> str:
    header = f"{'tokens':>10} {'texts':>5} {'<=2%':>5} {'mean':>7} {'rms':>6} {'max':>6}  worst"
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['tokens']:>10,} {row['n_texts']:>5} {row['within_2pct']:>5} "
            f"{row['mean_error_pct']:>+6.2f}% {row['rms_error_pct']:>5.2f}% "
            f"{row['max_abs_error_pct']:>5.2f}%  {row['worst']}"
        )
    return "\n".join(lines)


def _table(result: dict[str, Any]) -> str:
    header = (
        f"{'tokens':>10} {'text':>6} {'ours p50':>10} {'ours p99':>10} {'cpu p50':>9} "
        f"{'target':>8} "
        f"{'complexity p50':>15} {'p99':>10} {'speed-up':>9} {'tok err':>8} route"
    )
    lines = [header, "-" * len(header)]
    for row in result["rows"]:
        ours, theirs = row["ours"], row["complexity_router"]
        target = f"<{row['target_p50_ms']:g}" if row["target_p50_ms"] else "-"
        if theirs:
            cr = f"{theirs['p50_ms']:>13.3f}ms {theirs['p99_ms']:>8.3f}ms"
            speedup = f"{theirs['p50_ms'] / ours['p50_ms']:>8.0f}x"
        else:
            cr, speedup = f"{'skipped':>15} {'':>10}", f"{'-':>9}"
        lines.append(
            f"{row['tokens']:>10,} {row['text']:>6} {ours['p50_ms']:>8.3f}ms "
            f"{ours['p99_ms']:>8.3f}ms "
            f"{ours['cpu_p50_ms']:>7.3f}ms {target:>8} "
            f"{cr} {speedup} {row['token_count']['error_pct']:>+7.2f}% {row['route']}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.decision_bench", description=__doc__
    )
    parser.add_argument("--sizes", default="1000,32000,1000000,10000000")
    parser.add_argument(
        "--complexity-max-tokens",
        type=int,
        default=10_000_000,
        help="skip the complexity router above this size (it takes ~1 min at 10M tokens)",
    )
    parser.add_argument(
        "--token-sizes",
        default=",".join(map(str, TOKEN_ERROR_SIZES)),
        help="sizes at which the token estimate is checked on every real-text source",
    )
    parser.add_argument(
        "--unseen-sizes",
        default=",".join(map(str, UNSEEN_SIZES)),
        help="sizes at which decisions on unseen real text are timed (warm and cold cache)",
    )
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    result = run(sizes, complexity_max=args.complexity_max_tokens)
    print(_table(result))
    result["token_estimate_on_real_text"] = token_errors(
        [int(s) for s in args.token_sizes.split(",") if s]
    )
    result["unseen_text"] = unseen_text([int(s) for s in args.unseen_sizes.split(",") if s])
    print("-- decision CPU on real text decided once (38 requests per size)")
    print(_unseen_table(result["unseen_text"]))
    print("-- token estimate vs tiktoken's exact count, real text (error %)")
    print(_token_table(result["token_estimate_on_real_text"]))
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "decision_bench.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
