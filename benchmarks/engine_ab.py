"""The engine's per-iteration overhead of two source trees, A/B in alternating fresh processes.

    .venv/bin/python -m benchmarks.engine_ab --baseline /tmp/pre-rt [--tree .] [--pairs 12]

Not a test. One iteration is the engine's work between two model calls with an instant
scripted model: parse the reply, run the code in the sandbox worker, build the next prompt.
Each process measures one tree with that tree's own ``benchmarks.engine_bench._ours_overhead``
(``PYTHONPATH`` set to the tree, so a baseline runs its own engine and worker). A pair is two
fresh processes, one per tree, started together and warmed up; then their ``--runs`` runs of
``--iterations`` turns alternate (A B, B A, ...), one at a time, so that what the machine does
meanwhile falls on both trees alike. Pairs alternate which tree goes first. Processes measured
one after the other gave per-process medians 1.5x apart on this VM, pinned or not.

Measured per process: the median gap between consecutive model calls (wall), and the median
CPU per iteration, host plus worker, between the end of one model call and the start of the
next. CPU is read at those two points inside the scripted model (``litellm.ModelResponse`` is
wrapped, so the reads fall in the model's time, which the gaps exclude): the host's
``time.process_time`` and each worker process's CPU clock (ns; ``/proc`` ticks are 10 ms).
Intervals are taken in every run, the warm-up inside ``_ours_overhead`` included, except a
run's first (its worker is not there yet when the first model call ends).

Reported per tree: the median over processes of those medians; per pair, the ratio tree /
baseline, with its median and a bootstrap 95% interval (resampling pairs).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_BOOTSTRAP = 2000


def _descendants() -> list[int]:
    """Every live descendant of this process (the workers and whatever they started)."""
    found, todo = [], [os.getpid()]
    while todo:
        pid = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def _process_cpu(pid: int) -> float | None:
    try:  # the process-wide CPUCLOCK_SCHED clock of ``pid``: MAKE_PROCESS_CPUCLOCK(pid, 2)
        return time.clock_gettime(((~pid) << 3) | 2)
    except OSError:
        return None


def _child(iterations: int) -> dict[str, Any]:
    """Measure the tree on ``sys.path``, a run per ``run`` line on stdin, until ``stop``
    (a fresh process started by ``_Measured``, which alternates two of them)."""
    import asyncio

    import litellm

    from benchmarks.engine_bench import _ours_overhead

    marks: list[tuple[str, float, dict[int, float]]] = []
    pids: list[int] = []
    real = litellm.ModelResponse

    def sample(point: str) -> None:
        host = time.process_time()  # read first: nothing below is charged to the interval
        workers = {pid: cpu for pid in pids if (cpu := _process_cpu(pid)) is not None}
        marks.append((point, host, workers))

    def response(*args: Any, **kwargs: Any) -> Any:
        sample("start")
        made = real(*args, **kwargs)
        pids[:] = _descendants()  # before the end mark: its cost falls in the model's time
        sample("end")
        return made

    litellm.ModelResponse = response  # type: ignore[misc,assignment]
    asyncio.run(_ours_overhead(iterations, 1))  # imports, caches: not measured
    marks.clear()
    gaps: list[float] = []
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        gaps += asyncio.run(_ours_overhead(iterations, 1))[1]
        print("ran", flush=True)
    host, total = [], []
    for (p1, h1, w1), (p2, h2, w2) in itertools.pairwise(marks):
        if (p1, p2) != ("end", "start") or not w1 or w1.keys() != w2.keys():
            continue  # a run's first call, or a worker that changed: no interval
        host.append(h2 - h1)
        total.append(h2 - h1 + sum(w2[pid] - w1[pid] for pid in w1))
    return {
        "gap_ms": 1000 * statistics.median(gaps),
        "cpu_ms": 1000 * statistics.median(total),
        "host_cpu_ms": 1000 * statistics.median(host),
        "iterations_timed": len(total),
    }


class _Measured:
    """A fresh process measuring one tree with its own code, driven a run at a time."""

    def __init__(self, tree: Path, iterations: int, cpus: str | None) -> None:
        # Offline, as each tree's engine_bench would set it, but before litellm is imported
        # here (without it the import tries a network fetch of the cost map: +5 s).
        env = {**os.environ, "PYTHONPATH": str(tree), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        args = [sys.executable, __file__, "--child", str(iterations)]
        if cpus:  # the host and its workers inherit the affinity
            args = ["taskset", "-c", cpus, *args]
        self.tree = tree
        self._proc = subprocess.Popen(
            args, cwd=tree, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    def _expect(self, word: str) -> str:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.startswith(word):
            self._proc.kill()
            _, err = self._proc.communicate()
            raise RuntimeError(f"measuring {self.tree} failed:\n{err[-2000:]}")
        return line

    def ready(self) -> None:
        self._expect("ready")

    def run(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write("run\n")
        self._proc.stdin.flush()
        self._expect("ran")

    def result(self) -> dict[str, Any]:
        out, err = self._proc.communicate("stop\n")
        if self._proc.returncode != 0:
            raise RuntimeError(f"measuring {self.tree} failed:\n{err[-2000:]}")
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result


def _pair(trees: dict[str, Path], order: tuple[str, str], args: argparse.Namespace) -> Any:
    """Two fresh processes, one per tree, started together; their runs alternate (A B, B A,
    ...) so that what the machine does meanwhile falls on both alike."""
    measured = {name: _Measured(trees[name], args.iterations, args.cpus) for name in order}
    for process in measured.values():
        process.ready()
    for run in range(args.runs):
        for name in order if run % 2 == 0 else order[::-1]:
            measured[name].run()
    return {name: process.result() for name, process in measured.items()}


def _interval(ratios: list[float], seed: int = 0) -> tuple[float, float]:
    """A bootstrap 95% interval of the median of ``ratios`` (pairs resampled)."""
    rng = random.Random(seed)
    medians = sorted(
        statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(_BOOTSTRAP)
    )
    return medians[int(0.025 * _BOOTSTRAP)], medians[int(0.975 * _BOOTSTRAP) - 1]


def summarize(pairs: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Per tree the median of each metric; per metric the paired ratio tree / baseline."""
    summary: dict[str, Any] = {"pairs": len(pairs), "trees": {}, "ratios": {}}
    for name in ("baseline", "tree"):
        summary["trees"][name] = {
            metric: statistics.median(pair[name][metric] for pair in pairs)
            for metric in ("gap_ms", "cpu_ms", "host_cpu_ms")
        }
    for metric in ("gap_ms", "cpu_ms", "host_cpu_ms"):
        ratios = [pair["tree"][metric] / pair["baseline"][metric] for pair in pairs]
        low, high = _interval(ratios)
        summary["ratios"][metric] = {
            "median": statistics.median(ratios), "low": low, "high": high, "each": ratios,
        }  # fmt: skip
    return summary


