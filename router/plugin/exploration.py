"""The exploration budget: how many explorations are left this clock hour (policy
``exploration.max_per_hour``), counted per instance or, for a fleet, in Redis.

The hook asks ``has_room`` before it decides and decides without exploring when the budget is
spent, so every decision still records the true propensity of its route (1 when exploring was
off). It calls ``spend`` after a decision that explored. Instances deciding at the same
moment can overshoot the cap by the decisions in flight between the two calls; never more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from rlm_router.router.plugin.shared import SharedStateSettings

__all__ = ["ExplorationBudget", "LocalExplorationBudget", "RedisExplorationBudget"]

log = logging.getLogger("rlm_router.router.plugin")


def _hour(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // 3600)


@runtime_checkable
class ExplorationBudget(Protocol):
    async def has_room(self, limit: int) -> bool:
        """Whether fewer than ``limit`` explorations were spent this hour."""
        ...

    async def spend(self) -> None:
        """Count one exploration against this hour."""
        ...


class LocalExplorationBudget:
    """``ExplorationBudget`` counted in this process (one proxy instance); ``clock`` gives
    seconds since the epoch."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._hour = _hour(clock())
        self._spent = 0

    def _roll(self) -> None:
        hour = _hour(self._clock())
        if hour != self._hour:
            self._hour, self._spent = hour, 0

    async def has_room(self, limit: int) -> bool:
        self._roll()
        return self._spent < limit

    async def spend(self) -> None:
        self._roll()
        self._spent += 1


class RedisExplorationBudget:
    """``ExplorationBudget`` for the fleet: one counter per hour in Redis (kept two hours).

    Without Redis, exploring stops (``has_room`` is False): an unreachable counter must not
    let every instance explore without a cap, and deciding without exploring is always safe.
    """

    def __init__(self, shared: SharedStateSettings, *, client: Redis) -> None:
        self.shared = shared
        self._client = client

    def _key(self) -> str:
        return self.shared.key("explore", str(_hour()))

    async def has_room(self, limit: int) -> bool:
        from redis.exceptions import RedisError

        try:
            spent = await self._client.get(self._key())
        except RedisError as exc:
            log.warning("rlm-router: shared exploration budget unavailable (%s): not exploring",
                        exc)  # fmt: skip
            return False
        return int(spent or 0) < limit

    async def spend(self) -> None:
        from redis.exceptions import RedisError

        key = self._key()
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, 7200)
                await pipe.execute()
        except RedisError as exc:
            log.warning("rlm-router: shared exploration budget not counted (%s)", exc)
