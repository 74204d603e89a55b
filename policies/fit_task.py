"""Fitting the task model (training only; needs scikit-learn and scipy).

``python -m policies.fit_task [--out policies/task_model.json] [--seed 0]``

Rows are the corpus instructions (``policies.corpus.instructions``), each in a random neutral
framing and, for a third of them, without punctuation and lower-cased. A multinomial logistic
regression is fitted on binary n-gram presence; n-grams whose weights are all small are
dropped from the artifact. Accuracy is reported on held-out *templates* (every fifth template
of each language and kind is left out of a first fit), then the model is refitted on all.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from rlm_router.policies.corpus.instructions import fill
from rlm_router.policies.corpus.templates import TEMPLATES
from rlm_router.policies.task_model import DEFAULT_PATH, KINDS, MAX_CHARS, ORDERS, TaskModel, grams

PRUNE = 0.02
C = 16.0


def rows(seed: int, *, holdout: bool | None = None, per_template: int = 8) -> list[tuple[str, int]]:
    """(text, kind index); ``holdout`` True/False keeps only held-out/kept templates."""
    rng = random.Random(seed)
    out: list[tuple[str, int]] = []
    for lang, kinds in TEMPLATES.items():
        for kind, joined in kinds.items():
            for index, template in enumerate(joined.split("|")):
                held = index % 5 == 4
                if holdout is not None and held != holdout:
                    continue
                for _ in range(per_template if "{" in template else 2):
                    out.append((fill(template, lang, rng), KINDS.index(kind)))
    return out


def fit(data: Sequence[tuple[str, int]], *, version: str, c: float = C) -> TaskModel:
    import numpy as np
    from scipy.sparse import csr_matrix  # type: ignore[import-untyped]
    from sklearn.linear_model import LogisticRegression

    vocab: dict[str, int] = {}
    indptr, indices = [0], []
    for text, _ in data:
        for gram in grams(text, ORDERS, MAX_CHARS):
            indices.append(vocab.setdefault(gram, len(vocab)))
        indptr.append(len(indices))
    x = csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(data), len(vocab)))
    y = np.array([label for _, label in data])
    model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
    model.fit(x, y)
    coef = model.coef_.T  # (n_grams, n_kinds)
    weights = {
        gram: tuple(float(v) for v in coef[i])
        for gram, i in vocab.items()
        if float(np.abs(coef[i]).max()) >= PRUNE
    }
    return TaskModel(
        version=version,
        kinds=KINDS,
        orders=ORDERS,
        max_chars=MAX_CHARS,
        bias=tuple(float(b) for b in model.intercept_),
        weights=weights,
        training={},
    )


def accuracy(model: TaskModel, data: Sequence[tuple[str, int]]) -> float:
    hits = 0
    for text, label in data:
        p = model.predict(text)
        hits += int(max(p, key=p.__getitem__) == KINDS[label])
    return round(hits / max(1, len(data)), 4)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rlm_router.policies.fit_task", description=__doc__
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    version = f"task-{date.today().isoformat()}-s{args.seed}"
    first = fit(rows(args.seed, holdout=False), version=version)
    held = accuracy(first, rows(args.seed + 1, holdout=True))
    data = rows(args.seed)
    model = fit(data, version=version)
    training = {
        "built_by": "python -m rlm_router.policies.fit_task",
        "doc": "policies/TASK_MODEL.md",
        "n_rows": len(data),
        "seed": args.seed,
        "languages": sorted(TEMPLATES),
        "held_out_template_accuracy": held,
        "train_accuracy": accuracy(model, data),
        "n_grams": len(model.weights),
    }
    model = TaskModel(**{**model.__dict__, "training": training})
    model.dump(args.out)
    print(f"wrote {args.out} ({version}, {training})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
