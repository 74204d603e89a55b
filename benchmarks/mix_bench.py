"""The realistic-mix benchmark: the router against always-direct and always-RLM, per root persona.

``python -m benchmarks.mix_bench [--requests 2000] [--concurrency 6] [--time-scale 0.02]
[--persona coder ...] [--json out/mix_bench.json]``

The workload (``benchmarks.mix_workload``) is ~80% short chat / QA / latency-budgeted requests
and ~20% long ones (lookups, aggregation, pairwise, multi-hop; 16K-1M tokens). Each request is
sent three ways, against the simulated provider in its own process with its modelled latencies
scaled by ``--time-scale`` (as ``rlm-router demo`` does):

- **router**: ``Router.acompletion`` on the shipped policy (``policies/default.yaml``, its
  models pointed at the simulator, the RLM root ``sim-<persona>``);
- **always-direct**: the direct model (``sim-large``) through litellm, no fallback. Its
  model does not depend on the root persona, so it runs once and is every persona's baseline;
- **always-RLM**: the RLM engine with the policy's budgets on every request.

Requests run ``--concurrency`` at a time in arrival order; each answer is graded by its task
family's scorer. Per persona and strategy: mean quality, total cost, p50/p95 latency, errors,
and per category. The router's targets per persona: quality >= always-RLM's, cost <= 1.2x and
p50 <= 1.1x always-direct's. Misroutes are counted against the per-request oracle (the route
whose baseline scored higher; on a tie the cheaper). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.mix_workload import MixRequest, build, request_kwargs
from benchmarks.proxy_bench import SimProcess
from benchmarks.scale_bench import KEY_ENV, ROOTS, policy_for

if TYPE_CHECKING:
    from rlm_router.router import Router
    from rlm_router.sim.tasks import Task

STRATEGIES = ("router", "always-direct", "always-rlm")
TARGETS = {
    "quality_vs_rlm_at_least": 1.0,
    "cost_vs_direct_at_most": 1.2,
    "p50_vs_direct_at_most": 1.1,
}
# Bounds a request's wall time in the harness; the policy's own max_wall_s is 600 s.
_REQUEST_TIMEOUT_S = 900.0


@dataclass
class Row:
    """One request under one strategy (and persona)."""

    persona: str
    strategy: str
    index: int
    category: str
    family: str
    n_tokens: int
    route: str
    score: float
    cost_usd: float
    latency_s: float
    reason: str = ""
    fallback: str = "none"
    degraded: str | None = None
    sub_calls: int | None = None
    error: str | None = None


@cache
def _real_text_task(request: MixRequest) -> Task:
    # Real-text contexts cost ~0.3 s to cut and count; they are reused by every pass.
    return request.task()


def task_of(request: MixRequest) -> Task:
    return _real_text_task(request) if request.text_source != "filler" else request.task()


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


async def via_router(router: Router, persona: str, request: MixRequest) -> Row:
    from rlm_router.rlm_core.litellm_api import response_cost
    from rlm_router.router.responses import route_of

    task = task_of(request)
    row = Row(persona, "router", request.index, request.category, request.family,
              task.n_tokens, "?", 0.0, 0.0, 0.0)  # fmt: skip
    started = time.perf_counter()
    try:
        response: Any = await router.acompletion(model="auto", **request_kwargs(request, task))
    except Exception as exc:  # an error is a result (score 0), never a crash of the run
        row.error = _error(exc)
        route = getattr(exc, "route", None)
        row.route = str(getattr(route, "route", "?"))
        row.reason = str(getattr(route, "reason", ""))
    else:
        info = route_of(response) or {}
        row.route = str(info.get("route"))
        row.reason = str(info.get("reason", ""))[:120]
        row.fallback = str(info.get("fallback", "none"))
        row.degraded = info.get("degraded")
        row.cost_usd = response_cost(response)
        row.score = task.score(response.choices[0].message.content or "")
    row.latency_s = time.perf_counter() - started
    return row


async def always_direct(router: Router, persona: str, request: MixRequest) -> Row:
    from rlm_router.rlm_core.litellm_api import acompletion, response_cost

    spec = router.dispatcher.settings.models.direct
    task = task_of(request)
    row = Row(persona, "always-direct", request.index, request.category, request.family,
              task.n_tokens, "llm", 0.0, 0.0, 0.0)  # fmt: skip
    started = time.perf_counter()
    try:
        response: Any = await acompletion(
            model=spec.model, api_base=spec.api_base, api_key=spec.api_key,
            messages=task.messages(), num_retries=2,
        )  # fmt: skip
    except Exception as exc:  # no fallback on this baseline: an error scores 0
        row.error = _error(exc)
    else:
        row.cost_usd = response_cost(response)
        row.score = task.score(response.choices[0].message.content or "")
    row.latency_s = time.perf_counter() - started
    return row


async def always_rlm(router: Router, persona: str, request: MixRequest) -> Row:
    from rlm_router.router.request import ChatRequest

    task = task_of(request)
    row = Row(persona, "always-rlm", request.index, request.category, request.family,
              task.n_tokens, "rlm", 0.0, 0.0, 0.0)  # fmt: skip
    parsed = ChatRequest.parse({"messages": task.messages()})
    engine = router.dispatcher.settings.engine()
    started = time.perf_counter()
    try:
        result = await engine.acompletion(parsed.question, parsed.context_text)
    except Exception as exc:  # e.g. budget exhausted with no answer at all
        row.error = _error(exc)
        partial = getattr(exc, "partial_answer", None)
        row.score = task.score(partial if isinstance(partial, str) else None)
    else:
        row.cost_usd = result.cost_usd
        row.sub_calls = result.sub_calls
        row.score = task.score(result.answer)
        if not result.ok:
            row.degraded = result.stopped_reason.value
    row.latency_s = time.perf_counter() - started
    return row


Runner = Callable[["Router", str, MixRequest], Awaitable[Row]]
_RUNNERS: dict[str, Runner] = {
    "router": via_router,
    "always-direct": always_direct,
    "always-rlm": always_rlm,
}


class Progress:
    """A progress line on stderr every ``every_s`` seconds and at the end of a pass."""

    def __init__(self, label: str, total: int, every_s: float = 10.0) -> None:
        self.label, self.total, self.every_s = label, total, every_s
        self.done = self.errors = 0
        self.started = self.last = time.monotonic()

    def step(self, row: Row) -> None:
        self.done += 1
        self.errors += row.error is not None
        now = time.monotonic()
        if now - self.last >= self.every_s or self.done == self.total:
            self.last = now
            print(
                f"[mix] {self.label:<26} {self.done:>5}/{self.total} requests, "
                f"{self.errors} errors, {now - self.started:6.0f} s",
                file=sys.stderr,
                flush=True,
            )


async def run_pass(
    strategy: str, router: Router, persona: str, requests: Sequence[MixRequest],
    concurrency: int, label: str,
) -> list[Row]:  # fmt: skip
    """Every request under ``strategy``, ``concurrency`` at a time, in arrival order."""
    runner = _RUNNERS[strategy]
    progress = Progress(label, len(requests))
    queue = iter(requests)
    rows: list[Row] = []

    async def worker() -> None:
        for request in queue:
            try:
                row = await asyncio.wait_for(
                    runner(router, persona, request), timeout=_REQUEST_TIMEOUT_S
                )
            except TimeoutError:
                row = Row(persona, strategy, request.index, request.category,
                          request.family, request.n_tokens, "?", 0.0, 0.0, _REQUEST_TIMEOUT_S,
                          error="harness timeout")  # fmt: skip
            rows.append(row)
            progress.step(row)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sorted(rows, key=lambda r: r.index)


def percentile(values: Sequence[float], q: float) -> float:
    data = sorted(values)
    if not data:
        return float("nan")
    return data[min(len(data) - 1, round(q * (len(data) - 1)))]


def _stats(rows: Sequence[Row]) -> dict[str, float]:
    latencies = [r.latency_s for r in rows]
    return {
        "requests": len(rows),
        "mean_quality": statistics.fmean(r.score for r in rows) if rows else float("nan"),
        "total_cost_usd": sum(r.cost_usd for r in rows),
        "p50_latency_s": percentile(latencies, 0.5),
        "p95_latency_s": percentile(latencies, 0.95),
        "errors": sum(1 for r in rows if r.error),
        "rlm_share": sum(1 for r in rows if r.route == "rlm") / len(rows) if rows else 0.0,
    }


def misroutes(routed: Sequence[Row], direct: Sequence[Row], rlm: Sequence[Row]) -> dict[str, Any]:
    """The router's choices against the per-request oracle of the two baselines."""
    by_index = {r.index: r for r in direct}, {r.index: r for r in rlm}
    cases: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    examples: list[dict[str, Any]] = []
    for row in routed:
        d, m = by_index[0][row.index], by_index[1][row.index]
        if d.score > m.score or (d.score == m.score and d.cost_usd <= m.cost_usd):
            best = "llm"
        else:
            best = "rlm"
        if row.route == best or row.route not in ("llm", "rlm"):
            continue
        other = m if best == "rlm" else d
        mine = d if row.route == "llm" else m
        key = f"{row.category} -> {row.route} (oracle {best})"
        cases[key]["count"] += 1
        cases[key]["quality_lost"] += max(0.0, other.score - mine.score)
        cases[key]["cost_extra_usd"] += row.cost_usd - other.cost_usd
        if len(examples) < 12 and other.score - mine.score > 0:
            examples.append(
                {"index": row.index, "category": row.category, "family": row.family,
                 "n_tokens": row.n_tokens, "route": row.route, "reason": row.reason,
                 "router_score": row.score, "oracle_score": other.score}
            )  # fmt: skip
    table = {k: {m: round(v, 4) for m, v in c.items()} for k, c in sorted(cases.items())}
    return {"by_case": table, "examples": examples}


