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
    # The root re-sent code it had already run on two turns in a row (a small model looping
    # under greedy decoding); the engine asked it once for its answer instead of a new turn.
    STUCK = "stuck"


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
    # Each sub-call is sent with this max_tokens, so its worst-case cost is known before it
    # is sent (pre-flight reservation against max_tokens / max_cost_usd).
    max_sub_call_output_tokens: int = 4096

    def __post_init__(self) -> None:
        for name in ("max_iterations", "max_depth", "max_sub_call_output_tokens"):
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


@dataclass(frozen=True)
class Reservation:
    """Worst-case spending set aside for calls in flight: tokens and USD."""

    tokens: int
    cost_usd: float


class BudgetRefused(Exception):
    """A reservation that does not fit what is left; the message has the numbers."""

    def __init__(self, message: str, reason: StopReason) -> None:
        super().__init__(message)
        self.reason = reason  # the budget that would be broken


class Ledger:
    """Shared spending and limits of one tree: budget, caller deadline, call concurrency."""

    def __init__(self, budget: Budget, *, concurrency: int, deadline: float | None) -> None:
        self.budget = budget
        self.usage = Usage()
        self.reserved = Reservation(0, 0.0)  # held by calls in flight
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

    def reserve(self, tokens: int, cost_usd: float, what: str) -> Reservation:
        """Set aside a worst case against the tree's token and USD budgets, or raise
        BudgetRefused saying what ``what`` needs and what is left."""
        b, u, held = self.budget, self.usage, self.reserved
        if b.max_tokens is not None:
            left = b.max_tokens - u.input_tokens - u.output_tokens - held.tokens
            if tokens > left:
                raise BudgetRefused(
                    f"{what} needs up to {tokens:,} tokens and the run has {max(left, 0):,} "
                    f"left of its {b.max_tokens:,}-token budget",
                    StopReason.MAX_TOKENS,
                )
        if b.max_cost_usd is not None:
            left_usd = b.max_cost_usd - u.cost_usd - held.cost_usd
            if cost_usd > left_usd:
                raise BudgetRefused(
                    f"{what} costs up to ${cost_usd:.6f} and the run has "
                    f"${max(left_usd, 0.0):.6f} left of its ${b.max_cost_usd:g} budget",
                    StopReason.MAX_COST,
                )
        self.reserved = Reservation(held.tokens + tokens, held.cost_usd + cost_usd)
        return Reservation(tokens, cost_usd)

    def release(self, reservation: Reservation) -> None:
        """Give back a reservation (the call's real spending is recorded by ``spend``)."""
        held = self.reserved
        self.reserved = Reservation(
            held.tokens - reservation.tokens, max(0.0, held.cost_usd - reservation.cost_usd)
        )

    def budgeted(self) -> bool:
        """Whether a token or USD budget is set (reservations are needed only then)."""
        return self.budget.max_tokens is not None or self.budget.max_cost_usd is not None

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
