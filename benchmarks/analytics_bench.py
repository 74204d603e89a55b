"""Trace-analytics benchmark: ``rlm-router train`` and ``dashboard`` on 1K..1M requests.

``python -m benchmarks.analytics_bench [--sizes 1000 10000 100000 1000000] [--before DIR]
[--before-max 100000] [--serial-max 1000000] [--corpus DIR] [--out out]``

The traces are generated with the real span shapes (``benchmarks.trace_corpus``: our
telemetry and exporter record a template, repeated with fresh ids and times), rotated every
100K requests. Each command runs in its own process through the real CLI, and the harness
reads that process's CPU time and peak RSS from ``wait4``. ``--before`` is a checkout of the
code before the streaming reader (e.g. ``git worktree add /tmp/scale-before <base>``): the
same commands run there on the same files, in the same run, and the outputs are compared
byte for byte (the report HTML; train's report and JSON figures, which are the same as long
as the usable rows do not exceed ``--max-rows``, above which the new trainer samples).
Up to ``--serial-max`` requests the new code also runs with ``--workers 1`` (code
``serial``: decoding in the command's own process), beside ``new`` (``--workers`` = the CPUs
available: parallel decoding whatever the load; workers' CPU is in the CPU column, as
``wait4`` counts reaped children; "all MB" is the sampled peak of the command's processes
together). One more row reads the 100K corpus gzip-compressed. Prints a table and writes
``analytics_bench.json``, with the 10M-request extrapolation (linear from 100K to 1M).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.trace_corpus import generate, policy_yaml
from rlm_router.telemetry.parallel_scan import available_cpus

SIZES = (1_000, 10_000, 100_000, 1_000_000)


@dataclass
class Run:
    requests: int
    command: str  # train or dashboard
    code: str  # new (parallel reading), serial (new, --workers 1) or before
    wall_s: float
    cpu_s: float
    peak_mb: float
    exit_code: int
    tree_peak_mb: float = 0.0  # the command's process and its workers together, sampled
    identical: bool | None = None  # output equal to the code before's (None: not compared)
    variant: str = ""  # "gzip" for the compressed corpus


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants now (0 once it has exited)."""
    total, todo = 0, [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        current = todo.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * page
            todo += [
                int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()
            ]
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
    return total / 2**20


def _run(argv: list[str], cwd: Path | None, out: Path) -> tuple[float, float, float, int, float]:
    env = dict(os.environ)
    if cwd is not None:  # the checkout's packages before the installed ones
        env["PYTHONPATH"] = str(cwd)
    started = time.monotonic()
    with (out.with_suffix(".stdout")).open("wb") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rlm_router.router.cli", *argv],
            cwd=cwd,
            env=env,
            stdout=stdout,
            stderr=subprocess.DEVNULL,
        )
        # wait4's peak is the largest single process; the sum over the worker processes
        # that run at once is sampled here (every 0.2 s).
        tree_peak = 0.0
        done = threading.Event()

        def sample() -> None:
            nonlocal tree_peak
            while not done.wait(0.2):
                tree_peak = max(tree_peak, _tree_rss_mb(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    peak = usage.ru_maxrss / 1024
    return wall, usage.ru_utime + usage.ru_stime, peak, proc.returncode, max(tree_peak, peak)


def _commands(
    files: list[str], feedback: Path, out: Path, max_rows: int, policy: Path, workers: int = 0
) -> dict[str, list[str]]:
    extra = ["--workers", str(workers)] if workers else []
    commands = {
        "train": [
            "train", "--traces", *files, "--feedback", str(feedback), "--config", str(policy),
            "--out",
            str(out / "artifact.json"), "--version", "bench", "--report-json",
            str(out / "train.json"), *(["--max-rows", str(max_rows)] if max_rows else []),
        ],
        "dashboard": [
            "dashboard", "--traces", *files, "--feedback", str(feedback), "-o",
            str(out / "report.html"),
        ],
    }  # fmt: skip
    return {name: [*argv, *extra] for name, argv in commands.items()}


def _outputs(out: Path, command: str) -> bytes:
    if command == "dashboard":
        return (out / "report.html").read_bytes()
    text = (out / "train.stdout").read_bytes().replace(str(out).encode(), b"OUT")
    return text + (out / "train.json").read_bytes()


def run_bench(
    sizes: tuple[int, ...],
    corpus: Path,
    out: Path,
    before: Path | None,
    before_max: int,
    serial_max: int,
) -> list[Run]:
    runs: list[Run] = []
    # Both checkouts train against the same current classifier: the one shipped with the
    # code before (the new code reads every feature it uses), not each its own default.
    shipped = (before or Path(__file__).parents[1]) / "policies" / "default_classifier.json"
    artifact = out / "current_classifier.json"
    artifact.write_bytes(shipped.read_bytes())
    policy = policy_yaml(out, artifact=str(artifact.resolve()))
    for size in sizes:
        made = generate(corpus / str(size), size)
        files = [str(p) for p in made.traces]
        sides: list[tuple[str, Path | None]] = [("new", None)]
        if size <= serial_max:
            sides.append(("serial", None))
        if before is not None and size <= before_max:
            sides.append(("before", before))
        results: dict[tuple[str, str], bytes] = {}
        for code, cwd in sides:
            workdir = out / f"{size}-{code}"
            workdir.mkdir(parents=True, exist_ok=True)
            # Explicit: the default reads serially when the machine is already busy.
            workers = 1 if code == "serial" else (0 if code == "before" else available_cpus())
            commands = _commands(files, made.feedback, workdir, 0, policy, workers)
            for command, argv in commands.items():
                wall, cpu, peak, status, tree = _run(argv, cwd, workdir / command)
                runs.append(Run(size, command, code, wall, cpu, peak, status, tree))
                print(_row(runs[-1]), flush=True)
                results[(code, command)] = _outputs(workdir, command)
        for other in ("serial", "before"):  # the same bytes as the new code's default run
            for run in runs:
                if run.requests == size and run.code == other and (other, run.command) in results:
                    run.identical = results[("new", run.command)] == results[(other, run.command)]
    if 100_000 in sizes:
        made = generate(corpus / "100000-gzip", 100_000, gzipped=True)
        workdir = out / "100000-gzip"
        workdir.mkdir(parents=True, exist_ok=True)
        inputs = [str(made.traces[0].parent)]
        for command, argv in _commands(inputs, made.feedback, workdir, 0, policy).items():
            wall, cpu, peak, status, tree = _run(argv, None, workdir / command)
            runs.append(Run(100_000, command, "new", wall, cpu, peak, status, tree, variant="gzip"))
            print(_row(runs[-1]), flush=True)
    return runs


def _row(run: Run) -> str:
    same = {None: "", True: "yes", False: "NO"}[run.identical]
    name = f"{run.requests:>9,}{' gz' if run.variant else '   '}"
    return (
        f"{name} {run.command:<10} {run.code:<7} {run.wall_s:8.1f} {run.cpu_s:8.1f} "
        f"{run.peak_mb:8.0f} {run.tree_peak_mb:8.0f} {run.exit_code:>4} {same:>9}"
    )


def extrapolate(runs: list[Run]) -> dict[str, dict[str, float]]:
    """10M requests from the 100K -> 1M slope of the new code (CPU s, peak MB)."""
    out: dict[str, dict[str, float]] = {}
    for command in ("train", "dashboard"):
        mine = {r.requests: r for r in runs if r.code == "new" and r.command == command
                and not r.variant}  # fmt: skip
        if 100_000 in mine and 1_000_000 in mine:
            low, high = mine[100_000], mine[1_000_000]
            scale = 9_000_000 / 900_000
            out[command] = {
                "wall_s": high.wall_s + (high.wall_s - low.wall_s) * scale,
                "cpu_s": high.cpu_s + (high.cpu_s - low.cpu_s) * scale,
                "peak_mb": high.peak_mb + (high.peak_mb - low.peak_mb) * scale,
                "all_processes_peak_mb": high.tree_peak_mb
                + (high.tree_peak_mb - low.tree_peak_mb) * scale,
            }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--before", type=Path, default=None, metavar="CHECKOUT")
    parser.add_argument("--before-max", type=int, default=100_000)
    parser.add_argument("--serial-max", type=int, default=1_000_000)
    parser.add_argument("--corpus", type=Path, default=Path("/tmp/rlm-router-corpus"))
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{'requests':>12} {'command':<10} {'code':<7} {'wall s':>8} {'CPU s':>8} "
          f"{'peak MB':>8} {'all MB':>8} {'exit':>4} {'identical':>9}")  # fmt: skip
    runs = run_bench(
        tuple(args.sizes), args.corpus, args.out, args.before, args.before_max, args.serial_max
    )
    projection = extrapolate(runs)
    for command, figures in projection.items():
        print(
            f"10M requests, {command} (linear from 100K -> 1M): ~{figures['wall_s']:.0f} s wall, "
            f"~{figures['cpu_s']:.0f} s CPU, "
            f"~{figures['peak_mb']:.0f} MB peak"
        )
    result = {"runs": [asdict(r) for r in runs], "extrapolation_10m": projection}
    (args.out / "analytics_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
