"""Admission control for RLM runs: how many may be in flight at once, per instance, key, team.

An RLM run holds sandbox workers and fans out sub-calls, so an unbounded number of them takes
the gateway down. ``Admission`` is the seam: ``acquire`` waits (up to a wait the caller
derives from the queue setting and the request's deadline) for a slot under every limit that
applies to the caller, and returns a ``Slot`` to ``release`` when the run ends, or None when
the wait ran out. ``LocalAdmission`` counts in this process; ``RedisAdmission`` (several
proxy instances sharing one Redis, ``router.plugin.shared``) keeps the per-key and per-team
counts in Redis, so those limits hold for the whole fleet, as leases an instance renews while
its runs last: the slots of an instance that dies (``kill -9``) expire after ``lease_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from rlm_router.policies.schema import AdmissionSettings

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from rlm_router.router.plugin.shared import SharedStateSettings

log = logging.getLogger("rlm_router.router.plugin")


@dataclass(frozen=True)
class Caller:
    """Who an escalation is for, as LiteLLM's auth identified it (None = unknown)."""

    key: str | None = None
    team: str | None = None


@runtime_checkable
class Slot(Protocol):
    """One admitted RLM run. ``release`` is idempotent."""

    async def release(self) -> None: ...


@runtime_checkable
class Admission(Protocol):
    """Bounds concurrent RLM runs; see the module docstring."""

    async def acquire(self, caller: Caller, *, wait_s: float) -> Slot | None:
        """A slot for ``caller``, waiting at most ``wait_s`` seconds; None if none freed."""
        ...

    def in_flight(self) -> int:
        """RLM runs currently admitted by this instance."""
        ...

    def reconfigure(self, settings: AdmissionSettings) -> None:
        """New limits (a policy reload); runs already admitted keep their slots."""
        ...


class _LocalSlot:
    def __init__(self, owner: LocalAdmission, scopes: tuple[str, ...]) -> None:
        self._owner = owner
        self._scopes: tuple[str, ...] | None = scopes

    async def release(self) -> None:
        self.release_now()

    def release_now(self) -> None:
        """Synchronous release (for cleanup paths that cannot await)."""
        if self._scopes is not None:
            scopes, self._scopes = self._scopes, None
            self._owner._give_back(scopes)


class LocalAdmission:
    """``Admission`` counted in this process (one proxy instance)."""

    def __init__(self, settings: AdmissionSettings) -> None:
        self.settings = settings
        self._counts: dict[str, int] = {}
        self._changed: asyncio.Event | None = None

    def _limits(self, caller: Caller) -> list[tuple[str, int]]:
        s = self.settings
        limits: list[tuple[str, int]] = []
        if s.max_concurrent_rlm is not None:
            limits.append(("instance", s.max_concurrent_rlm))
        if s.max_concurrent_rlm_per_key is not None and caller.key:
            limits.append((f"key:{caller.key}", s.max_concurrent_rlm_per_key))
        if s.max_concurrent_rlm_per_team is not None and caller.team:
            limits.append((f"team:{caller.team}", s.max_concurrent_rlm_per_team))
        return limits

    def _try_take(self, caller: Caller) -> _LocalSlot | None:
        limits = self._limits(caller)
        if any(self._counts.get(scope, 0) >= limit for scope, limit in limits):
            return None
        scopes = ("all", *(scope for scope, _ in limits))
        for scope in scopes:
            self._counts[scope] = self._counts.get(scope, 0) + 1
        return _LocalSlot(self, scopes)

    def _give_back(self, scopes: tuple[str, ...]) -> None:
        for scope in scopes:
            left = self._counts.get(scope, 0) - 1
            if left > 0:
                self._counts[scope] = left
            else:
                self._counts.pop(scope, None)
        if self._changed is not None:
            self._changed.set()

    async def acquire(self, caller: Caller, *, wait_s: float) -> _LocalSlot | None:
        deadline = time.monotonic() + max(0.0, wait_s)
        while True:
            # Take the event before trying, so a release between the try and the wait wakes us.
            if self._changed is None or self._changed.is_set():
                self._changed = asyncio.Event()
            changed = self._changed
            slot = self._try_take(caller)
            if slot is not None:
                return slot
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()

    def in_flight(self) -> int:
        return self._counts.get("all", 0)

    def reconfigure(self, settings: AdmissionSettings) -> None:
        self.settings = settings


# KEYS: one sorted set per scope (member = slot id, score = lease expiry in Redis ms).
# ARGV: slot id, lease ms, then one limit per key. All or nothing, on Redis's own clock (so
# the instances' clocks never have to agree).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(ARGV[i + 2]) then return 0 end
end
local lease = tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + lease, ARGV[1])
  redis.call('PEXPIRE', key, lease * 2)
