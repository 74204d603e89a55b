"""The exploration budget's effect on decisions: once spent, decisions do not explore and
record propensity 1 (so training on them stays unbiased); the per-instance counter resets
each clock hour."""

from __future__ import annotations

import dataclasses

from rlm_router.policies import Exploration
from rlm_router.router import Router
from rlm_router.router.plugin.exploration import ExplorationBudget, LocalExplorationBudget
from rlm_router.router.request import ChatRequest


def _exploring_router() -> Router:
    shipped = Router.from_config()
    policy = dataclasses.replace(shipped.policy, exploration=Exploration(rate=0.5, seed=3))
    return Router(policy, shipped.classifier, windows=shipped.windows)


def test_a_spent_budget_decides_without_exploring_and_records_propensity_one() -> None:
    router = _exploring_router()
    request = ChatRequest.parse({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    free = [router.decide_parsed(request) for _ in range(40)]
    assert any(d.exploration for d in free)
    assert {d.propensity for d in free} == {0.5}
    spent = [router.decide_parsed(request, explore=False) for _ in range(40)]
    assert not any(d.exploration for d in spent)
    assert {d.propensity for d in spent} == {1.0}
    assert {d.route for d in spent} == {"llm"}  # the classifier's own route, every time


async def test_the_local_budget_counts_per_clock_hour() -> None:
    now = [7200.0 * 10]
    budget = LocalExplorationBudget(clock=lambda: now[0])
    assert isinstance(budget, ExplorationBudget)
    for _ in range(2):
        assert await budget.has_room(2)
        await budget.spend()
    assert not await budget.has_room(2)
    now[0] += 3599.0  # still the same hour
    assert not await budget.has_room(2)
    now[0] += 1.0
    assert await budget.has_room(2)
