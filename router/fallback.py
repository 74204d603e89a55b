"""The fallback rule: what to do after a route ended, as pure functions (no provider, no I/O).

::

    direct call ──(context window exceeded)──► RLM                        [llm_to_rlm]
    RLM run ─┬─ final answer ──────────────► answer
             ├─ deadline, policy "partial" ──► the partial answer          [partial_at_deadline]
             ├─ input fits the direct model ─► direct call                 [rlm_to_llm]
             │     └─ that call runs out of time at the deadline ──► the partial answer
             ├─ deadline ────────────────────► the partial answer
             ├─ out of budget with an answer ► the partial answer          [partial_at_budget]
             └─ otherwise ───────────────────► fail (EscalationFailed, with the reason)

``router.dispatch`` carries the actions out; tests/router/test_fallback.py walks the table.
"""

from __future__ import annotations

from typing import Literal

from rlm_router.rlm_core.errors import ContextWindowExceeded, ProviderTimeout
from rlm_router.router.errors import LatencyBudgetExceeded

OnDeadline = Literal["direct", "partial"]
AfterDirect = Literal["escalate", "raise"]
AfterRLM = Literal["answer", "partial", "budget_partial", "direct", "fail"]
AfterFallbackDirect = Literal["partial", "raise"]
DEADLINE_REASONS = frozenset({"timeout", "deadline", "max_time", "wall_time"})


def after_direct_error(error: BaseException) -> AfterDirect:
    """A failed direct call escalates to the RLM route only when the input did not fit."""
    return "escalate" if isinstance(error, ContextWindowExceeded) else "raise"


def after_rlm(
    *,
    answered: bool,
    deadline_hit: bool,
    fits: bool,
    on_deadline: OnDeadline,
    budget_partial: bool = False,
) -> AfterRLM:
    """What follows an RLM run: ``answered`` when it produced a final answer, ``deadline_hit``
    when the latency budget ended it, ``fits`` when the input fits the direct model's window
    (and the request did not come from the direct route already), ``budget_partial`` when a
    budget ended it (no error) with an answer in hand."""
    if answered:
        return "answer"
    if deadline_hit and on_deadline == "partial":
        return "partial"
    if fits:
        return "direct"
    if deadline_hit:
        return "partial"
    return "budget_partial" if budget_partial else "fail"


def after_fallback_direct_error(error: BaseException, *, deadline_hit: bool) -> AfterFallbackDirect:
    """The direct fallback of a deadline-ended RLM run failed: when it too ran out of time,
    answer with the partial answer; any other error is the request's error."""
    out_of_time = isinstance(error, LatencyBudgetExceeded | ProviderTimeout)
    return "partial" if deadline_hit and out_of_time else "raise"


def deadline_hit(stopped: str, *, engine_deadline: float | None, now: float) -> bool:
    """Whether the latency budget ended an RLM run: it said so, or its deadline has passed."""
    return stopped in DEADLINE_REASONS or (engine_deadline is not None and now >= engine_deadline)
