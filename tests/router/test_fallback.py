"""The fallback rule on its own: every row of the table in router/fallback.py, no provider."""

from __future__ import annotations

import pytest

from rlm_router.rlm_core.errors import (
    ContextWindowExceeded,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from rlm_router.router.errors import EscalationFailed, LatencyBudgetExceeded
from rlm_router.router.fallback import (
    after_direct_error,
    after_fallback_direct_error,
    after_rlm,
    deadline_hit,
)


def test_only_a_context_window_error_escalates_a_direct_call() -> None:
    assert after_direct_error(ContextWindowExceeded("too long")) == "escalate"
    for error in (RateLimited("429"), ProviderUnavailable("503"), ProviderTimeout("slow")):
        assert after_direct_error(error) == "raise"
    assert after_direct_error(ValueError("bug")) == "raise"


@pytest.mark.parametrize(
    ("answered", "hit", "fits", "on_deadline", "action"),
    [
        # A final answer is the answer, whatever else is true.
        (True, True, True, "partial", "answer"),
        (True, False, False, "direct", "answer"),
        # The budget ran out: the policy says partial, so partial (even when the input fits).
        (False, True, True, "partial", "partial"),
        (False, True, False, "partial", "partial"),
        # The budget ran out, policy "direct": the direct route when the input fits ...
        (False, True, True, "direct", "direct"),
        # ... else the partial answer (there is nothing else in time).
        (False, True, False, "direct", "partial"),
        # No deadline: failure or exhaustion falls back to direct when the input fits ...
        (False, False, True, "direct", "direct"),
        (False, False, True, "partial", "direct"),
        # ... and fails (EscalationFailed) when it does not and there is no answer in hand.
        (False, False, False, "direct", "fail"),
        (False, False, False, "partial", "fail"),
    ],
)
def test_after_rlm(answered: bool, hit: bool, fits: bool, on_deadline: str, action: str) -> None:
    assert (
        after_rlm(answered=answered, deadline_hit=hit, fits=fits, on_deadline=on_deadline)  # type: ignore[arg-type]
        == action
    )


def test_out_of_budget_beyond_the_window_answers_with_the_partial_when_there_is_one() -> None:
    # Issue 10: a budget-ended run with an answer in hand returns it (degraded), not an error.
    kwargs = {"answered": False, "deadline_hit": False, "on_deadline": "direct"}
    assert after_rlm(fits=False, budget_partial=True, **kwargs) == "budget_partial"  # type: ignore[arg-type]
    assert after_rlm(fits=True, budget_partial=True, **kwargs) == "direct"  # type: ignore[arg-type]
    assert after_rlm(fits=False, budget_partial=False, **kwargs) == "fail"  # type: ignore[arg-type]


def test_a_direct_fallback_out_of_time_at_the_deadline_answers_with_the_partial() -> None:
    out_of_time = (LatencyBudgetExceeded("budget"), ProviderTimeout("deadline"))
    for error in out_of_time:
        assert after_fallback_direct_error(error, deadline_hit=True) == "partial"
        assert after_fallback_direct_error(error, deadline_hit=False) == "raise"
    for other in (
        RateLimited("429"),
        EscalationFailed("x", partial_answer=None, stopped_reason=""),
    ):
        assert after_fallback_direct_error(other, deadline_hit=True) == "raise"


def test_deadline_hit_by_reason_or_by_clock() -> None:
    for reason in ("timeout", "deadline", "max_time", "wall_time"):
        assert deadline_hit(reason, engine_deadline=None, now=0.0)
    assert not deadline_hit("max_iterations", engine_deadline=None, now=100.0)
    assert not deadline_hit("provider_failure", engine_deadline=10.0, now=9.9)
    assert deadline_hit("provider_failure", engine_deadline=10.0, now=10.0)
