"""State shared by several proxy instances: where it lives (Redis) and how to reach it.

One proxy instance keeps its admission counts and exploration budget in memory. Behind
LiteLLM's multi-instance deployment (several proxies, one Redis, one PostgreSQL) the limits
that must hold for the whole fleet (RLM runs per key and per team, explorations per hour)
live in Redis instead, selected in the ``rlm_router`` section::

    rlm_router:
      shared_state:
        redis_url: os.environ/REDIS_URL   # or redis://127.0.0.1:6379/0
        key_prefix: rlm-router            # one prefix per fleet sharing the Redis
        lease_s: 30                       # an admitted run's slot outlives a dead instance
                                          # by at most this long

Every key is under ``{key_prefix}`` (a Redis Cluster hash tag), so the multi-key scripts the
backends run stay in one slot.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rlm_router.rlm_core.errors import ConfigError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["SharedStateError", "SharedStateSettings"]

_KEYS = frozenset({"redis_url", "key_prefix", "lease_s"})
_ENV_PREFIX = "os.environ/"  # LiteLLM's own spelling for "read this from the environment"
_SCHEMES = ("redis://", "rediss://", "unix://")


class SharedStateError(ConfigError):
    """The ``shared_state`` section is invalid; the message names file, line and key."""


@dataclass(frozen=True, kw_only=True)
class SharedStateSettings:
    """Where the fleet's shared state lives (see the module docstring)."""

    redis_url: str
    key_prefix: str = "rlm-router"
    lease_s: float = 30.0

    @classmethod
    def parse(cls, raw: object, at: Callable[..., str]) -> SharedStateSettings:
        """From the YAML mapping; ``at(*keys)`` gives ``file:line`` of ``shared_state.<keys>``."""
        where = "rlm_router.shared_state"
        if not isinstance(raw, Mapping):
            raise SharedStateError(f"{at()}: '{where}' must be a mapping")
        unknown = sorted(set(raw) - _KEYS)
        if unknown:
            raise SharedStateError(
                f"{at(str(unknown[0]))}: unknown key(s) {unknown} in '{where}' "
                f"(allowed: {sorted(_KEYS)})"
            )
        url = raw.get("redis_url")
        if not isinstance(url, str) or not url:
            raise SharedStateError(f"{at('redis_url')}: '{where}.redis_url' is required")
        if not url.startswith(_ENV_PREFIX) and not url.startswith(_SCHEMES):
            raise SharedStateError(
                f"{at('redis_url')}: '{where}.redis_url' must start with one of {list(_SCHEMES)} "
                f"or name a variable as '{_ENV_PREFIX}NAME'"
            )
        prefix = raw.get("key_prefix", "rlm-router")
        if not isinstance(prefix, str) or not prefix or any(c in prefix for c in "{} "):
            raise SharedStateError(
                f"{at('key_prefix')}: '{where}.key_prefix' must be a name without braces or spaces"
            )
        lease = raw.get("lease_s", 30.0)
        if isinstance(lease, bool) or not isinstance(lease, int | float) or not 1 <= lease <= 3600:
            raise SharedStateError(
                f"{at('lease_s')}: '{where}.lease_s' must be a number of seconds in [1, 3600]"
            )
        return cls(redis_url=url, key_prefix=prefix, lease_s=float(lease))

    def as_mapping(self) -> dict[str, object]:
        return {"redis_url": self.redis_url, "key_prefix": self.key_prefix, "lease_s": self.lease_s}

    def key(self, *parts: str) -> str:
        """A Redis key under this fleet's hash-tagged prefix."""
        return ":".join((f"{{{self.key_prefix}}}", *parts))

    def resolved_url(self) -> str:
        """``redis_url`` with an ``os.environ/NAME`` reference read (at connect time, as
        LiteLLM reads its own, so a secret URL never has to sit in the file)."""
        if not self.redis_url.startswith(_ENV_PREFIX):
            return self.redis_url
        name = self.redis_url[len(_ENV_PREFIX) :]
        value = os.environ.get(name)
        if not value:
            raise SharedStateError(
                f"rlm_router.shared_state.redis_url names ${name}, which is not set"
            )
        return value

    def connect(self) -> Redis:
        """A client for the shared Redis (connects lazily, on first command)."""
        from redis.asyncio import Redis

        return Redis.from_url(
            self.resolved_url(),
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
            health_check_interval=30,
        )
