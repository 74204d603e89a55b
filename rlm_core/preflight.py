"""Pre-flight checks of model calls: window and worst-case cost, before anything is sent.

A sub-call's input is estimated with the router's token estimate (``rlm_core.tokens``), checked
against the sub-model's input window, and its worst case (the input at the model's price plus
``max_tokens`` of output, which is sent with the call) is reserved against the tree's token
and USD budgets; a batch is reserved as a whole. What does not fit is refused with the
numbers, so the model can re-plan, and nothing is spent on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import rlm_router.rlm_core.litellm_api as litellm_api
from rlm_router.rlm_core.budget import Ledger, Reservation
from rlm_router.rlm_core.tokens import estimate_tokens

# Chat formatting around one user message, as the router counts it: 3 for the message and 3
# for the reply primer, plus a margin for the estimate's sampling error on long prompts.
_MESSAGE_TOKENS = 6
_ESTIMATE_MARGIN = 1.08
# Every token is at least one UTF-8 byte and a character is at most four, so a prompt of n
# characters is at most 4n tokens: prompts far below the window need no estimate.
_MAX_TOKENS_PER_CHAR = 4


@dataclass
class Plan:
    """What may be sent of a batch: per-prompt refusals and per-prompt reservations."""

    refused: dict[int, str] = field(default_factory=dict)
    shares: dict[int, Reservation] = field(default_factory=dict)


class Preflight:
    """The pre-flight checks of one tree (windows are looked up once per model)."""

    def __init__(self, ledger: Ledger, *, max_output_tokens: int) -> None:
        self.ledger = ledger
        self.max_output_tokens = max_output_tokens
        self._windows: dict[str, int | None] = {}

    def window(self, model: str) -> int | None:
        if model not in self._windows:
            self._windows[model] = litellm_api.context_window(model)
        return self._windows[model]

    def plan(self, model: str, prompts: list[str], what: str) -> Plan:
        """Check ``prompts`` for one model; raises BudgetRefused when the whole batch does
        not fit the budgets (nothing is reserved then)."""
        plan = Plan()
        window = self.window(model)
        budgeted = self.ledger.budgeted()
        estimates: dict[int, int] = {}
        for index, prompt in enumerate(prompts):
            bound = _MAX_TOKENS_PER_CHAR * len(prompt) + _MESSAGE_TOKENS
            if not budgeted and (window is None or bound <= window):
                continue
            tokens = int(estimate_tokens(prompt) * _ESTIMATE_MARGIN) + _MESSAGE_TOKENS
            if window is not None and tokens > window:
                plan.refused[index] = (
                    f"the prompt is ~{tokens:,} tokens ({len(prompt):,} characters), more "
                    f"than {model}'s {window:,}-token input window; nothing was sent. Split "
                    "it into smaller chunks"
                )
            else:
                estimates[index] = tokens
        if not budgeted or not estimates:
            return plan
        out = self.max_output_tokens
        tokens_in = sum(estimates.values())
        cost = litellm_api.token_cost(model, tokens_in, out * len(estimates))
        count = len(estimates)
        label = f"{what} of {count} prompt{'s' if count > 1 else ''}"
        label += f" (~{tokens_in:,} input tokens + {count} x {out:,} output tokens)"
        self.ledger.reserve(tokens_in + out * count, cost, label)
        for index, tokens in estimates.items():
            share = tokens / tokens_in if tokens_in else 1 / count
            plan.shares[index] = Reservation(tokens + out, cost * share)
        return plan

    def reserve_turn(self, model: str, messages: list[dict[str, str]]) -> Reservation | None:
        """Reserve a root turn's input (its output is not capped); None without budgets."""
        if not self.ledger.budgeted():
            return None
        tokens = _MESSAGE_TOKENS * len(messages)
        tokens += sum(int(estimate_tokens(m["content"]) * _ESTIMATE_MARGIN) for m in messages)
        cost = litellm_api.token_cost(model, tokens, 0)
        return self.ledger.reserve(tokens, cost, f"the next turn of {model} (~{tokens:,} tokens)")
