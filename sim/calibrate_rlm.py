"""Measure each root persona through the real engine (CALIBRATION.md, "Root personas").

``python -m sim.calibrate_rlm [--seeds 12] [--json out.json]`` runs OOLONG (131K) and
OOLONG-Pairs (32K) through ``rlm_core.RLMEngine`` against the simulated provider on loopback
(root ``sim-<persona>``, sub-calls ``sim-mini``, no modelled latency) and prints, per persona,
the mean score (F1 for pairs), sub-calls per query and cost per query next to the published
RLM figures of the paper's Table 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from collections.abc import Sequence
from typing import Any

from rlm_router.rlm_core import ModelSpec, RLMEngine
from rlm_router.sim.models import register_sim_models
from rlm_router.sim.server import SimConfig, SimServer
from rlm_router.sim.tasks import generate

ROOTS = {"competent": "sim-large", "frontier": "sim-frontier", "coder": "sim-coder"}
# Pairs queries are cheap and their failures all-or-nothing, so they get twice the seeds.
TASKS = (("oolong", 131_000, 1), ("oolong_pairs", 32_000, 2))
# Paper Table 1 (RLM rows): OOLONG 131K score, OOLONG-Pairs 32K F1 (x100); sub-calls/query.
PUBLISHED: dict[str, dict[str, Any]] = {
    "frontier": {"oolong": 56.5, "oolong_pairs": 58.0, "sub_calls": "~10"},
    "coder": {"oolong": 48.0, "oolong_pairs": 23.1, "sub_calls": "hundreds to thousands"},
}


async def measure(persona: str, seeds: int, server: SimServer) -> dict[str, Any]:
    def spec(name: str) -> ModelSpec:
        return ModelSpec(model=f"openai/{name}", api_base=server.base_url, api_key="sk-sim")

    engine = RLMEngine(root=spec(ROOTS[persona]), sub=spec("sim-mini"), concurrency=16)
    out: dict[str, Any] = {"persona": persona}
    for family, tokens, weight in TASKS:
        scores, subs, costs = [], [], []
        for seed in range(seeds * weight):
            task = generate(family, n_tokens=tokens, seed=seed)
            result = await engine.acompletion(task.question, task.context)
            scores.append(task.score(result.answer or ""))
            subs.append(result.sub_calls)
            costs.append(result.cost_usd)
        out[family] = {
            "tokens": tokens,
            "seeds": seeds * weight,
            "score": round(100 * statistics.mean(scores), 1),
            "sub_calls_mean": round(statistics.mean(subs), 1),
            "sub_calls_range": [min(subs), max(subs)],
            "cost_per_query": round(statistics.mean(costs), 4),
        }
    return out


async def run(personas: Sequence[str], seeds: int) -> list[dict[str, Any]]:
    register_sim_models()
    async with SimServer(SimConfig(seed=0, time_scale=0.0)) as server:
        return [await measure(p, seeds, server) for p in personas]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--persona", action="append", choices=sorted(ROOTS))
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.persona or list(ROOTS), args.seeds))
    print("| persona | task | seeds | published | ours | sub-calls/query (range) | $/query |")
    print("|---|---|---|---|---|---|---|")
    for row in results:
        published = PUBLISHED.get(row["persona"], {})
        for family, _, _ in TASKS:
            cell = row[family]
            low, high = cell["sub_calls_range"]
            print(
                f"| {row['persona']} | {family} {cell['tokens'] // 1000}K | {cell['seeds']} | "
                f"{published.get(family, '-')} | {cell['score']} | "
                f"{cell['sub_calls_mean']} ({low}-{high}) | {cell['cost_per_query']} |"
            )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
