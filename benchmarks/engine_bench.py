"""Side-by-side performance and quality of our RLM engine and the official ``rlms`` package.

    .venv/bin/python -m benchmarks.engine_bench [--quick] [--out out/engine_bench.json]

Not a test. Both engines run against the same simulated provider (``sim``, always
in its own process, so its CPU is not charged to the engines) with the same models and tasks.
Measured:

- per-iteration engine overhead, model time excluded, from runs of 1 and 21 trivial turns;
- sandbox start time (ours: a locked-down worker process; official: its in-process REPL);
- context hand-off time and peak memory for a 10M-token context (each in a fresh process, so
  peaks are not polluted by earlier measurements);
- one 256-prompt ``llm_query_batched`` against a provider with a fixed latency, wall time vs
  the ideal under the same in-flight cap: ``ceil(256 / cap) x latency``. Rows at cap 16 (our
  engine's default concurrency and rlms's fixed batch cap) and uncapped (all 256 in flight,
  ideal = one latency), with bare litellm calls under the same cap as the client-side floor
  and the client CPU per sub-call;
- tasks (S-NIAH, OOLONG, OOLONG-Pairs): score, iterations, sub-calls, tokens, cost, wall time.

Targets (issue 3): overhead per iteration no worse than the official in-process REPL; 10M-token
hand-off < 1 s with peak memory < 3x the context; batched fan-out within 1.2x of ideal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.engine_common import ROOT_MODEL, SUB_MODEL, collect_official_clients, median
from benchmarks.engine_fanout import bench_batched, default_caps
from benchmarks.engine_handoff import PROBES, run_probe
from rlm_router.rlm_core.env import apply_offline_defaults

apply_offline_defaults()

BATCH_PROMPTS = 256
# 50 ms shows the client-side floor (litellm's per-call CPU); 1 s is a realistic model latency.
BATCH_LATENCIES_S = (0.05, 0.25, 1.0)
TASK_FAMILIES = ("niah", "oolong", "oolong_pairs")


def _serve_sim(spec: str) -> None:
    """Run a simulated provider in this process until stdin closes (see ``_sim_process``)."""
    from rlm_router.sim import SIM_MODELS, SimConfig, SimServer

    time_scale, fixed_latency = (float(x) for x in spec.split(":"))
    models = dict(SIM_MODELS)
    if fixed_latency > 0:  # every sub-model call takes exactly this long, whatever its size
        models[SUB_MODEL] = dataclasses.replace(
            SIM_MODELS[SUB_MODEL], ttft_s=fixed_latency, input_s_per_token=0.0,
            output_s_per_token=0.0,
        )  # fmt: skip
    server = SimServer(SimConfig(seed=0, time_scale=time_scale, models=models)).start_in_thread()
    print(server.base_url, flush=True)
    sys.stdin.read()
    server.stop()


@contextmanager
def _sim_process(time_scale: float, fixed_latency_s: float = 0.0) -> Iterator[str]:
    """A simulated provider in its own process (a provider is remote: it must not share the
    engine's GIL and cores' time slices through a thread); yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.engine_bench", "--serve-sim",
         f"{time_scale}:{fixed_latency_s}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- sandbox start ---------------------------------------------------------------------------


def bench_sandbox_start(rounds: int) -> dict[str, Any]:
    from rlm.environments.local_repl import LocalREPL

    from rlm_router.rlm_core.sandbox import Sandbox, SandboxLimits, SubCallRequest

    async def handler(request: SubCallRequest) -> list[str]:
        return []

    async def ours_once() -> float:
        box = Sandbox("", limits=SandboxLimits(), handler=handler)
        started = time.perf_counter()
        await box.start()
        await box.execute("pass")
        elapsed = time.perf_counter() - started
        await box.close()
        return elapsed

    ours = [asyncio.run(ours_once()) for _ in range(rounds)]
    official = []
    for _ in range(rounds):
        started = time.perf_counter()
        repl = LocalREPL(context_payload="")
        repl.execute_code("pass")
        official.append(time.perf_counter() - started)
        repl.cleanup()
    return {"ours_s": median(ours), "official_s": median(official)}


