"""``rlm-router sim``: run the simulated OpenAI-compatible provider in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run the simulated OpenAI-compatible provider",
        description="Serve the simulated models (sim-large, sim-mini, sim-small) on loopback "
        "with OpenAI's chat-completions API, so litellm and the router run without a paid "
        "provider. Prints the api_base URL once serving; stops on Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--port", type=int, default=8900, help="port (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (loopback)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated answers")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiplier of the modelled latencies (0 = instant, 0.01 = demo speed)",
    )
    parser.set_defaults(handler=run)


async def _serve(args: argparse.Namespace) -> None:
    from rlm_router.sim import SIM_MODELS, SimConfig, SimServer

    config = SimConfig(seed=args.seed, time_scale=args.time_scale, host=args.host, port=args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with SimServer(config) as sim:
        print(f"simulated provider serving at {sim.base_url}", flush=True)
        print(
            f"models: {', '.join(SIM_MODELS)} (litellm: openai/<model>, api_base as above)",
            flush=True,
        )
        await stop.wait()


def run(args: argparse.Namespace) -> int:
    if args.time_scale < 0:
        print("rlm-router sim: --time-scale must be >= 0", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(args))
    except OSError as exc:
        print(f"rlm-router sim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
