"""``LocalAdmission``: concurrent RLM runs bounded per instance, key and team, with a queue."""

from __future__ import annotations

import asyncio

from rlm_router.policies.schema import AdmissionSettings
from rlm_router.router.plugin.admission import Admission, Caller, LocalAdmission


async def test_the_instance_limit_queues_then_gives_up() -> None:
    admission = LocalAdmission(AdmissionSettings(max_concurrent_rlm=2))
    assert isinstance(admission, Admission)
    first = await admission.acquire(Caller(), wait_s=0)
    second = await admission.acquire(Caller(), wait_s=0)
    assert first is not None and second is not None
    assert await admission.acquire(Caller(), wait_s=0.05) is None
    assert admission.in_flight() == 2
    waiter = asyncio.ensure_future(admission.acquire(Caller(), wait_s=10))
    await asyncio.sleep(0)
    assert not waiter.done()
    await first.release()
    await first.release()  # idempotent: hands back one slot only
    third = await waiter
    assert third is not None
    assert admission.in_flight() == 2
    await second.release()
    await third.release()
    assert admission.in_flight() == 0


async def test_per_key_and_per_team_limits_apply_to_their_callers_only() -> None:
    admission = LocalAdmission(
        AdmissionSettings(
            max_concurrent_rlm=None, max_concurrent_rlm_per_key=1, max_concurrent_rlm_per_team=2
        )
    )
    a1 = await admission.acquire(Caller(key="a", team="t"), wait_s=0)
    assert a1 is not None
    assert await admission.acquire(Caller(key="a", team="t"), wait_s=0) is None
    b1 = await admission.acquire(Caller(key="b", team="t"), wait_s=0)
    assert b1 is not None
    # Team t is full; key c of another team is not limited by it.
    assert await admission.acquire(Caller(key="c", team="t"), wait_s=0) is None
    assert await admission.acquire(Caller(key="c", team="u"), wait_s=0) is not None
    assert await admission.acquire(Caller(), wait_s=0) is not None  # unknown caller: no limit
