"""Admission control for RLM runs: how many may be in flight at once, per instance, key, team.

An RLM run holds sandbox workers and fans out sub-calls, so an unbounded number of them takes
the gateway down. ``Admission`` is the seam: ``acquire`` waits (up to a wait the caller
derives from the queue setting and the request's deadline) for a slot under every limit that
applies to the caller, and returns a ``Slot`` to ``release`` when the run ends, or None when
the wait ran out. ``LocalAdmission`` counts in this process; a shared backend (Redis, for
several proxy instances) implements the same two methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from rlm_router.policies.schema import AdmissionSettings


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

    async def acquire(self, caller: Caller, *, wait_s: float) -> Slot | None:
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
