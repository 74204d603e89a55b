"""Budgets shared by every node of one recursion tree, and the ledger that spends them."""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass


class StopReason(enum.Enum):
    """Why a run ended. Only FINAL means the model gave its final answer."""

    FINAL = "final"
    MAX_ITERATIONS = "max_iterations"
    MAX_SUB_CALLS = "max_sub_calls"
    MAX_TOKENS = "max_tokens"
    MAX_COST = "max_cost"
    TIMEOUT = "timeout"  # the budget's own wall time
    DEADLINE = "deadline"  # the caller's deadline
    PROVIDER_ERROR = "provider_error"
    SANDBOX_FAILURE = "sandbox_failure"  # the REPL worker kept breaking the frame protocol


@dataclass(frozen=True, kw_only=True)
class Budget:
    """Limits for one query, shared across the whole recursion tree. None = unlimited."""

    max_iterations: int = 30  # per node (the root loop and each child loop), as in the paper
    max_total_iterations: int | None = None  # over the whole tree
    max_depth: int = 2  # root is depth 0; rlm_query makes a child RLM while depth+1 < max_depth
    max_sub_calls: int | None = 1000
    max_tokens: int | None = None  # input + output, all calls
    max_cost_usd: float | None = None
    max_wall_s: float | None = 600.0

    def __post_init__(self) -> None:
        for name in ("max_iterations", "max_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"Budget.{name} must be >= 1")
        for name in (
            "max_total_iterations", "max_sub_calls", "max_tokens", "max_cost_usd", "max_wall_s"
        ):  # fmt: skip
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"Budget.{name} must be >= 0")


@dataclass
class Usage:
    """What a run spent (summed over the tree)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    sub_calls: int = 0
    iterations: int = 0


class Ledger:
    """Shared spending and limits of one tree: budget, caller deadline, call concurrency."""

    def __init__(self, budget: Budget, *, concurrency: int, deadline: float | None) -> None:
        self.budget = budget
        self.usage = Usage()
        self.started = time.monotonic()
        self.semaphore = asyncio.Semaphore(concurrency)
        ends = [deadline] if deadline is not None else []
        if budget.max_wall_s is not None:
            ends.append(self.started + budget.max_wall_s)
        self.ends_at = min(ends) if ends else None
        self.deadline_is_callers = deadline is not None and (
            budget.max_wall_s is None or deadline <= self.started + budget.max_wall_s
        )

    def remaining_s(self) -> float | None:
        return None if self.ends_at is None else self.ends_at - time.monotonic()

    def time_reason(self) -> StopReason:
        return StopReason.DEADLINE if self.deadline_is_callers else StopReason.TIMEOUT

    def spend(self, *, input_tokens: int, output_tokens: int, cost_usd: float) -> None:
        self.usage.input_tokens += input_tokens
        self.usage.output_tokens += output_tokens
        self.usage.cost_usd += cost_usd

    def exhausted(self) -> StopReason | None:
        """The first spending limit that is used up (checked between steps)."""
        b, u = self.budget, self.usage
        remaining = self.remaining_s()
        if remaining is not None and remaining <= 0:
            return self.time_reason()
        if b.max_tokens is not None and u.input_tokens + u.output_tokens >= b.max_tokens:
            return StopReason.MAX_TOKENS
        if b.max_cost_usd is not None and u.cost_usd >= b.max_cost_usd:
            return StopReason.MAX_COST
        return None

    def iterations_left(self) -> bool:
        cap = self.budget.max_total_iterations
        return cap is None or self.usage.iterations < cap

    def sub_calls_left(self) -> int | None:
        if self.budget.max_sub_calls is None:
            return None
        return max(0, self.budget.max_sub_calls - self.usage.sub_calls)
