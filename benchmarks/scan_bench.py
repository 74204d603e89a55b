"""Parallel trace-reading benchmark: ``ParallelScan`` on one corpus, this code beside another.

``python -m benchmarks.scan_bench [--requests 30000] [--chunk-mb 16] [--workers 2]
[--rounds 3] [--before DIR] [--corpus DIR] [--out out]``

Reads a generated corpus (``benchmarks.trace_corpus``) with ``ParallelScan`` only: no
report, no training, so the figure is the read itself (workers decoding chunks, frames
between processes, the parent putting records back in order). Each read runs in its own
process; its CPU time (user + system, with the reaped workers') and peak RSS come from
``wait4``. ``--before`` is a checkout of other code (e.g. ``git clone /work/main
/tmp/scan-before``) read the same way on the same files, interleaved round by round, so
load drifts hit both alike; both sides print a digest of their records, which must agree.
Prints a table and writes ``scan_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.trace_corpus import generate

_READ = """
import hashlib, sys
from pathlib import Path
from rlm_router.telemetry import parallel_scan
from rlm_router.telemetry.parallel_scan import ParallelScan
paths, chunk, workers = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3])
plan = ParallelScan.plan(paths, workers=workers, chunk_bytes=chunk)
assert plan is not None, "one chunk: nothing to read in parallel"
digest, count, feedback = hashlib.sha256(), 0, {}
for record in plan.records(feedback):
    digest.update(repr(record).encode())
    count += 1
print(parallel_scan.__file__, len(plan.chunks), count, len(feedback), digest.hexdigest())
"""


def read_once(
    code_dir: Path | None, traces: list[str], chunk: int, workers: int
) -> dict[str, object]:
    """One read in a fresh process; ``code_dir`` None means the code installed here."""
    env = dict(os.environ)
    if code_dir is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code_dir), env.get("PYTHONPATH", "")])
    argv = [sys.executable, "-c", _READ, ",".join(traces), str(chunk), str(workers)]
    started = time.perf_counter()
    # ``python -c`` puts its working directory first on sys.path: run in the code's own tree.
    cwd = code_dir or Path.cwd()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, text=True, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    assert proc.stdout is not None
    out = proc.stdout.read().split()
    proc.stdout.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or len(out) != 5:
        raise RuntimeError(f"read failed ({proc.returncode}): {out}")
    module, chunks, records, feedback, digest = out
    return {
        "module": module,
        "chunks": int(chunks),
        "records": int(records),
        "feedback": int(feedback),
        "digest": digest,
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_mb": round(usage.ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--chunk-mb", type=float, default=16.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=Path, default=None)
    parser.add_argument("--corpus", type=Path, default=Path("out/scan_corpus"))
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args(argv)
    corpus = generate(args.corpus / f"c{args.requests}", args.requests)
    traces = [str(p.resolve()) for p in corpus.traces]
    chunk = int(args.chunk_mb * 1024 * 1024)
    sides: dict[str, Path | None] = {"this": None}
    if args.before is not None:
        sides["before"] = args.before.resolve()
    runs: dict[str, list[dict[str, object]]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, code_dir in sides.items():
            runs[name].append(read_once(code_dir, traces, chunk, args.workers))
    digests = {str(run["digest"]) for side in runs.values() for run in side}
    summary = {
        "requests": corpus.requests,
        "bytes": corpus.bytes,
        "chunk_bytes": chunk,
        "workers": args.workers,
        "rounds": args.rounds,
        "records_identical": len(digests) == 1,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "sides": {
            name: {
                "module": side[0]["module"],
                "cpu_s_median": statistics.median(float(str(r["cpu_s"])) for r in side),
                "wall_s_median": statistics.median(float(str(r["wall_s"])) for r in side),
                "peak_mb_max": max(float(str(r["peak_mb"])) for r in side),
                "runs": side,
            }
            for name, side in runs.items()
        },
    }
    print(f"{corpus.requests} requests, {corpus.bytes / 1e6:.0f} MB, "
          f"{runs['this'][0]['chunks']} chunks, {args.workers} workers, "
          f"{args.rounds} rounds, load {summary['load_avg_1m']}")  # fmt: skip
    print(f"{'code':<8} {'CPU s (median)':>15} {'wall s (median)':>16} {'parent MB':>10}")
    for name, side in summary["sides"].items():
        print(f"{name:<8} {side['cpu_s_median']:>15.2f} {side['wall_s_median']:>16.2f} "
              f"{side['peak_mb_max']:>10.0f}")  # fmt: skip
    print(f"records identical: {summary['records_identical']}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scan_bench.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if summary["records_identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
