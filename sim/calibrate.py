"""Measure the simulated models' direct accuracy per family and length (CALIBRATION.md).

``python -m sim.calibrate [--model sim-large] [--seeds 20]`` prints a table of
mean scores. It calls the model's reader in-process (what the server would answer, without
HTTP), so the table is cheap to regenerate after changing a curve parameter.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence

from rlm_router.sim.models import SIM_MODELS, SimModel
from rlm_router.sim.reader import Reading, answer_direct
from rlm_router.sim.recall import SPARSE_LOAD_DIVISOR, recall
from rlm_router.sim.server import prompt_token_count
from rlm_router.sim.tasks import OOLONG_KINDS, generate

LENGTHS = (8_000, 32_000, 64_000, 131_000, 262_000)
COLUMNS: tuple[tuple[str, str | None], ...] = (
    *(("oolong", kind) for kind in OOLONG_KINDS),
    ("oolong_pairs", None),
    ("niah", None),
)


def direct_score(
    model: SimModel, family: str, n_tokens: int, seed: int, kind: str | None, *, sim_seed: int = 0
) -> float:
    """The score of ``model`` answering one task directly."""
    task = generate(family, n_tokens=n_tokens, seed=seed, kind=kind)
    messages = [(m["role"], m["content"]) for m in task.messages()]
    reading = Reading(model, sim_seed, prompt_token_count(messages))
    return task.score(answer_direct(reading, messages))


def table(model: SimModel, seeds: int, lengths: Sequence[int] = LENGTHS) -> list[list[str]]:
    header = ["tokens", "r dense", "r sparse"]
    header += [f"{fam}:{kind}" if kind else fam for fam, kind in COLUMNS] + ["oolong mean"]
    rows = [header]
    for n in lengths:
        row = [f"{n:,}", f"{recall(model, n):.2f}", f"{recall(model, n / SPARSE_LOAD_DIVISOR):.2f}"]
        oolong = []
        for family, kind in COLUMNS:
            mean = statistics.mean(direct_score(model, family, n, s, kind) for s in range(seeds))
            if family == "oolong":
                oolong.append(mean)
            row.append(f"{mean:.2f}")
        row.append(f"{statistics.mean(oolong):.2f}")
        rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sim-large", choices=sorted(SIM_MODELS))
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args(argv)
    rows = table(SIM_MODELS[args.model], args.seeds)
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows[1:]:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
