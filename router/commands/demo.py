"""``rlm-router demo``: a mixed workload through the router, offline, against the simulator.

Starts the simulated provider in-process, sends short chat and QA, needles in haystacks, and
OOLONG / OOLONG-Pairs-style aggregation at several lengths (up to 1M tokens) through the
router library, and compares the router with always-direct and always-RLM on the same
requests: mean score, total cost, p50/p95 latency. Writes ``out/demo.json``.

The router explores (``--exploration``, a share of requests sent to the route the policy
did not prefer, with the propensity on the span) and the demo grades every routed answer
with its task family's scorer, recorded as feedback (source ``demo-scorer``) the way an app
reports quality: the traces then train a new policy (``rlm-router train``). With
``--judge`` the router's judge (``router.judge``, a simulated model) grades the answers
instead (source ``judge``), as it would in production where apps send no feedback; its
spend is capped by ``--judge-max-cost`` and reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlm_router.router.dispatch import Dispatcher
    from rlm_router.router.dispatch_settings import DispatchSettings
    from rlm_router.router.judge import Judge
    from rlm_router.sim.tasks import Task

# (family, context tokens) in the order they are sent.
WORKLOAD: tuple[tuple[str, int], ...] = (
    ("chat", 0),
    ("qa", 0),
    ("chat", 0),
    ("qa", 2_000),
    ("niah", 8_000),
    ("niah", 64_000),
    ("niah", 1_000_000),
    ("oolong", 8_000),
    ("oolong", 64_000),
    ("oolong", 256_000),
    ("oolong", 1_000_000),
    ("oolong_pairs", 8_000),
    ("oolong_pairs", 32_000),
    ("oolong_pairs", 128_000),
)
STRATEGIES = ("router", "always-direct", "always-rlm")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the offline demo workload against the simulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("out/demo.json"), help="JSON report")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=0.02,
        help="simulated latency multiplier (1.0 = realistic provider latency)",
    )
    parser.add_argument(
        "--traces",
        type=Path,
        default=Path("out/demo-traces.jsonl"),
        help="OTLP-JSON spans of the routed requests (for `rlm-router dashboard --traces`)",
    )
    parser.add_argument(
        "--feedback",
        type=Path,
        default=Path("out/demo-feedback.jsonl"),
        help="quality of each routed answer as feedback JSON lines (also spans in --traces)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--exploration",
        type=float,
        default=0.2,
        help="share of routed requests that explore the other route (default %(default)s; "
        "0 = always the policy's choice)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="send the workload this many times through the router, each with new tasks "
        "(more training data; baselines run on the first round only)",
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="skip workload items above this many context tokens (quicker runs)",
    )
    parser.add_argument(
        "--no-baselines", action="store_true", help="only run the router (no comparison)"
    )
    parser.add_argument(
        "--judge",
        action="store_true",
        help="grade the routed answers with the router's judge (the simulated sim-mini) "
        "instead of the demo's own scorers",
    )
    parser.add_argument(
        "--judge-max-cost",
        type=float,
        default=1.0,
        help="the judge's spend cap in USD (default %(default)s)",
    )
    parser.set_defaults(handler=run)


def request_tokens(task: Task) -> int:
    """The request's input size as the router measures it (all messages, question included).

    Not ``task.n_tokens``: that is the size of the task's *context*, 0 for an arithmetic QA
    question that has none, which the demo line used to print as "qa 0 tok".
    """
    from rlm_router.rlm_core.tokens import estimate_tokens

    return sum(estimate_tokens(m["content"]) for m in task.messages())


@dataclass
class Row:
    """One request under one strategy (``n_tokens``: the request's input tokens)."""

    strategy: str
    family: str
    n_tokens: int
    route: str
    reason: str
    score: float | None
    latency_s: float
    cost_usd: float
    correct: float
    fallback: str = "none"
    error: str | None = None
    decision_id: str | None = None


class Progress:
    """A one-line progress bar on stderr (only when stderr is a terminal)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.tty = sys.stderr.isatty()

    def step(self, label: str) -> None:
        self.done += 1
        if not self.tty:
            return
        width = 30
        filled = int(width * self.done / max(1, self.total))
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {label:<28}"
        )
        if self.done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def clear(self) -> None:
        if self.tty:
            sys.stderr.write("\r" + " " * 72 + "\r")
            sys.stderr.flush()


def _settings(policy: Any, base_url: str) -> DispatchSettings:
    from rlm_router.router.dispatch_settings import DispatchSettings

    settings = DispatchSettings.from_policy(policy)
    models = settings.models

    def at_sim(spec: Any) -> Any:
        return None if spec is None else replace(spec, api_base=base_url, api_key="sk-sim")

    return replace(
        settings,
        models=replace(
            models,
            direct=at_sim(models.direct),
            rlm_root=at_sim(models.rlm_root),
            rlm_sub=at_sim(models.rlm_sub),
        ),
    )


async def _via_router(dispatcher: Dispatcher, task: Task) -> Row:
    from rlm_router.rlm_core.litellm_api import response_cost
    from rlm_router.router.dispatch import DispatchError
    from rlm_router.router.responses import route_of

    started = time.monotonic()
    try:
        response: Any = await dispatcher.acompletion(model="auto", messages=task.messages())
    except DispatchError as exc:
        route = exc.route
        return Row(
            strategy="router",
            family=task.family,
            n_tokens=request_tokens(task),
            route=route.route if route else "?",
            reason=route.reason if route else "",
            score=route.score if route else None,
            latency_s=time.monotonic() - started,
            cost_usd=0.0,
            correct=0.0,
            error=type(exc).__name__,
            decision_id=route.decision_id if route else None,
        )
    latency = time.monotonic() - started
    info = route_of(response) or {}
    text = response.choices[0].message.content or ""
    return Row(
        strategy="router",
        family=task.family,
        n_tokens=request_tokens(task),
        route=str(info.get("route")),
        reason=str(info.get("reason")),
        score=info.get("score"),
        latency_s=latency,
        cost_usd=response_cost(response),
        correct=task.score(text),
        fallback=str(info.get("fallback", "none")),
        decision_id=info.get("decision_id"),
    )


def _baseline_row(
    strategy: str, task: Task, started: float, *, cost_usd: float, correct: float, error: str | None
) -> Row:
    return Row(
        strategy=strategy,
        family=task.family,
        n_tokens=request_tokens(task),
        route="llm" if strategy == "always-direct" else "rlm",
        reason="baseline",
        score=None,
        latency_s=time.monotonic() - started,
        cost_usd=cost_usd,
        correct=correct,
        error=error,
    )


async def _always_direct(settings: DispatchSettings, task: Task) -> Row:
    from rlm_router.rlm_core.litellm_api import acompletion, response_cost

    spec = settings.models.direct
    started = time.monotonic()
    try:
        response: Any = await acompletion(
            model=spec.model,
            api_base=spec.api_base,
            api_key=spec.api_key,
            messages=task.messages(),
        )
    except Exception as exc:  # the baseline has no fallback: an error scores 0
        return _baseline_row(
            "always-direct", task, started, cost_usd=0.0, correct=0.0, error=type(exc).__name__
        )
    text = response.choices[0].message.content or ""
    return _baseline_row(
        "always-direct",
        task,
        started,
        cost_usd=response_cost(response),
        correct=task.score(text),
        error=None,
    )


async def _always_rlm(settings: DispatchSettings, task: Task) -> Row:
    from rlm_router.router.request import ChatRequest

    request = ChatRequest.parse({"messages": task.messages()})
    engine = settings.engine()
    started = time.monotonic()
    try:
        result = await engine.acompletion(request.question, request.context_text)
    except Exception as exc:
        return _baseline_row(
            "always-rlm", task, started, cost_usd=0.0, correct=0.0, error=type(exc).__name__
        )
    return _baseline_row(
        "always-rlm",
        task,
        started,
        cost_usd=result.usage.cost_usd,
        correct=task.score(result.answer),
        error=None,
    )


def _telemetry(path: Path, feedback: Path) -> Any:
    """Spans of the routed requests to ``path``, quality reports to ``feedback`` (both
    replaced on each run)."""
    from rlm_router.telemetry import Telemetry
    from rlm_router.telemetry.setup import FEEDBACK_FILE_ENV

    for file in (path, feedback):
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text("")
    env = {
        "OTEL_TRACES_EXPORTER": "otlp_json_file",
        "RLM_ROUTER_TRACES_FILE": str(path),
        FEEDBACK_FILE_ENV: str(feedback),
    }
    return Telemetry.from_env(env)


def _judge(args: argparse.Namespace, base_url: str, telemetry: Any) -> Judge:
    """The router's judge on the simulated sim-mini, grading every routed answer."""
    import functools

    from rlm_router.policies.schema import JudgeSettings, ModelTarget
    from rlm_router.rlm_core.litellm_api import acompletion
    from rlm_router.router.judge import Judge

    settings = JudgeSettings(
        model=ModelTarget(model="openai/sim-mini", api_base=base_url),
        sample_rate=1.0,
        max_cost_usd=args.judge_max_cost,
        seed=args.seed,
    )
    return Judge(settings, telemetry, completion=functools.partial(acompletion, api_key="sk-sim"))


def _percentile(values: list[float], q: float) -> float:
    data = sorted(values)
    if not data:
        return float("nan")
    return data[min(len(data) - 1, round(q * (len(data) - 1)))]


def summarize(rows: list[Row]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for strategy in STRATEGIES:
        mine = [r for r in rows if r.strategy == strategy]
        if not mine:
            continue
        latencies = [r.latency_s for r in mine]
        table[strategy] = {
            "requests": len(mine),
            "mean_score": statistics.fmean(r.correct for r in mine),
            "total_cost_usd": sum(r.cost_usd for r in mine),
            "p50_latency_s": _percentile(latencies, 0.5),
            "p95_latency_s": _percentile(latencies, 0.95),
            "errors": sum(1 for r in mine if r.error),
            "rlm_share": sum(1 for r in mine if r.route == "rlm") / len(mine),
        }
    return table


def render_table(table: dict[str, dict[str, float]]) -> str:
    header = (
        f"{'strategy':<14} {'mean score':>10} {'total cost':>11} {'p50 s':>7} {'p95 s':>7} "
        f"{'RLM share':>9} {'errors':>6}"
    )
    lines = [header, "-" * len(header)]
    for name, row in table.items():
        cost = f"${row['total_cost_usd']:.4f}"
        lines.append(
            f"{name:<14} {row['mean_score']:>10.3f} {cost:>11} "
            f"{row['p50_latency_s']:>7.2f} {row['p95_latency_s']:>7.2f} "
            f"{row['rlm_share']:>9.0%} {int(row['errors']):>6}"
        )
    return "\n".join(lines)


def _line(row: Row) -> str:
    score = f"{row.score:.2f}" if isinstance(row.score, float) else "  - "
    mark = "yes" if row.correct >= 0.99 else ("part" if row.correct > 0 else "no")
    extra = f" fallback={row.fallback}" if row.fallback != "none" else ""
    extra += f" error={row.error}" if row.error else ""
    return (
        f"{row.family:<13} {row.n_tokens:>9,} tok  route={row.route:<3} score={score} "
        f"{row.latency_s:>6.2f}s ${row.cost_usd:.4f} correct={mark:<4} ({row.reason}){extra}"
    )


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    from rlm_router.router import Router
    from rlm_router.router.dispatch import Dispatcher
    from rlm_router.sim import SimConfig, SimServer, register_sim_models
    from rlm_router.sim.tasks import generate

    workload = [
        (family, n) for family, n in WORKLOAD if args.max_tokens is None or n <= args.max_tokens
    ]
    rounds = [
        [
            generate(family, n_tokens=n, seed=args.seed + r * len(workload) + i)
            for i, (family, n) in enumerate(workload)
        ]
        for r in range(max(1, args.rounds))
    ]
    tasks = rounds[0]
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    register_sim_models()
    async with SimServer(SimConfig(seed=args.seed, time_scale=args.time_scale)) as sim:
        shipped = Router.from_config(None)
        exploration = replace(shipped.policy.exploration, rate=args.exploration, seed=args.seed)
        policy = replace(shipped.policy, exploration=exploration)
        router = Router(policy, shipped.classifier, seed=args.seed)
        settings = _settings(router.policy, sim.base_url)
        telemetry = _telemetry(args.traces, args.feedback)
        judge = _judge(args, sim.base_url, telemetry) if args.judge else None
        dispatcher = Dispatcher(
            decide=router.decide,
            decide_parsed=router.decide_parsed,
            settings=settings,
            telemetry=telemetry,
            judge=judge,
        )
        # Warm litellm's HTTP client up so the first timed request does not pay for it.
        await _always_direct(settings, generate("qa", seed=args.seed))
        strategies = ["router"] if args.no_baselines else list(STRATEGIES)
        routed = sum(len(r) for r in rounds)
        progress = Progress(routed + len(tasks) * (len(strategies) - 1))
        rows: list[Row] = []
        print(
            f"rlm-router demo: {routed} requests through the router (exploration "
            f"{args.exploration:.0%}), then the first {len(tasks)} always-direct and "
            f"always-RLM\n(simulated provider, modelled latencies x{args.time_scale}; costs at "
            "the simulated models' GPT-5-like prices)\n"
        )
        for round_tasks in rounds:
            for task in round_tasks:
                row = await _via_router(dispatcher, task)
                rows.append(row)
                if row.decision_id and judge is None:  # the demo knows the right answer
                    telemetry.record_feedback(row.decision_id, row.correct, source="demo-scorer")
                progress.clear()
                print(_line(row), flush=True)
                progress.step(f"router {task.family}")
        for strategy in strategies[1:]:
            for task in tasks:
                if strategy == "always-direct":
                    rows.append(await _always_direct(settings, task))
                else:
                    rows.append(await _always_rlm(settings, task))
                progress.step(f"{strategy} {task.family}")
        judged = None
        if judge is not None:
            await judge.drain(timeout_s=60.0)
            judged = judge.report().as_dict()
            print(
                f"\njudge: graded {judged['graded']} of {judged['sampled']} sampled answers "
                f"({judged['failed']} failed, {judged['skipped_over_cap']} over the cap), "
                f"spent ${judged['spent_usd']:.4f} of ${judged['max_cost_usd']:.2f}"
            )
    telemetry.shutdown()
    # Like against like: the baselines ran the first round's requests only.
    table = summarize(rows[: len(tasks)] + rows[routed:])
    return {
        "time_scale": args.time_scale,
        "seed": args.seed,
        "requests": [asdict(r) for r in rows],
        "summary": table,
        "judge": judged,
    }


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.exploration <= 1.0 or args.rounds < 1 or args.judge_max_cost < 0:
        print(
            "rlm-router demo: --exploration must be in [0, 1], --rounds >= 1 and "
            "--judge-max-cost >= 0",
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()
    report = asyncio.run(_run(args))
    print()
    print(render_table(report["summary"]))
    report["wall_s"] = time.monotonic() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out} ({report['wall_s']:.0f} s), {args.traces} and {args.feedback}")
    inputs = f"--traces {args.traces} --feedback {args.feedback}"
    print(f"HTML report: rlm-router dashboard {inputs} -o out/report.html")
    print(f"Retrain:     rlm-router train {inputs} --out out/classifier.json")
    return 0
