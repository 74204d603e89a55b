"""Subcommands of the ``rlm-router`` CLI, one module each (see ``router.cli``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_trace_inputs(parser: argparse.ArgumentParser) -> None:
    """``--traces``, ``--feedback`` and ``--workers``: the inputs of the commands that read
    telemetry."""
    parser.add_argument(
        "--traces",
        nargs="+",
        required=True,
        type=Path,
        metavar="PATH",
        help="OTLP-JSON-lines trace files (ours or an OpenTelemetry Collector's), or "
        "directories of rotated files; gzip is read as such",
    )
    parser.add_argument(
        "--feedback",
        nargs="*",
        default=[],
        type=Path,
        metavar="PATH",
        help="feedback JSON-lines files or directories (quality reports by decision id)",
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        metavar="N",
        help="processes that decode the traces (default: the CPUs available, or 1 when the "
        "load average already fills them; 1 reads in this process); above 64 MB of input "
        "the files are read in parts, in parallel",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