def summarize(rows: Sequence[Row], personas: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for persona in personas:
        # always-direct ran once: its model is the same whatever the root persona.
        mine = {
            s: [r for r in rows if r.strategy == s and (r.persona == persona or s == STRATEGIES[1])]
            for s in STRATEGIES
        }
        table = {s: _stats(v) for s, v in mine.items()}
        categories = sorted({r.category for r in mine["router"]})
        per_category = {
            c: {s: _stats([r for r in v if r.category == c]) for s, v in mine.items()}
            for c in categories
        }
        router, direct, rlm = table["router"], table["always-direct"], table["always-rlm"]
        # Always-RLM ignores latency budgets (the router serves those direct by its latency
        # rule), so the like-for-like quality comparison leaves the budgeted requests out.
        free = {s: _stats([r for r in v if r.category != "budgeted"]) for s, v in mine.items()}
        # Always-direct cannot serve an input over its window (an error: $0, score 0), so
        # its total cost leaves those requests out; the router pays for them on the RLM.
        over = {r.index for r in mine["always-direct"] if r.error and "ContextWindow" in r.error}
        in_window = {s: sum(r.cost_usd for r in v if r.index not in over) for s, v in mine.items()}

        ratios = {
            "quality_vs_rlm": router["mean_quality"] / rlm["mean_quality"],
            "quality_vs_rlm_without_budgeted": (
                free["router"]["mean_quality"] / free["always-rlm"]["mean_quality"]
            ),
            "cost_vs_direct": router["total_cost_usd"] / direct["total_cost_usd"],
            "cost_vs_direct_in_window": in_window["router"] / in_window["always-direct"],
            "p50_vs_direct": router["p50_latency_s"] / direct["p50_latency_s"],
        }
        meets = {
            "quality": ratios["quality_vs_rlm"] >= TARGETS["quality_vs_rlm_at_least"],
            "cost": ratios["cost_vs_direct"] <= TARGETS["cost_vs_direct_at_most"],
            "p50": ratios["p50_vs_direct"] <= TARGETS["p50_vs_direct_at_most"],
        }
        out[persona] = {
            "strategies": table,
            "ratios": ratios,
            "meets_targets": meets,
            "per_category": per_category,
            "misroutes": misroutes(mine["router"], mine["always-direct"], mine["always-rlm"]),
        }
    return out


def render(summary: dict[str, Any]) -> str:
    header = (
        f"{'persona':<10} {'strategy':<14} {'quality':>8} {'cost $':>9} {'p50 s':>7} "
        f"{'p95 s':>7} {'errors':>6} {'RLM %':>6}"
    )
    lines = [header, "-" * len(header)]
    for persona, data in summary.items():
        for strategy, row in data["strategies"].items():
            lines.append(
                f"{persona:<10} {strategy:<14} {row['mean_quality']:>8.3f} "
                f"{row['total_cost_usd']:>9.3f} {row['p50_latency_s']:>7.3f} "
                f"{row['p95_latency_s']:>7.2f} {int(row['errors']):>6} {row['rlm_share']:>6.1%}"
            )
        r, m = data["ratios"], data["meets_targets"]
        verdict = ", ".join(f"{k} {'met' if ok else 'MISSED'}" for k, ok in m.items())
        lines.append(
            f"{'':<10} router: quality {r['quality_vs_rlm']:.3f}x always-RLM "
            f"({r['quality_vs_rlm_without_budgeted']:.3f}x without the budgeted), cost "
            f"{r['cost_vs_direct']:.3f}x ({r['cost_vs_direct_in_window']:.3f}x on the inputs "
            f"that fit the direct window) and p50 {r['p50_vs_direct']:.3f}x always-direct "
            f"({verdict})"
        )
    lines.append("")
    lines.append("per category (quality router / direct / RLM; cost router / direct / RLM):")
    for persona, data in summary.items():
        for category, by in data["per_category"].items():
            q = " / ".join(f"{by[s]['mean_quality']:.2f}" for s in STRATEGIES)
            c = " / ".join(f"{by[s]['total_cost_usd']:.2f}" for s in STRATEGIES)
            lines.append(
                f"  {persona:<10} {category:<10} n={int(by['router']['requests']):<4} "
                f"q {q}   $ {c}   router RLM {by['router']['rlm_share']:.0%}"
            )
    lines.append("")
    lines.append("misroutes against the per-request oracle (count, quality lost, extra $):")
    for persona, data in summary.items():
        for case, c in data["misroutes"]["by_case"].items():
            lines.append(
                f"  {persona:<10} {case:<36} {int(c['count']):>4}  {c['quality_lost']:>6.2f}  "
                f"{c['cost_extra_usd']:>+8.3f}"
            )
    return "\n".join(lines)


async def run(
    requests: Sequence[MixRequest], personas: Sequence[str], *, base_url: str, concurrency: int
) -> tuple[list[Row], dict[str, float]]:
    from rlm_router.router import Router
    from rlm_router.sim import register_sim_models

    register_sim_models()
    os.environ.setdefault(KEY_ENV, "sk-sim")
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    rows: list[Row] = []
    cpu: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        routers = {
            p: Router.from_config(policy_for(ROOTS[p], base_url, Path(tmp))) for p in personas
        }
        first = routers[personas[0]]
        # Warm litellm's client up so the first timed request does not pay for it.
        await always_direct(first, personas[0], requests[0])
        passes = [("always-direct", personas[0])]
        passes += [(s, p) for p in personas for s in ("router", "always-rlm")]
        for strategy, persona in passes:
            label = f"{persona} {strategy}" if strategy != "always-direct" else strategy
            started = time.process_time()
            got = await run_pass(strategy, routers[persona], persona, requests,
                                 concurrency, label)  # fmt: skip
            cpu[label] = time.process_time() - started
            rows += got
    return rows, cpu


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--time-scale", type=float, default=0.02)
    parser.add_argument("--persona", action="append", choices=sorted(ROOTS))
    parser.add_argument("--json", type=Path, default=Path("out/mix_bench.json"))
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.time_scale < 0:
        parser.error("--requests and --concurrency must be >= 1, --time-scale >= 0")
    personas = args.persona or list(ROOTS)
    requests = build(args.requests, args.seed)
    started = time.monotonic()
    with SimProcess(time_scale=args.time_scale) as sim:
        rows, cpu = asyncio.run(
            run(requests, personas, base_url=sim.base_url, concurrency=args.concurrency)
        )
    summary = summarize(rows, personas)
    print(render(summary))
    report = {
        "requests": args.requests, "seed": args.seed, "concurrency": args.concurrency,
        "time_scale": args.time_scale, "targets": TARGETS, "wall_s": time.monotonic() - started,
        "harness_cpu_s": cpu, "summary": summary, "rows": [asdict(r) for r in rows],
    }  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.json} ({report['wall_s']:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
