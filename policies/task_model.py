"""What the instruction asks for: a character n-gram linear model over the instruction text.

Why this model: the task kind must be read in many wordings and at least eight languages
(en, fr, de, es, pt, it, zh, ja) within a decision budget of ~0.1 ms on short requests.
Character 2-, 3- and 4-grams of the lower-cased text carry word stems across inflections
("compte", "comptez", "Zähle", "zählen") and work without a tokenizer for Chinese and
Japanese; a linear model over them costs one dict lookup per n-gram (~250 of them for a
160-character instruction, ~40 us). A small multilingual embedding model (e.g. MiniLM shipped
in a PyPI package) is English-centric in its small sizes and costs milliseconds per call,
which is more than the whole decision budget at 1K tokens; it was not needed here.

Artifact (JSON, never pickle)::

    {"format": "rlm-router/task-model", "format_version": 1, "version": "...",
     "kinds": ["chat", "lookup", "aggregate", "pairwise", "multihop"],
     "orders": [3, 4], "max_chars": 240, "bias": [...], "weights": {"gram": [...], ...},
     "training": {...}}

``predict(text)`` returns the probability of each kind (softmax of bias + sum of weights of the
n-grams present, each counted once). The model is fitted by ``policies.fit_task`` on the
corpus of ``policies.corpus`` (documented in ``policies/TASK_MODEL.md``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from rlm_router.policies.classifier import ArtifactError

FORMAT = "rlm-router/task-model"
FORMAT_VERSION = 1
DEFAULT_PATH = Path(__file__).with_name("task_model.json")
KINDS = ("chat", "lookup", "aggregate", "pairwise", "multihop")
ORDERS = (2, 3, 4)
MAX_CHARS = 240  # head and tail of longer instructions: the ask sits at one end


def grams(text: str, orders: Sequence[int] = ORDERS, max_chars: int = MAX_CHARS) -> set[str]:
    """The distinct character n-grams of ``text`` (lower-cased, whitespace collapsed)."""
    if len(text) > max_chars:
        half = max_chars // 2
        text = f"{text[:half]} {text[-half:]}"
    padded = f" {' '.join(text.lower().split())} "
    length = len(padded)
    return {padded[i : i + n] for n in orders for i in range(length - n + 1)}


@dataclass(frozen=True)
class TaskModel:
    """Softmax-linear model over character n-grams (see the module docstring)."""

    version: str
    kinds: tuple[str, ...]
    orders: tuple[int, ...]
    max_chars: int
    bias: tuple[float, ...]
    weights: dict[str, tuple[float, ...]]
    training: dict[str, Any]

    def predict(self, text: str) -> dict[str, float]:
        """Probability of each kind for instruction ``text``."""
        hits = list(filter(None, map(self.weights.get, grams(text, self.orders, self.max_chars))))
        scores = [sum(column) for column in zip(self.bias, *hits, strict=True)]
        top = max(scores)
        exps = [math.exp(s - top) for s in scores]
        total = sum(exps)
        return {kind: e / total for kind, e in zip(self.kinds, exps, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "version": self.version,
            "kinds": list(self.kinds),
            "orders": list(self.orders),
            "max_chars": self.max_chars,
            "bias": [round(b, 4) for b in self.bias],
            "weights": {g: [round(x, 3) for x in w] for g, w in sorted(self.weights.items())},
            "training": self.training,
        }

    def dump(self, path: str | Path) -> None:
        text = json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))
        Path(path).write_text(text + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path = DEFAULT_PATH) -> TaskModel:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"cannot read task model {path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ArtifactError(f"task model {path}: 'format' must be {FORMAT!r}")
        if data.get("format_version") != FORMAT_VERSION:
            raise ArtifactError(f"task model {path}: unsupported format_version")
        kinds = tuple(data.get("kinds", ()))
        if kinds != KINDS:
            raise ArtifactError(f"task model {path}: kinds must be {list(KINDS)}")
        weights = data.get("weights")
        bias = data.get("bias")
        if not isinstance(weights, dict) or not isinstance(bias, list) or len(bias) != len(kinds):
            raise ArtifactError(f"task model {path}: 'bias' and 'weights' are malformed")
        table: dict[str, tuple[float, ...]] = {}
        for gram, w in weights.items():
            if not isinstance(w, list) or len(w) != len(kinds):
                raise ArtifactError(f"task model {path}: weights[{gram!r}] is malformed")
            table[gram] = tuple(float(x) for x in w)
        return cls(
            version=str(data.get("version", "")),
            kinds=kinds,
            orders=tuple(int(n) for n in data.get("orders", ORDERS)),
            max_chars=int(data.get("max_chars", MAX_CHARS)),
            bias=tuple(float(b) for b in bias),
            weights=table,
            training=dict(data.get("training", {})),
        )


@cache
def default_task_model() -> TaskModel:
    """The shipped task model (loaded once)."""
    return TaskModel.load(DEFAULT_PATH)
