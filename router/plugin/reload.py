"""Hot policy reload in a running proxy: a file watch, ``SIGHUP`` and an admin endpoint.

All three call ``PolicyReloader.reload``, which asks the service to re-read its policy file
and classifier artifact. On any failure the last good policy keeps serving (``Router.reload``
guarantees it) and the reason is logged; every outcome is counted on the
``rlm_router.policy.reloads`` metric (``outcome`` = ok | failed, ``trigger`` = file | signal |
http). So ``rlm-router train --out <the policy's classifier artifact>`` reaches a running
proxy within a poll interval, without a restart.

- The watch polls the policy file and the classifier artifact it names (``stat``: inode,
  size, mtime) once a second; a change triggers a reload. A half-written file fails to load,
  keeps the last good policy, and is picked up again when the writer finishes.
- ``kill -HUP <proxy pid>`` reloads at once.
- ``POST /rlm-router/reload`` (the proxy's auth; only the master key / proxy admins) reloads
  and answers ``{"reloaded": bool, "policy_version": ..., "error": ...}``; ``GET`` answers the
  serving version and the reload counts by trigger and outcome, without reloading.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from rlm_router.router.plugin.running_proxy import running_proxy_app

if TYPE_CHECKING:
    from fastapi import APIRouter

log = logging.getLogger("rlm_router.reload")

RELOAD_PATH: Final = "/rlm-router/reload"
POLL_INTERVAL_S: Final = 1.0
_INSTALLED_FLAG: Final = "rlm_router_reload_installed"


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    policy_version: str
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"reloaded": self.ok, "policy_version": self.policy_version, "error": self.error}


Stamp = tuple[int, int, int] | None


def _stamp(path: Path) -> Stamp:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class PolicyReloader:
    """Triggers reloads of ``reload`` (the service's) and watches ``watched()`` for changes."""

    def __init__(
        self,
        reload: Callable[[str], ReloadResult],
        watched: Callable[[], Iterable[Path]],
        *,
        interval_s: float = POLL_INTERVAL_S,
    ) -> None:
        self._reload = reload
        self._watched = watched
        self._interval_s = interval_s
        self._stamps: dict[Path, Stamp] = {}
        self._task: asyncio.Task[None] | None = None
        self.counts: Counter[str] = Counter()  # "<trigger>:<ok|failed>" -> reloads
        self.last: ReloadResult | None = None

    def _snapshot(self) -> dict[Path, Stamp]:
        return {path: _stamp(path) for path in self._watched()}

    def reload(self, trigger: str) -> ReloadResult:
        result = self._reload(trigger)
        # Whatever the outcome, the files as they are now have been seen.
        self._stamps = self._snapshot()
        self.counts[f"{trigger}:{'ok' if result.ok else 'failed'}"] += 1
        self.last = result
        return result

    def start(self) -> None:
        """Start the file watch and the SIGHUP handler on the running loop (once)."""
        if self._task is not None:
            return
        loop = asyncio.get_running_loop()
        self._stamps = self._snapshot()
        self._task = loop.create_task(self._watch(), name="rlm-router-policy-watch")
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            # Only the main thread's loop may own signals; elsewhere SIGHUP is not ours.
            loop.add_signal_handler(signal.SIGHUP, self._on_signal)

    def _on_signal(self) -> None:
        self.reload("signal")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                now = self._snapshot()
                if now != self._stamps:
                    self.reload("file")
            except Exception:  # the watch must outlive any one bad reload
                log.warning("rlm-router: policy watch failed", exc_info=True)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def reload_router(reloader: Callable[[], PolicyReloader], version: Callable[[], str]) -> APIRouter:
    """``POST``/``GET /rlm-router/reload`` behind the proxy's auth, for proxy admins only."""
    from fastapi import APIRouter, Depends
    from fastapi.responses import JSONResponse
    from litellm.proxy._types import LitellmUserRoles, UserAPIKeyAuth
    from litellm.proxy.auth.user_api_key_auth import user_api_key_auth

    router = APIRouter()

    def forbidden(auth: UserAPIKeyAuth) -> JSONResponse | None:
        if auth.user_role == LitellmUserRoles.PROXY_ADMIN:
            return None
        return JSONResponse(
            {"error": {"message": "rlm-router: the policy reload endpoint needs the master key"}},
            status_code=403,
        )

    @router.post(RELOAD_PATH, tags=["rlm-router"])
    async def reload_policy(auth: UserAPIKeyAuth = Depends(user_api_key_auth)) -> JSONResponse:  # noqa: B008
        """Re-read the routing policy and classifier; the last good one stays on failure."""
        denied = forbidden(auth)
        if denied is not None:
            return denied
        result = reloader().reload("http")
        return JSONResponse(result.as_dict(), status_code=200 if result.ok else 422)

    @router.get(RELOAD_PATH, tags=["rlm-router"])
    async def reload_status(auth: UserAPIKeyAuth = Depends(user_api_key_auth)) -> JSONResponse:  # noqa: B008
        """The serving policy version and the reloads so far by trigger and outcome."""
        denied = forbidden(auth)
        if denied is not None:
            return denied
        watcher = reloader()
        last = watcher.last.as_dict() if watcher.last is not None else None
        return JSONResponse(
            {"policy_version": version(), "reloads": dict(watcher.counts), "last": last}
        )

    return router


def install_on_running_proxy(
    reloader: Callable[[], PolicyReloader], version: Callable[[], str]
) -> bool:
    """Add the admin endpoint to the LiteLLM proxy's app if this process is the proxy."""
    app = running_proxy_app()
    if app is None or getattr(app.state, _INSTALLED_FLAG, False):
        return False
    try:
        app.include_router(reload_router(reloader, version))
    except Exception:  # the proxy must serve even without the endpoint
        log.warning("rlm-router: could not add %s to the proxy", RELOAD_PATH, exc_info=True)
        return False
    setattr(app.state, _INSTALLED_FLAG, True)
    app.openapi_schema = None
    return True
