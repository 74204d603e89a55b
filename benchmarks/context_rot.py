"""Context rot of a real small model next to the simulator's curve.

``python -m benchmarks.context_rot [--lengths 1000,2000,4000,8000,16000] [--seeds 1]
[--families niah,oolong] [--json out.json]`` answers S-NIAH and OOLONG tasks directly (one
call, the whole context in the prompt) with the real model of ``sim.local_model`` (through
litellm, on loopback) and with the simulated direct models ``sim-large`` and ``sim-small``
(their reader in-process), and prints the mean score per length. The rot point of a family is
the first length whose mean falls below half of the shortest length's.

Needs the realmodel extra. CPU-bound: prompt processing is ~70 tokens/s on an idle 2-core
machine and ~10 tokens/s at load 10, so the default sweep (31K prompt tokens per family and
seed) takes ~15 minutes idle and over an hour loaded. The JSON file is rewritten after every
length, so a sweep cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any

from rlm_router.sim.calibrate import direct_score
from rlm_router.sim.local_model import MODEL_NAME, LocalModelServer
from rlm_router.sim.models import SIM_MODELS
from rlm_router.sim.tasks import generate

FAMILIES = ("niah", "oolong")
SIM_CURVES = ("sim-large", "sim-small")


async def _real_call(
    server: LocalModelServer, family: str, tokens: int, seed: int, timeout_s: float
) -> dict[str, Any]:
    """One direct call; past ``timeout_s`` it counts as not answered (``timed_out``)."""
    from rlm_router.rlm_core.litellm_api import acompletion

    task = generate(family, n_tokens=tokens, seed=seed)
    started = time.perf_counter()
    try:
        response = await asyncio.wait_for(
            acompletion(
                model=f"openai/{MODEL_NAME}",
                api_base=server.base_url,
                api_key="sk-local",
                messages=task.messages(),
                max_tokens=64,
                timeout=timeout_s + 60,
            ),
            timeout_s,
        )
    except TimeoutError:
        return {"score": None, "s": timeout_s, "prompt_tokens": None, "reply": "(timed out)"}
    reply = response.choices[0].message.content or ""
    return {
        "score": float(task.score(reply)),
        "s": time.perf_counter() - started,
        "prompt_tokens": response.usage.prompt_tokens,
        "reply": reply[:80],
    }


def rot_point(lengths: Sequence[int], means: Sequence[float | None]) -> int | None:
    """The first length whose mean is below half the first length's mean (lengths not
    measured, None, are skipped)."""
    first = means[0] if means else None
    for length, mean in zip(lengths, means, strict=True):
        if first and mean is not None and mean < first / 2:
            return length
    return None


def _summary(result: dict[str, Any]) -> None:
    rows = result["rows"]
    lengths = [r["tokens"] for r in rows]
    result["rot_point"] = {
        f"{source}_{family}": rot_point(lengths, [r[f"{source}_{family}"] for r in rows])
        for family in result["families"]
        for source in ("real", *SIM_CURVES)
        if rows
    }


def _write(path: str, result: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)


async def run(
    lengths: Sequence[int],
    seeds: int,
    families: Sequence[str],
    out: str | None,
    query_timeout_s: float = 1800.0,
) -> dict[str, Any]:
    server = LocalModelServer().start()
    result: dict[str, Any] = {
        "model": MODEL_NAME,
        "threads": server.threads,
        "seeds": seeds,
        "families": list(families),
        "query_timeout_s": query_timeout_s,
        "load_avg_start": round(os.getloadavg()[0], 1),
        "rows": [],
    }
    wall, cpu = time.perf_counter(), time.process_time()
    timed_out: set[str] = set()  # a family past its bound at one length skips the longer ones
    try:
        for tokens in lengths:
            row: dict[str, Any] = {"tokens": tokens}
            for family in families:
                calls = []
                for s in range(seeds if family not in timed_out else 0):
                    calls.append(await _real_call(server, family, tokens, s, query_timeout_s))
                    if calls[-1]["score"] is None:
                        timed_out.add(family)
                        break
                scores = [c["score"] for c in calls if c["score"] is not None]
                done = bool(calls) and len(scores) == len(calls)
                row[f"real_{family}"] = round(statistics.mean(scores), 3) if done else None
                row[f"real_{family}_s"] = (
                    round(statistics.mean(c["s"] for c in calls), 1) if calls else None
                )
                row[f"real_{family}_prompt_tokens"] = calls[0]["prompt_tokens"] if calls else None
                row[f"real_{family}_replies"] = [c["reply"] for c in calls]
                for name in SIM_CURVES:
                    sim = [
                        direct_score(SIM_MODELS[name], family, tokens, s, None)
                        for s in range(seeds)
                    ]
                    row[f"{name}_{family}"] = round(statistics.mean(sim), 3)
            row["load_avg"] = round(os.getloadavg()[0], 1)
            result["rows"].append(row)
            result["wall_s"] = round(time.perf_counter() - wall, 1)
            _summary(result)
            print(json.dumps(row), flush=True)
            if out:
                _write(out, result)
    finally:
        server.stop()
    # The model runs in this process's threads (xllamacpp), so process CPU is the model's.
    result["cpu_s"] = round(time.process_time() - cpu, 1)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lengths", default="1000,2000,4000,8000,16000")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--json")
    parser.add_argument(
        "--query-timeout-s",
        type=float,
        default=1800.0,
        help="bound on one real call; past it the length counts as not answered (None) and "
        "the family's longer lengths are skipped",
    )
    args = parser.parse_args(argv)
    lengths = [int(x) for x in args.lengths.split(",")]
    families = [f for f in args.families.split(",") if f]
    result = asyncio.run(run(lengths, args.seeds, families, args.json, args.query_timeout_s))
    header = ["tokens"] + [
        f"{source} {family}" for family in families for source in ("real", *SIM_CURVES)
    ]
    print("| " + " | ".join([*header, "real s/query"]) + " |")
    print("|" + "---|" * (len(header) + 1))
    for r in result["rows"]:
        cells = [f"{r['tokens']:,}"] + [
            str(r[f"{source.replace(' ', '_')}_{family}"])
            for family in families
            for source in ("real", *SIM_CURVES)
        ]
        seconds = "/".join(str(r[f"real_{family}_s"]) for family in families)
        print("| " + " | ".join([*cells, seconds]) + " |")
    print(f"rot points (mean < half of the shortest length's): {result['rot_point']}")
    print(f"threads {result['threads']}, wall {result['wall_s']} s, model CPU {result['cpu_s']} s")
    if args.json:
        _write(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
