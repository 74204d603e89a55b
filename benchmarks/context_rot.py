"""Context rot of a real small model next to the simulator's curve.

``python -m benchmarks.context_rot [--lengths 1000,2000,4000,8000,12000] [--seeds 3]
[--json out.json]`` answers S-NIAH and OOLONG tasks directly (one call, the whole context in
the prompt) with the real model of ``sim.local_model`` (through litellm, on loopback) and with
the simulated ``sim-large`` (its reader in-process), and prints the mean score per length.
The rot point is the first length whose OOLONG mean falls below half of the shortest length's.
Needs the realmodel extra; CPU-bound (2 threads): an 8K prompt takes 1-2 minutes on an idle
2-core machine, far longer on a loaded one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

from rlm_router.sim.calibrate import direct_score
from rlm_router.sim.local_model import MODEL_NAME, LocalModelServer
from rlm_router.sim.models import SIM_MODELS
from rlm_router.sim.tasks import generate

FAMILIES = ("niah", "oolong")


async def _real_score(server: LocalModelServer, family: str, tokens: int, seed: int) -> float:
    from rlm_router.rlm_core.litellm_api import acompletion

    task = generate(family, n_tokens=tokens, seed=seed)
    response = await acompletion(
        model=f"openai/{MODEL_NAME}",
        api_base=server.base_url,
        api_key="sk-local",
        messages=task.messages(),
        max_tokens=64,
        timeout=1800,
    )
    return float(task.score(response.choices[0].message.content or ""))


def rot_point(lengths: Sequence[int], means: Sequence[float]) -> int | None:
    """The first length whose mean is below half the first length's mean."""
    for length, mean in zip(lengths, means, strict=True):
        if means[0] > 0 and mean < means[0] / 2:
            return length
    return None


async def run(lengths: Sequence[int], seeds: int) -> dict[str, Any]:
    server = LocalModelServer().start()
    rows = []
    try:
        for tokens in lengths:
            row: dict[str, Any] = {"tokens": tokens}
            for family in FAMILIES:
                started = time.perf_counter()
                real = [await _real_score(server, family, tokens, s) for s in range(seeds)]
                row[f"real_{family}"] = round(statistics.mean(real), 3)
                row[f"real_{family}_s"] = round((time.perf_counter() - started) / seeds, 1)
                sim = [
                    direct_score(SIM_MODELS["sim-large"], family, tokens, s, None)
                    for s in range(seeds)
                ]
                row[f"sim_{family}"] = round(statistics.mean(sim), 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        server.stop()
    return {
        "model": MODEL_NAME,
        "seeds": seeds,
        "rows": rows,
        "real_rot_point": rot_point(lengths, [r["real_oolong"] for r in rows]),
        "sim_rot_point": rot_point(lengths, [r["sim_oolong"] for r in rows]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="1000,2000,4000,8000,12000")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    lengths = [int(x) for x in args.lengths.split(",")]
    result = asyncio.run(run(lengths, args.seeds))
    print("| tokens | real niah | sim niah | real oolong | sim oolong | real s/query |")
    print("|---|---|---|---|---|---|")
    for r in result["rows"]:
        print(
            f"| {r['tokens']:,} | {r['real_niah']} | {r['sim_niah']} | {r['real_oolong']} | "
            f"{r['sim_oolong']} | {r['real_oolong_s']} |"
        )
    print(f"rot point (OOLONG < half of shortest): real {result['real_rot_point']}, "
          f"sim {result['sim_rot_point']}")  # fmt: skip
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
