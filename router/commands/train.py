"""``rlm-router train``: retrain the routing classifier from traces, promote it only if better.

Exit status: 0 = the new classifier was promoted and written to ``--out``; 1 = the current
one was kept (nothing written); 2 = training was impossible (unreadable files, an invalid
policy, or traces that cannot support an unbiased estimate: no propensities, no exploration).
The report goes to stdout, the progress bar to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from rlm_router.router.commands import add_trace_inputs

if TYPE_CHECKING:
    from rlm_router.telemetry.records import RequestRecord

EXIT_PROMOTED = 0
EXIT_KEPT = 1
EXIT_CANNOT_TRAIN = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from rlm_router.policies.learning.sampling import DEFAULT_MAX_ROWS
    from rlm_router.policies.learning.utility import DEFAULT_COST_WEIGHT, DEFAULT_LATENCY_WEIGHT

    parser = subparsers.add_parser(
        "train",
        help="retrain the routing policy from traces",
        description="Build an off-policy data set from OTLP-JSON-lines traces (rlm-router's "
        "or an OpenTelemetry Collector's file exporter) and feedback, fit a new classifier "
        "with inverse-propensity (doubly-robust) weighting, estimate offline the new and the "
        "current policy's value with a confidence interval, and write the new classifier "
        "only if the interval of the improvement lies above zero. Inner sub-calls are never "
        "training data.",
        epilog="exit status: 0 promoted (written to --out), 1 current policy kept, 2 cannot train",
    )
    add_trace_inputs(parser)
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="POLICY_YAML",
        help="the current policy (default: the shipped one); its classifier and threshold "
        "are what the new classifier must beat",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="ARTIFACT_JSON",
        help="where to write the new classifier artifact if it is promoted",
    )
    parser.add_argument(
        "--cost-weight",
        type=float,
        default=DEFAULT_COST_WEIGHT,
        help="utility lost per USD spent (default %(default)s)",
    )
    parser.add_argument(
        "--latency-weight",
        type=float,
        default=DEFAULT_LATENCY_WEIGHT,
        help="utility lost per second of latency (default %(default)s)",
    )
    parser.add_argument(
        "--failure-quality",
        type=float,
        default=0.0,
        help="quality of a request that failed and has no feedback (default %(default)s)",
    )
    parser.add_argument(
        "--estimator",
        choices=("dr", "ips"),
        default="dr",
        help="offline estimator: doubly robust or inverse propensity scoring (default %(default)s)",
    )
    parser.add_argument(
        "--folds",
        type=int,
        default=5,
        help="cross-fitting folds: each request is evaluated by models fitted without it "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--confidence",
        type=float,
        default=0.95,
        help="confidence level of the bootstrap interval (default %(default)s)",
    )
    parser.add_argument(
        "--max-rows",
        type=int,
        default=DEFAULT_MAX_ROWS,
        help="above this many usable requests, fit and evaluate on a weighted sample that "
        "keeps every explored request (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds and the bootstrap")
    parser.add_argument(
        "--version",
        default=None,
        help="version name of the new classifier (default: learned-<UTC time>)",
    )
    parser.add_argument(
        "--report-json",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write the report's figures as JSON",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rlm_router.policies import ArtifactError, LinearClassifier, PolicyError, load_policy
    from rlm_router.policies.learning import TrainingConfig, TrainingDataError, Utility, train
    from rlm_router.router.features import FEATURE_NAMES
    from rlm_router.telemetry.records import RequestScan
    from rlm_router.telemetry.trace_files import missing_paths

    missing = missing_paths([*args.traces, *args.feedback])
    if missing:
        return _fail(f"no such file or directory: {', '.join(missing)}")
    progress = ProgressBar(sys.stderr)
    try:
        utility = Utility(
            cost_weight=args.cost_weight,
            latency_weight=args.latency_weight,
            failure_quality=args.failure_quality,
        )
        config = TrainingConfig(
            utility=utility,
            estimator=args.estimator,
            folds=args.folds,
            confidence=args.confidence,
            max_rows=args.max_rows,
            seed=args.seed,
        )
        policy = load_policy(args.config)
        current = LinearClassifier.load(
            policy.classifier.artifact_path(), feature_names=frozenset(FEATURE_NAMES)
        )
        # One pass over the traces while the data set's columns fill; feedback spans met on
        # the way are applied once it is over.
        scan = RequestScan(args.traces, args.feedback, workers=args.workers)
        report = train(
            _reading(scan, progress),
            current,
            threshold=policy.classifier.threshold,
            config=config,
            version=args.version,
            progress=progress,
            reported=scan.reported_quality,
        )
    except (ValueError, PolicyError, ArtifactError, TrainingDataError, OSError) as exc:
        progress.close()
        return _fail(str(exc))
    progress.close()
    print(f"rlm-router train: policy {policy.version}, threshold {policy.classifier.threshold:g}")
    print(report.render())
    if args.report_json is not None:
        args.report_json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if not report.promoted:
        print(f"nothing written; {args.out} unchanged")
        return EXIT_KEPT
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report.artifact.dump(args.out)
    print(
        f"wrote {args.out} ({report.artifact.version}); to serve it set "
        f"`classifier: {{artifact: {args.out}}}` in the policy and reload"
    )
    return EXIT_PROMOTED


def _reading(records: Iterable[RequestRecord], progress: ProgressBar) -> Iterator[RequestRecord]:
    progress("reading traces", 0, 1)
    yield from records
    progress("reading traces", 1, 1)


def _fail(message: str) -> int:
    print(f"rlm-router train: {message}", file=sys.stderr)
    return EXIT_CANNOT_TRAIN


class ProgressBar:
    """A one-line progress bar per stage on a stream (redrawn in place on a terminal)."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self._stage: str | None = None
        self._started = time.monotonic()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            if self._stage is not None and self.tty:
                self.stream.write("\n")
            self._stage = stage
            self._started = time.monotonic()
        if not self.tty and done != total:
            return  # one line per finished stage in logs
        filled = self.width * done // max(1, total)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.monotonic() - self._started
        line = f"{stage:<16} [{bar}] {done}/{total} {elapsed:5.1f}s"
        self.stream.write(("\r" + line) if self.tty else (line + "\n"))
        self.stream.flush()

    def close(self) -> None:
        if self._stage is not None and self.tty:
            self.stream.write("\n")
            self.stream.flush()
        self._stage = None
