"""A 10M-token OOLONG request through ``Router.acompletion`` on the shipped policy, per root
persona (``python -m benchmarks.scale_bench [--tokens 10000000] [--json out.json]``).

The shipped policy (``policies/default.yaml``) is used as it is, except that its three models
point at the simulated provider on loopback and the RLM root is ``sim-<persona>``. Sub-calls
and root turns are counted by the provider itself (``/sim/stats``), so the numbers are what a
provider would bill. Prints one row per persona and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from rlm_router.sim import SimConfig, SimServer, register_sim_models
from rlm_router.sim.tasks import generate

ROOTS = {"competent": "sim-large", "frontier": "sim-frontier", "coder": "sim-coder"}
_KEY_ENV = "RLM_SCALE_BENCH_KEY"


def _policy_for(root: str, server: SimServer, directory: Path) -> Path:
    from rlm_router.policies.loader import DEFAULT_POLICY_PATH

    policy = yaml.safe_load(Path(DEFAULT_POLICY_PATH).read_text())
    for name in ("direct", "rlm_root", "rlm_sub"):
        policy["models"][name]["api_base"] = server.base_url
        policy["models"][name]["api_key_env"] = _KEY_ENV
    policy["models"]["rlm_root"]["model"] = f"openai/{root}"
    path = directory / f"policy-{root}.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


async def _stats(server: SimServer) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        stats: dict[str, Any] = (await client.get(f"{server.url}/sim/stats")).json()
        return stats


async def run(tokens: int, personas: Sequence[str], seeds: Sequence[int]) -> list[dict[str, Any]]:
    from rlm_router.router import Router

    register_sim_models()
    os.environ.setdefault(_KEY_ENV, "sk-sim")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed, persona in ((s, p) for s in seeds for p in personas):
            task = generate("oolong", n_tokens=tokens, seed=seed)
            async with SimServer(SimConfig(seed=0, time_scale=0.0)) as server:
                router = Router.from_config(_policy_for(ROOTS[persona], server, Path(tmp)))
                started, cpu = time.perf_counter(), time.process_time()
                error = None
                try:
                    response = await router.acompletion(model="auto", messages=task.messages())
                    choices = getattr(response, "choices", None) or []  # not streamed
                    text = (choices[0].message.content or "") if choices else ""
                    hidden = getattr(response, "_hidden_params", {})
                    info = hidden.get("rlm_router", {})
                    cost = float(hidden.get("response_cost") or 0.0)
                except Exception as exc:  # a failed request is a result here, not a crash
                    text, info, cost, error = "", {}, 0.0, f"{type(exc).__name__}: {exc}"[:300]
                wall = time.perf_counter() - started
                stats = await _stats(server)
            requests = stats.get("requests", {})
            rows.append(
                {
                    "persona": persona,
                    "seed": seed,
                    "tokens": tokens,
                    "question": task.question[:120],
                    "answer": text[:80],
                    "score": round(task.score(text), 3),
                    "route": info.get("route"),
                    "degraded": info.get("degraded"),
                    "cost_usd": round(cost, 3),
                    "sub_calls": int(requests.get("sim-mini", 0)),
                    "root_turns": int(requests.get(ROOTS[persona], 0)),
                    "wall_s": round(wall, 1),
                    "host_cpu_s": round(time.process_time() - cpu, 1),
                    "error": error,
                }
            )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10_000_000)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--persona", action="append", choices=sorted(ROOTS))
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    rows = asyncio.run(run(args.tokens, args.persona or list(ROOTS), range(args.seeds)))
    columns = ("persona", "seed", "score", "route", "degraded", "cost_usd", "sub_calls",
               "root_turns", "wall_s", "host_cpu_s", "error")  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