# --- runs against the simulated provider -----------------------------------------------------


@contextmanager
def _timed_official_clients(spans: list[tuple[str, float, float]]) -> Iterator[None]:
    """Record (model, start, end) of every provider call the official engine makes."""
    from rlm.clients.openai import OpenAIClient

    original, original_async = OpenAIClient.completion, OpenAIClient.acompletion

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            spans.append((str(self.model_name), started, time.perf_counter()))

    async def timed_async(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original_async(self, *args, **kwargs)
        finally:
            spans.append((str(self.model_name), started, time.perf_counter()))

    OpenAIClient.completion = timed
    OpenAIClient.acompletion = timed_async  # its batched sub-calls
    try:
        yield
    finally:
        OpenAIClient.completion, OpenAIClient.acompletion = original, original_async


def _union_s(spans: list[tuple[str, float, float]]) -> float:
    """Total time covered by possibly overlapping intervals (parallel calls count once)."""
    total, end = 0.0, float("-inf")
    for _, start, stop in sorted(spans, key=lambda span: span[1]):
        if start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def _ours_run(base_url: str, query: str, context: Any, concurrency: int = 16) -> dict[str, Any]:
    from rlm_router.rlm_core import Budget, ModelSpec, RLMEngine

    engine = RLMEngine(
        root=ModelSpec(model=f"openai/{ROOT_MODEL}", api_base=base_url, api_key="sim"),
        sub=ModelSpec(model=f"openai/{SUB_MODEL}", api_base=base_url, api_key="sim"),
        budget=Budget(max_iterations=20, max_depth=1),
        concurrency=concurrency,
    )
    started = time.perf_counter()
    result = engine.completion(query, context)
    wall = time.perf_counter() - started
    trajectory = result.trajectory
    root_s = sum(c.duration_s for c in trajectory.calls if c.role == "root")
    subcall_s = sum(e.subcall_s for i in trajectory.iterations for e in i.executions)
    iterations = max(result.iterations, 1)
    return {
        "answer": result.answer,
        "ok": result.ok,
        "iterations": result.iterations,
        "sub_calls": result.sub_calls,
        "wall_s": wall,
        "model_s": root_s + subcall_s,
        "overhead_per_iter_ms": 1000 * (wall - root_s - subcall_s) / iterations,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "cost_usd": result.cost_usd,
        "stopped_reason": result.stopped_reason.value,
        "trajectory": trajectory,
    }


def _official_run(base_url: str, query: str, context: Any) -> dict[str, Any]:
    from rlm import RLM

    from rlm_router.rlm_core.litellm_api import token_cost

    kwargs = {"model_name": ROOT_MODEL, "base_url": base_url, "api_key": "sim"}
    sub_kwargs = {"model_name": SUB_MODEL, "base_url": base_url, "api_key": "sim"}
    engine = RLM(
        backend="openai",
        backend_kwargs=kwargs,
        other_backends=["openai"],
        other_backend_kwargs=[sub_kwargs],
        environment="local",
        max_depth=1,
        max_iterations=20,
    )
    spans: list[tuple[str, float, float]] = []
    with _timed_official_clients(spans):
        started = time.perf_counter()
        completion = engine.completion(context, root_prompt=query)
        wall = time.perf_counter() - started
    collect_official_clients()
    iterations = sum(1 for model, _, _ in spans if model == ROOT_MODEL)
    model_s = _union_s(spans)
    usage = completion.usage_summary.model_usage_summaries
    return {
        "answer": completion.response,
        "iterations": iterations,
        "sub_calls": len(spans) - iterations,
        "wall_s": wall,
        "model_s": model_s,
        "overhead_per_iter_ms": 1000 * (wall - model_s) / max(iterations, 1),
        "input_tokens": sum(u.total_input_tokens for u in usage.values()),
        "output_tokens": sum(u.total_output_tokens for u in usage.values()),
        # Its OpenAI client books cost only when the provider reports one; price its tokens
        # with the same litellm cost map our engine uses.
        "cost_usd": sum(
            token_cost(f"openai/{model}", u.total_input_tokens, u.total_output_tokens)
            for model, u in usage.items()
        ),
    }


def _trivial_step(i: int) -> str:
    return f"Step {i}.\n```repl\nx{i} = len(context) + {i}\nprint(x{i})\n```"


Overheads = tuple[list[float], list[float]]  # per run: wall minus model time; per iteration: gaps


def _gaps(calls: list[tuple[float, float]]) -> list[float]:
    """The engine's time between one model call's end and the next one's start."""
    ordered = sorted(calls)
    return [nxt[0] - (start + duration) for (start, duration), nxt in itertools.pairwise(ordered)]


async def _ours_overhead(
    iterations: int, rounds: int, prestart: int = 0, root_latency_s: float = 0.0
) -> Overheads:
    """Runs of ``iterations`` trivial turns (instant model): wall time minus model time per
    run, and the gaps between consecutive model calls (one iteration's engine work).

    With ``prestart`` the engine takes its sandbox's worker from a ``WorkerPool`` of that
    size, refilled between runs (outside the timing), as for requests reaching a warm server.
    With ``root_latency_s`` each model call takes that long, as a real provider's does: a cold
    worker then starts while the first root call is in flight (what a one-off ``rlm-router
    rlm`` gets), and the run's fixed part shows how much of the start that hides.
    """
    async with contextlib.AsyncExitStack() as stack:
        pool = None
        if prestart:
            from rlm_router.rlm_core import SandboxLimits, WorkerPool

            pool = await stack.enter_async_context(WorkerPool(SandboxLimits(), size=prestart))
        return await _ours_overhead_runs(iterations, rounds, pool, root_latency_s)


async def _ours_overhead_runs(
    iterations: int, rounds: int, pool: Any, root_latency_s: float = 0.0
) -> Overheads:
    import litellm

    from rlm_router.rlm_core import Budget, ModelSpec, RLMEngine

    # Like the official engine's patched client below, the model is a script that answers
    # in microseconds without a client underneath; the response carries its cost as
    # litellm's responses do, so what is measured is the engine's own work per turn.
    async def completion(**kwargs: Any) -> Any:
        if root_latency_s:
            await asyncio.sleep(root_latency_s)
        done = sum(1 for m in kwargs["messages"] if m["role"] == "assistant")
        reply = _trivial_step(done) if done < iterations else "FINAL(done)"
        response = litellm.ModelResponse(
            model=kwargs["model"],
            choices=[{"index": 0, "message": {"role": "assistant", "content": reply}}],
            usage={"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        )
        response._hidden_params["response_cost"] = 1e-5
        return response

    engine = RLMEngine(
        root=ModelSpec(model=f"openai/{ROOT_MODEL}"),
        budget=Budget(max_iterations=iterations + 2),
        completion=completion,
        pool=pool,
    )
    await engine.acompletion("warm up", "context " * 100)
    overheads, gaps = [], []
    for _ in range(rounds):
        if pool is not None:
            await pool.wait_ready()
        started = time.perf_counter()
        result = await engine.acompletion("q", "context " * 100)
        wall = time.perf_counter() - started
        model_s = sum(call.duration_s for call in result.trajectory.calls)
        overheads.append(wall - model_s)
        gaps += _gaps([(call.started_s, call.duration_s) for call in result.trajectory.calls])
    return overheads, gaps


def _official_overhead(iterations: int, rounds: int) -> Overheads:
    """The same runs through the official engine, its client replaced by the same script."""
    from rlm import RLM
    from rlm.clients.openai import OpenAIClient

    model_time = {"s": 0.0}
    calls: list[tuple[float, float]] = []

    def scripted(self: Any, prompt: Any, model: str | None = None) -> str:
        started = time.perf_counter()
        calls.append((started, 0.0))
        done = sum(1 for m in prompt if m["role"] == "assistant") if isinstance(prompt, list) else 0
        reply = (
            _trivial_step(done)
            if done < iterations
            else "```repl\nanswer['content'] = 'done'\nanswer['ready'] = True\n```"
        )
        model_time["s"] += time.perf_counter() - started
        return reply

    original = OpenAIClient.completion
    OpenAIClient.completion = scripted
    try:
        engine = RLM(
            backend="openai",
            backend_kwargs={
                "model_name": ROOT_MODEL,
                "base_url": "http://127.0.0.1:9",
                "api_key": "x",
            },
            environment="local",
            max_depth=1,
            max_iterations=iterations + 2,
        )
        engine.completion("context " * 100, root_prompt="warm up")
        overheads, gaps = [], []
        for _ in range(rounds):
            model_time["s"] = 0.0
            calls.clear()
            started = time.perf_counter()
            engine.completion("context " * 100, root_prompt="q")
            overheads.append(time.perf_counter() - started - model_time["s"])
            gaps += _gaps(calls)  # the scripted model takes microseconds: durations ~0
    finally:
        OpenAIClient.completion = original
    return overheads, gaps


def bench_overhead(rounds: int) -> dict[str, Any]:
    """Engine overhead with the model's time taken out, from runs of 1 and 21 trivial turns:
    per iteration, the median gap between consecutive model calls (parse the reply, run the
    code in the REPL, build the next prompt) and, as a cross-check, the marginal cost of 20
    more iterations; the fixed part per run (sandbox, set-up, tear-down)."""
    short, long = 1, 21
    measures: dict[str, Callable[[int], Overheads]] = {
        "ours": lambda k: asyncio.run(_ours_overhead(k, rounds)),
        "ours_prestarted": lambda k: asyncio.run(_ours_overhead(k, rounds, prestart=1)),
        "official": lambda k: _official_overhead(k, rounds),
    }
    result: dict[str, Any] = {}
    for name, measure in measures.items():
        (one, _), (many, gaps) = measure(short), measure(long)
        # The minimum over rounds: on a shared machine noise only ever adds time.
        marginal = (min(many) - min(one)) / (long - short)
        result[name] = {
            "per_iteration_ms": 1000 * median(gaps),
            "per_iteration_marginal_ms": 1000 * marginal,
            "per_run_fixed_ms": 1000 * (min(one) - median(gaps)),
            "run_of_21_ms": 1000 * min(many),
        }
    # A one-off run (rlm-router rlm: no pool) against a root model that takes 100 ms: the
    # worker starts while the first root call is in flight, so its fixed part should be the
    # pre-started worker's, not the cold start's.
    for name, prestart in (("ours_slow_root_cold", 0), ("ours_slow_root_prestarted", 1)):
        one, _ = asyncio.run(_ours_overhead(short, rounds, prestart=prestart, root_latency_s=0.1))
        result[name] = {"per_run_ms": 1000 * min(one)}
    return result


def bench_tasks(
    base_url: str, families: list[str], sizes: list[int], seeds: int
) -> list[dict[str, Any]]:
    """Every task run by both engines (same task, same models, same simulator)."""
    from rlm_router.sim.tasks import generate

    rows = []
    warm = generate("niah", n_tokens=2_000, seed=0)  # imports and connections, not measured
    _ours_run(base_url, warm.question, warm.context)
    with contextlib.suppress(Exception):
        _official_run(base_url, warm.question, warm.context)
    for n_tokens in sizes:
        for family in families:
            for seed in range(1, seeds + 1):
                task = generate(family, n_tokens=n_tokens, seed=seed)
                ours = _ours_run(base_url, task.question, task.context)
                ours.pop("trajectory")
                try:
                    official = _official_run(base_url, task.question, task.context)
                except Exception as exc:  # the official engine's failure is a result
                    official = {"error": f"{type(exc).__name__}: {exc}"[:300]}
                for engine_name, run in (("ours", ours), ("official", official)):
                    if "answer" in run:
                        run["score"] = task.score(str(run["answer"] or ""))
                    rows.append({
                        "family": family, "n_tokens": n_tokens, "seed": seed,
                        "engine": engine_name, **run,
                    })  # fmt: skip
    return rows


def _task_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Means per (size, family, engine) over seeds."""
    groups: dict[tuple[int, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["n_tokens"], row["family"], row["engine"]), []).append(row)
    out = []
    for (n_tokens, family, engine), runs in groups.items():
        done = [r for r in runs if "error" not in r]
        summary: dict[str, Any] = {
            "n_tokens": n_tokens, "family": family, "engine": engine, "runs": len(runs),
            "errors": len(runs) - len(done),
        }  # fmt: skip
        for key in ("score", "iterations", "sub_calls", "input_tokens", "cost_usd", "wall_s"):
            values = [float(r[key]) for r in done if key in r]
            summary[key] = statistics.fmean(values) if values else float("nan")
        out.append(summary)
    return out


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    body = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([title, line, "-" * len(line), *body, ""])


def _fmt(value: Any, spec: str = ".3f") -> str:
    return format(value, spec) if isinstance(value, int | float) else str(value)


SECTIONS = ("sandbox", "overhead", "handoff", "tasks", "batched")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, sizes and seeds")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--out", type=Path, default=Path("out/engine_bench.json"))
    parser.add_argument("--probe", choices=sorted(PROBES), help=argparse.SUPPRESS)
    parser.add_argument("--serve-sim", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_sim:
        _serve_sim(args.serve_sim)
        return 0
    if args.probe:
        print(json.dumps(PROBES[args.probe]()))
        return 0

    import logging

    logging.basicConfig(level=logging.ERROR)
    from rlm_router.sim import register_sim_models

    register_sim_models()
    sections = set(args.only or SECTIONS)
    rounds = 3 if args.quick else 10
    report: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if "sandbox" in sections:
        report["sandbox_start"] = bench_sandbox_start(rounds)
    if "overhead" in sections:
        report["overhead"] = bench_overhead(rounds)
    if "handoff" in sections:
        report["handoff_10m"] = {
            "ours": run_probe("handoff-ours"),
            "official": run_probe("handoff-official"),
        }
    if "tasks" in sections:
        sizes = [32_000] if args.quick else [32_000, 262_000]
        with _sim_process(time_scale=0.0) as base_url:
            rows = bench_tasks(base_url, list(TASK_FAMILIES), sizes, seeds=1 if args.quick else 3)
        report["tasks"] = {"runs": rows, "summary": _task_summary(rows)}
    if "batched" in sections:
        report["batched"] = {"default_caps": default_caps(), "rows": []}
        for latency in BATCH_LATENCIES_S:
            with _sim_process(time_scale=1.0, fixed_latency_s=latency) as base_url:
                report["batched"]["rows"] += bench_batched(
                    base_url, BATCH_PROMPTS, latency, rounds=1 if args.quick else 3
                )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    print(_render(report))
    print(f"JSON: {args.out}")
    return 0


def _ratio(value: float, ideal: float) -> str:
    return f"{value:.2f} ({value / ideal:.2f}x)"


def _render(report: dict[str, Any]) -> str:
    out = []
    rows = []
    if "overhead" in report:
        ovh = report["overhead"]
        warm = ovh.get("ours_prestarted")
        rows += [
            ["overhead per iteration, model time excluded (ms; median gap between calls)",
             _fmt(ovh["ours"]["per_iteration_ms"], ".2f"),
             _fmt(ovh["official"]["per_iteration_ms"], ".2f"), "<= official"],
            ["  cross-check: (run of 21 - run of 1) / 20 (ms)",
             _fmt(ovh["ours"]["per_iteration_marginal_ms"], ".2f"),
             _fmt(ovh["official"]["per_iteration_marginal_ms"], ".2f"), "-"],
            ["overhead per run, fixed part (ms)", _fmt(ovh["ours"]["per_run_fixed_ms"], ".1f"),
             _fmt(ovh["official"]["per_run_fixed_ms"], ".1f"), "-"],
            ["overhead of a 21-iteration run (ms)", _fmt(ovh["ours"]["run_of_21_ms"], ".1f"),
             _fmt(ovh["official"]["run_of_21_ms"], ".1f"), "<= official"],
        ]  # fmt: skip
        if warm is not None:
            rows += [
                ["  with a pre-started worker (WorkerPool): per iteration (ms)",
                 _fmt(warm["per_iteration_ms"], ".2f"), "-", "-"],
                ["  with a pre-started worker: fixed part per run (ms)",
                 _fmt(warm["per_run_fixed_ms"], ".1f"), "-", "-"],
                ["  with a pre-started worker: 21-iteration run (ms)",
                 _fmt(warm["run_of_21_ms"], ".1f"), "-", "-"],
            ]  # fmt: skip
        if "ours_slow_root_cold" in ovh:
            rows += [
                ["one-iteration run, root call 100 ms: overhead, cold (ms)",
                 _fmt(ovh["ours_slow_root_cold"]["per_run_ms"], ".1f"), "-", "-"],
                ["  the same with a pre-started worker (ms)",
                 _fmt(ovh["ours_slow_root_prestarted"]["per_run_ms"], ".1f"), "-", "-"],
            ]  # fmt: skip
    if "sandbox_start" in report:
        start = report["sandbox_start"]
        rows.append(["sandbox start (s)", _fmt(start["ours_s"]), _fmt(start["official_s"]), "-"])
    if "handoff_10m" in report:
        ours_h, off_h = report["handoff_10m"]["ours"], report["handoff_10m"]["official"]
        size = ours_h.get("context_mb", float("nan"))
        rows += [
            ["10M-token hand-off (s)", _fmt(ours_h.get("handoff_s")),
             _fmt(off_h.get("handoff_s")), "< 1 s"],
            ["hand-off peak memory (x context)",
             _fmt(ours_h.get("peak_total_mb", float("nan")) / size, ".2f"),
             _fmt(off_h.get("peak_total_mb", float("nan")) / size, ".2f"), "< 3x"],
        ]  # fmt: skip
    if rows:
        header = ["measure", "ours", "official rlms 0.1.3", "target"]
        out.append(_table("Engine side by side", header, rows))
    if "batched" in report:
        caps = report["batched"]["default_caps"]
        brows = [
            [f"{b['latency_s'] * 1000:.0f} ms", str(b["cap"]), f"{b['ideal_s']:.2f}", b["ideal"],
             _ratio(b["ours_s"], b["ideal_s"]), _ratio(b["official_s"], b["ideal_s"]),
             _ratio(b["litellm_s"], b["ideal_s"]),
             f"{b['ours_cpu_ms_per_call']:.1f} / {b['official_cpu_ms_per_call']:.1f} / "
             f"{b['litellm_cpu_ms_per_call']:.1f}"]
            for b in report["batched"]["rows"]
        ]  # fmt: skip
        title = (
            f"Batched fan-out: {BATCH_PROMPTS} prompts, fixed provider latency, simulator in its "
            f"own process; s (x ideal), target <= 1.2x. Default caps: ours {caps['ours']}, "
            f"rlms {caps['official']}"
        )
        header = ["latency", "cap", "ideal s", "ideal", "ours", "official", "bare litellm",
                  "client CPU ms/call ours/official/litellm"]  # fmt: skip
        out.append(_table(title, header, brows))
    if "tasks" in report:
        summary = report["tasks"]["summary"]
        trows = [
            [f"{r['n_tokens'] // 1000}K", r["family"], r["engine"], f"{r['runs']}",
             _fmt(r["score"], ".2f"), _fmt(r["iterations"], ".1f"), _fmt(r["sub_calls"], ".1f"),
             _fmt(r["input_tokens"], ".0f"), _fmt(r["cost_usd"], ".4f"), _fmt(r["wall_s"], ".2f"),
             str(r["errors"])]
            for r in summary
        ]  # fmt: skip
        header = ["size", "task", "engine", "runs", "score", "iters", "subs", "in tokens",
                  "cost $", "wall s", "errors"]  # fmt: skip
        title = (
            "Tasks (means over seeds; same tasks, models and simulator, instant model; "
            "official cost = its tokens x litellm's price map)"
        )
        out.append(_table(title, header, trows))
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