end
return 1
"""
# KEYS: scopes of held slots; ARGV: lease ms, then one slot id per key. Extends the leases
# that still exist (XX: a slot that already expired is not brought back).
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
local kept = 0
for i, key in ipairs(KEYS) do
  kept = kept + redis.call('ZADD', key, 'XX', 'CH', now + lease, ARGV[i + 1])
  redis.call('PEXPIRE', key, lease * 2)
end
return kept
"""
_POLL_S = (0.02, 0.05, 0.1, 0.2)  # waits between tries while the fleet is full


class _SharedSlot:
    def __init__(
        self, owner: RedisAdmission, local: _LocalSlot, member: str, keys: tuple[str, ...]
    ) -> None:
        self._owner = owner
        self._local: _LocalSlot | None = local
        self.member = member
        self.keys = keys

    async def release(self) -> None:
        local, self._local = self._local, None
        if local is None:
            return
        local.release_now()
        await self._owner._give_back(self)


class RedisAdmission:
    """``Admission`` for several proxy instances sharing one Redis.

    The instance limit (``max_concurrent_rlm``) stays per instance: it bounds this host's
    sandbox workers. The per-key and per-team limits are counted in Redis, for every
    instance at once. If Redis cannot be reached, the run is admitted under the instance
    limit alone (logged): losing Redis degrades the global limits, never the traffic, as
    LiteLLM's own Redis-backed limits do.
    """

    def __init__(
        self, settings: AdmissionSettings, shared: SharedStateSettings, *, client: Redis
    ) -> None:
        self.settings = settings
        self.shared = shared
        self._client = client
        self._local = LocalAdmission(self._instance_only(settings))
        self._held: dict[str, _SharedSlot] = {}
        self._renewer: asyncio.Task[None] | None = None
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)

    @staticmethod
    def _instance_only(settings: AdmissionSettings) -> AdmissionSettings:
        return dataclasses.replace(
            settings, max_concurrent_rlm_per_key=None, max_concurrent_rlm_per_team=None
        )

    def reconfigure(self, settings: AdmissionSettings) -> None:
        self.settings = settings
        self._local.reconfigure(self._instance_only(settings))

    def in_flight(self) -> int:
        return self._local.in_flight()

    def _scopes(self, caller: Caller) -> list[tuple[str, int]]:
        s = self.settings
        scopes: list[tuple[str, int]] = []
        if s.max_concurrent_rlm_per_key is not None and caller.key:
            scopes.append((self.shared.key("rlm", "key", _digest(caller.key)),
                           s.max_concurrent_rlm_per_key))  # fmt: skip
        if s.max_concurrent_rlm_per_team is not None and caller.team:
            scopes.append((self.shared.key("rlm", "team", _digest(caller.team)),
                           s.max_concurrent_rlm_per_team))  # fmt: skip
        return scopes

    async def acquire(self, caller: Caller, *, wait_s: float) -> Slot | None:
        from redis.exceptions import RedisError

        deadline = time.monotonic() + max(0.0, wait_s)
        scopes = self._scopes(caller)
        keys = tuple(key for key, _ in scopes)
        tries = 0
        while True:
            local = await self._local.acquire(caller, wait_s=deadline - time.monotonic())
            if local is None:
                return None
            if not scopes:
                return local
            member = uuid.uuid4().hex
            try:
                lease_ms = int(self.shared.lease_s * 1000)
                args: list[str | int] = [member, lease_ms, *(limit for _, limit in scopes)]
                taken = await self._acquire(keys=list(keys), args=args)
            except RedisError as exc:
                log.warning("rlm-router: shared admission unavailable (%s): instance limit only",
                            exc)  # fmt: skip
                return local
            if taken:
                slot = _SharedSlot(self, local, member, keys)
                self._held[member] = slot
                self._start_renewing()
                return slot
            local.release_now()  # full elsewhere in the fleet: do not hold a local slot waiting
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            await asyncio.sleep(min(remaining, _POLL_S[min(tries, len(_POLL_S) - 1)]))
            tries += 1

    async def _give_back(self, slot: _SharedSlot) -> None:
        from redis.exceptions import RedisError

        self._held.pop(slot.member, None)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key in slot.keys:
                    pipe.zrem(key, slot.member)
                await pipe.execute()
        except RedisError as exc:  # the lease runs out by itself
            log.warning("rlm-router: shared admission release failed (%s)", exc)

    def _start_renewing(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        """Extend the leases of this instance's slots while they are held (every third of a
        lease, so one missed round never loses a live run's slot)."""
        from redis.exceptions import RedisError

        lease_ms = int(self.shared.lease_s * 1000)
        while self._held:
            await asyncio.sleep(self.shared.lease_s / 3)
            held = list(self._held.values())
            keys = [key for slot in held for key in slot.keys]
            members = [slot.member for slot in held for _ in slot.keys]
            if not keys:
                continue
            with contextlib.suppress(RedisError):
                await self._renew(keys=keys, args=[lease_ms, *members])

    async def close(self) -> None:
        """Stop renewing (held slots then expire) and close the client."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        await self._client.aclose()


def _digest(identity: str) -> str:
    """Keys and team ids are not stored in Redis as they are."""
    return hashlib.sha256(identity.encode()).hexdigest()[:32]
