"""``rlm-router dashboard``: render the HTML cost/latency report from OTLP-JSON traces."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rlm_router.router.commands import add_trace_inputs


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "dashboard",
        help="render the HTML cost/latency report",
        description="Read OTLP-JSON-lines trace files (written by rlm-router or an "
        "OpenTelemetry Collector's file exporter) and write a self-contained HTML report: "
        "requests, cost and latency per route over time, escalation rate, decision scores, "
        "fallbacks, RLM iterations and sub-calls.",
    )
    add_trace_inputs(parser)
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("report.html"), help="HTML file to write"
    )
    parser.add_argument("--title", default="rlm-router report")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rlm_router.telemetry.report import write_report
    from rlm_router.telemetry.trace_files import expand_paths, missing_paths

    missing = missing_paths([*args.traces, *args.feedback])
    if missing:
        print(
            f"rlm-router dashboard: no such file or directory: {', '.join(missing)}",
            file=sys.stderr,
        )
        return 2
    try:
        count = write_report(
            args.traces,
            args.output,
            feedback_paths=args.feedback,
            title=args.title,
            workers=args.workers,
        )
    except (OSError, ValueError) as exc:  # ValueError: TraceFormatError, no request found
        print(f"rlm-router dashboard: {exc}", file=sys.stderr)
        return 1
    print(f"{args.output}: {count} requests from {len(expand_paths(args.traces))} trace file(s)")
    return 0
