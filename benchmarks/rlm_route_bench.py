"""The RLM route's own cost per request: as a library on asyncio's loop, as a library on uvloop,
and through the real LiteLLM proxy (which always runs uvloop).

``python -m benchmarks.rlm_route_bench [--requests 8] [--tokens 32000] [--out out]``

The simulated provider runs in its own process at time scale 0 (its answers are instant), so
what is left of a request's wall time is the router, the engine, the sandbox and the HTTP
hops. Each mode sends one warm-up request and then ``--requests`` OOLONG requests one at a
time, all of which must take the RLM route. The library on asyncio's loop is the reference:
the table gives each mode's median and p90 wall time and CPU per request (this process's, or
the proxy's and its children's) and its median over the reference's. Session 8 found every
RLM answer through the proxy 2 s late (a pipe left open at EOF under uvloop,
``rlm_core/process.py``), a cost that showed on no benchmark: the direct route's were all
there is. Prints a table and writes ``rlm_route_bench.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import httpx

from benchmarks.proxy_bench import MASTER_KEY, ProxyProcess, SimProcess
from benchmarks.scale_bench import KEY_ENV, children_cpu_s, policy_for, proxy_config, proxy_cpu_s
from rlm_router.sim.tasks import generate

MODES = ("library, asyncio", "library, uvloop", "LiteLLM proxy")
_TIMEOUT_S = 300.0


def _body(tokens: int, seed: int) -> dict[str, Any]:
    task = generate("oolong", n_tokens=tokens, seed=seed, kind="count")
    return {"model": "auto", "messages": task.messages()}


def _library(
    run: Callable[[Coroutine[Any, Any, list[dict[str, Any]]]], list[dict[str, Any]]],
    policy: Path,
    bodies: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    from rlm_router.router import Router
    from rlm_router.router.responses import route_of

    async def requests() -> list[dict[str, Any]]:
        router = Router.from_config(policy)
        out = []
        for body in bodies:
            cpu = time.process_time() + children_cpu_s()
            started = time.perf_counter()
            response: Any = await asyncio.wait_for(router.acompletion(**body), _TIMEOUT_S)
            wall = time.perf_counter() - started
            info = route_of(response) or {}
            cpu = time.process_time() + children_cpu_s() - cpu
            out.append({"wall_s": wall, "cpu_s": cpu, "route": info.get("route")})
        return out

    return run(requests())


def _proxy(sim: SimProcess, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    config = proxy_config("sim-large", sim.base_url)
    out = []
    with ProxyProcess(config, env={"RLM_ROUTER_TRACES_FILE": os.devnull}) as proxy:
        headers = {"Authorization": f"Bearer {MASTER_KEY}"}
        url = f"{proxy.base_url}/v1/chat/completions"
        with httpx.Client(headers=headers, timeout=_TIMEOUT_S) as client:
            for body in bodies:
                cpu = proxy_cpu_s(proxy.pid)
                started = time.perf_counter()
                reply = client.post(url, json=body)
                wall = time.perf_counter() - started
                cpu = proxy_cpu_s(proxy.pid) - cpu
                if reply.status_code != 200:
                    raise RuntimeError(f"HTTP {reply.status_code}: {reply.text[:300]}")
                route = reply.headers.get("x-rlm-router-route")
                out.append({"wall_s": wall, "cpu_s": cpu, "route": route})
    return out


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    walls = sorted(r["wall_s"] for r in rows)
    return {
        "n": len(rows),
        "routes": sorted({str(r["route"]) for r in rows}),
        "wall_p50_s": statistics.median(walls),
        "wall_p90_s": walls[min(len(walls) - 1, int(0.9 * len(walls)))],
        "cpu_p50_s": statistics.median(r["cpu_s"] for r in rows),
    }


def run(n_requests: int, tokens: int) -> dict[str, Any]:
    import uvloop

    bodies = [_body(tokens, seed) for seed in range(n_requests + 1)]
    results: dict[str, Any] = {}
    with SimProcess(time_scale=0.0) as sim, tempfile.TemporaryDirectory() as tmp:
        policy = policy_for("sim-large", sim.base_url, Path(tmp))
        os.environ.setdefault(KEY_ENV, "sk-sim")
        runs: dict[str, Callable[[], list[dict[str, Any]]]] = {
            MODES[0]: lambda: _library(asyncio.run, policy, bodies),
            MODES[1]: lambda: _library(uvloop.run, policy, bodies),
            MODES[2]: lambda: _proxy(sim, bodies),
        }
        for mode, measure in runs.items():
            rows = measure()[1:]  # the first request warms the process up
            if any(row["route"] != "rlm" for row in rows):
                routes = sorted({str(row["route"]) for row in rows})
                raise SystemExit(
                    f"rlm_route_bench: {mode} routed {routes}, not rlm: use more --tokens"
                )
            results[mode] = {**_summary(rows), "requests": rows}
    reference = results[MODES[0]]["wall_p50_s"]
    for summary in results.values():
        summary["wall_p50_vs_reference"] = summary["wall_p50_s"] / reference
    return {
        "benchmark": "rlm_route_bench",
        "tokens": tokens,
        "requests_per_mode": n_requests,
        "load_average_1m": os.getloadavg()[0],
        "modes": results,
    }


def table(result: dict[str, Any]) -> str:
    header = f"{'mode':<18} {'n':>3} {'wall p50':>9} {'wall p90':>9} {'cpu p50':>8} {'vs lib':>7}"
    lines = [f"RLM route, OOLONG {result['tokens']:,} tokens, simulator at time 0", header]
    lines.append("-" * len(header))
    for mode, s in result["modes"].items():
        lines.append(
            f"{mode:<18} {s['n']:>3} {s['wall_p50_s']:>8.3f}s {s['wall_p90_s']:>8.3f}s "
            f"{s['cpu_p50_s']:>7.3f}s {s['wall_p50_vs_reference']:>6.2f}x"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.rlm_route_bench", description=__doc__
    )
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=32_000)
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args(argv)
    result = run(args.requests, args.tokens)
    print(table(result))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "rlm_route_bench.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
