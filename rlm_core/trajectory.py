"""What happened during a run: every node, model call, iteration and REPL execution."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class ModelCall:
    """One provider call (root turn or sub-call), as accounted."""

    node_id: int
    depth: int
    role: str  # root | sub
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    started_s: float  # time.time()
    duration_s: float
    attempts: int = 1
    error_type: str | None = None


@dataclass
class Execution:
    """One ```repl block run in the worker."""

    code: str
    output: str  # as shown to the model (truncated)
    error: str | None
    duration_s: float
    subcall_s: float
    truncated: bool
    limit: str | None
    sub_calls: int = 0


@dataclass
class Iteration:
    node_id: int
    depth: int
    index: int
    response: str
    executions: list[Execution] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    model_s: float = 0.0
    repl_s: float = 0.0
    duration_s: float = 0.0
    feedback: str | None = None  # what the engine told the model about malformed output


@dataclass
class Node:
    node_id: int
    parent_id: int | None
    depth: int
    query: str
    context_chars: int
    sandbox: dict[str, object] = field(default_factory=dict)
    answer: str | None = None
    stopped_reason: str | None = None


@dataclass
class Trajectory:
    """The full record of one run (all recursion nodes, in order of occurrence)."""

    nodes: list[Node] = field(default_factory=list)
    iterations: list[Iteration] = field(default_factory=list)
    calls: list[ModelCall] = field(default_factory=list)

    def to_jsonl(self) -> str:
        """One JSON object per line: nodes, then iterations, then model calls."""
        lines = [json.dumps({"type": "node", **asdict(n)}) for n in self.nodes]
        lines += [json.dumps({"type": "iteration", **asdict(i)}) for i in self.iterations]
        lines += [json.dumps({"type": "model_call", **asdict(c)}) for c in self.calls]
        return "\n".join(lines) + ("\n" if lines else "")
