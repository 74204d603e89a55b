"""Warm start: the first routed response of a fresh proxy against a warm one's latency.

``python -m benchmarks.warm_start_bench [--rounds 3] [--before CHECKOUT] [--out out]``

Each round starts a real LiteLLM proxy with the plugin (the config ``rlm-router serve``
writes for the simulated provider, which runs in this process on loopback), waits until it
answers its liveness probe, then sends one routed request (``model: auto``, a short prompt:
the direct route) and ten more, one at a time. The first request's latency minus the median
of the rest is what a fresh proxy still pays on its first request (the simulator answers one
request before the rounds, so its own first-use costs are in no round). ``--before`` runs the same
rounds with a checkout of the code before the warm-up (its packages first on PYTHONPATH),
interleaved. Target: first response within 50 ms of a warm one. Prints a table and writes
``warm_start_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.proxy_bench import MASTER_KEY, ProxyProcess, plugin_config
from rlm_router.sim import SimConfig, SimServer

WARM_REQUESTS = 10


def _latency_ms(client: httpx.Client, url: str, i: int) -> float:
    body = {"model": "auto", "messages": [{"role": "user", "content": f"Say hello {i}."}]}
    started = time.perf_counter()
    response = client.post(url, json=body)
    elapsed = (time.perf_counter() - started) * 1000.0
    response.raise_for_status()
    return elapsed


def one_round(base_url: str, pythonpath: str | None) -> dict[str, float]:
    env = {"PYTHONPATH": pythonpath} if pythonpath else {}
    with ProxyProcess(plugin_config(base_url), env=env) as proxy:
        url = f"{proxy.base_url}/v1/chat/completions"
        headers = {"Authorization": f"Bearer {MASTER_KEY}"}
        with httpx.Client(headers=headers, timeout=60.0) as client:
            first = _latency_ms(client, url, 0)
            warm = [_latency_ms(client, url, i) for i in range(1, WARM_REQUESTS + 1)]
    median = statistics.median(warm)
    return {"first_ms": first, "warm_median_ms": median, "first_minus_warm_ms": first - median}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=Path, default=None, metavar="CHECKOUT")
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args(argv)
    sides: list[tuple[str, str | None]] = [("new", str(Path.cwd()))]
    if args.before is not None:
        sides.append(("before", str(args.before)))
    server = SimServer(SimConfig(seed=0, time_scale=0.0)).start_in_thread()
    rows: list[dict[str, Any]] = []
    try:
        # The simulator runs in this process: its own first request (aiohttp's and the
        # task reader's first use) would otherwise be charged to round 0's first side.
        body = {"model": "sim-large", "messages": [{"role": "user", "content": "Say hello."}]}
        httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=60).raise_for_status()
        for index in range(args.rounds):
            for code, path in sides:  # interleaved: the machine's load hits both alike
                rows.append({"code": code, "round": index, **one_round(server.base_url, path)})
                first, warm = rows[-1]["first_ms"], rows[-1]["warm_median_ms"]
                print(
                    f"{code:<7} round {index}: first {first:7.1f} ms, warm median {warm:6.1f} ms, "
                    f"first - warm {first - warm:7.1f} ms",
                    flush=True,
                )
    finally:
        server.stop()
    summary = {
        code: statistics.median(r["first_minus_warm_ms"] for r in rows if r["code"] == code)
        for code, _ in sides
    }
    for code, value in summary.items():
        print(f"{code}: first response {value:.1f} ms slower than a warm one (median of rounds)")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"rounds": rows, "median_first_minus_warm_ms": summary, "target_ms": 50.0}
    (args.out / "warm_start_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
