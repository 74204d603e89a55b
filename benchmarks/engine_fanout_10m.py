"""Host CPU per sub-call and the 10M-token request, our engine beside the official ``rlms``.

    .venv/bin/python -m benchmarks.engine_fanout_10m [--tokens 10000000] [--rounds 1]
        [--out out/engine_fanout_10m.json]

One run, both engines on the same simulated provider (its own process, so its CPU is not
charged to either engine):

- the fan-out rows of ``benchmarks.engine_bench`` (``engine_fanout.bench_batched``: one
  256-prompt ``llm_query_batched`` per engine and per in-flight cap, at 50 ms and 1 s per
  sub-call): wall time against the ideal and host CPU per sub-call, with the ratio ours /
  official (target: <= 1.1);
- one OOLONG request of ``--tokens`` tokens (the simulator's fast root, no modelled latency)
  through each engine, ours then the official, each in this process: wall time, CPU time of
  this process and its reaped children (our sandbox workers), iterations, sub-calls, score.

Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from benchmarks.engine_bench import _official_run, _ours_run, _sim_process
from benchmarks.engine_fanout import bench_batched
from rlm_router.rlm_core.env import apply_offline_defaults

LATENCIES_S = (0.05, 1.0)
PROMPTS = 256


def _cpu_s() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def bench_10m(base_url: str, tokens: int) -> list[dict[str, Any]]:
    """The same ``tokens``-token OOLONG task through each engine (after a small warm run)."""
    from rlm_router.sim.tasks import generate

    warm = generate("oolong", n_tokens=2_000, seed=0)
    _ours_run(base_url, warm.question, warm.context)
    with contextlib.suppress(Exception):  # its failure shows in the measured row below
        _official_run(base_url, warm.question, warm.context)
    task = generate("oolong", n_tokens=tokens, seed=1)
    rows = []
    for engine, run in (("ours", _ours_run), ("official", _official_run)):
        cpu, started = _cpu_s(), time.perf_counter()
        try:
            result = run(base_url, task.question, task.context)
            error = None
        except Exception as exc:  # a failed run is a result here
            result, error = {}, f"{type(exc).__name__}: {exc}"[:300]
        wall, cpu = time.perf_counter() - started, _cpu_s() - cpu
        rows.append(
            {
                "engine": engine,
                "tokens": tokens,
                "wall_s": wall,
                "cpu_s": cpu,
                "iterations": result.get("iterations"),
                "sub_calls": result.get("sub_calls"),
                "score": task.score(str(result.get("answer") or "")) if result else None,
                "error": error,
            }
        )
        print(
            f"10M request  {engine:<8} wall {wall:6.1f} s  CPU {cpu:6.2f} s  "
            f"iterations {result.get('iterations')}  sub-calls {result.get('sub_calls')}  "
            f"score {rows[-1]['score']}  {error or ''}",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=1, help="fan-out rounds per cap")
    parser.add_argument("--out", type=Path, default=Path("out/engine_fanout_10m.json"))
    args = parser.parse_args(argv)
    apply_offline_defaults()
    import logging

    logging.basicConfig(level=logging.ERROR)
    from rlm_router.sim import register_sim_models

    register_sim_models()
    report: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    rows: list[dict[str, Any]] = []
    for latency in LATENCIES_S:
        with _sim_process(time_scale=1.0, fixed_latency_s=latency) as base_url:
            rows += bench_batched(base_url, PROMPTS, latency, rounds=args.rounds)
    for row in rows:
        row["cpu_ratio_ours_official"] = (
            row["ours_cpu_ms_per_call"] / row["official_cpu_ms_per_call"]
            if row["official_cpu_ms_per_call"] > 0
            else None
        )
        print(
            f"fan-out {row['prompts']} x {row['latency_s'] * 1000:.0f} ms cap {row['cap']:>3}: "
            f"wall ours {row['ours_s']:.2f} s / official {row['official_s']:.2f} s "
            f"(ideal {row['ideal_s']:.2f} s); CPU per sub-call ours "
            f"{row['ours_cpu_ms_per_call']:.2f} ms / official "
            f"{row['official_cpu_ms_per_call']:.2f} ms / bare litellm "
            f"{row['litellm_cpu_ms_per_call']:.2f} ms",
            flush=True,
        )
    report["fanout"] = rows
    with _sim_process(time_scale=0.0) as base_url:
        report["request_10m"] = bench_10m(base_url, args.tokens)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
