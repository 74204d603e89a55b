"""The ``rlm-router`` command line.

Each subcommand lives in its own module under ``router.commands`` and exposes
``register(subparsers)``; modules are imported lazily so that ``rlm-router route`` does not
pay for importing litellm or the proxy.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "sim": ("rlm_router.router.commands.sim", "run the simulated OpenAI-compatible provider"),
    "rlm": (
        "rlm_router.router.commands.rlm",
        "answer a query over a context file with the RLM engine",
    ),
    "route": ("rlm_router.router.commands.route", "decide the route for a request read from stdin"),
    "policy": ("rlm_router.router.commands.policy", "check or calibrate a routing policy"),
    "serve": ("rlm_router.router.commands.serve", "start the LiteLLM proxy with the router plugin"),
    "demo": (
        "rlm_router.router.commands.demo",
        "run the offline demo workload against the simulator",
    ),
    "train": ("rlm_router.router.commands.train", "retrain the routing policy from traces"),
    "dashboard": ("rlm_router.router.commands.dashboard", "render the HTML cost/latency report"),
}


def _build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlm-router", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Only the chosen command's module is imported; the rest get a stub entry for --help.
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        if name == chosen:
            module = importlib.import_module(module_name)
            module.register(subparsers)
        else:
            subparsers.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = _build_parser(args_list)
        args = parser.parse_args(args_list)
        handler = getattr(args, "handler", None)
        if handler is None:
            parser.error(f"command {args.command!r} is not available in this build")
        return int(handler(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C is how a user stops a command: no traceback
        print("rlm-router: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