def render(summary: dict[str, Any], labels: dict[str, str]) -> str:
    header = "| tree | gap ms | CPU ms (host) | gap ratio [95%] | CPU ratio [95%] |"
    lines = [f"Per iteration, {summary['pairs']} A/B pairs", "", header, "|---" * 5 + "|"]
    for name in ("baseline", "tree"):
        t = summary["trees"][name]
        cells = [labels[name], f"{t['gap_ms']:.3f}", f"{t['cpu_ms']:.3f} ({t['host_cpu_ms']:.3f})"]
        if name == "baseline":
            cells += ["1", "1"]
        else:
            for metric in ("gap_ms", "cpu_ms"):
                r = summary["ratios"][metric]
                cells.append(f"{r['median']:.3f} [{r['low']:.3f}, {r['high']:.3f}]")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the tree to compare to")
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per process")
    parser.add_argument("--iterations", type=int, default=21, help="turns per run")
    parser.add_argument(
        "--cpus",
        help="pin each process and its workers to these CPUs (taskset list, e.g. 1): where "
        "the scheduler puts the worker (the host's core or the other) changes a round trip "
        "by up to ~1.5x here, and it differs from process to process",
    )
    parser.add_argument("--out", type=Path, default=Path("out/engine_ab.json"))
    args = parser.parse_args(argv)
    trees = {"baseline": args.baseline.resolve(), "tree": args.tree.resolve()}
    pairs = []
    for i in range(args.pairs):
        order = ("baseline", "tree") if i % 2 == 0 else ("tree", "baseline")
        pair = _pair(trees, order, args)
        pairs.append(pair)
        print(f"pair {i + 1}: " + ", ".join(f"{n} {pair[n]['gap_ms']:.3f} ms" for n in order))
    summary = summarize(pairs)
    summary["trees_paths"] = {name: str(path) for name, path in trees.items()}
    summary["load"] = os.getloadavg()
    summary["cpus"] = args.cpus
    summary["measured"] = pairs
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(render(summary, {name: str(path) for name, path in trees.items()}))
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        del sys.path[0]  # this directory: the tree's own benchmarks package must win
        print(json.dumps(_child(int(sys.argv[2]))))
    else:
        sys.exit(main())
