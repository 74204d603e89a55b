"""Subcommands of the ``rlm-router`` CLI, one module each (see ``router.cli``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_trace_inputs(parser: argparse.ArgumentParser) -> None:
    """``--traces`` and ``--feedback``: the inputs of the commands that read telemetry."""
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
