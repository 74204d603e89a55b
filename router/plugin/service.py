"""The plugin's process-wide state: config, router, dispatcher, admission and policy reloads,
built on first use, and the decisions in flight between the hook and whoever serves them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import rlm_router.rlm_core.litellm_api as litellm_api
from rlm_router.policies.decision import Decision
from rlm_router.router.dispatch import Dispatcher
from rlm_router.router.plugin.admission import Admission, LocalAdmission, RedisAdmission, Slot
from rlm_router.router.plugin.config import ServiceConfig
from rlm_router.router.plugin.exploration import (
    ExplorationBudget,
    LocalExplorationBudget,
    RedisExplorationBudget,
)
from rlm_router.router.plugin.reload import PolicyReloader, ReloadResult

if TYPE_CHECKING:
    from rlm_router.router import Router
    from rlm_router.router.plugin.litellm_types import ModelResponseStream
    from rlm_router.telemetry import Telemetry
    from rlm_router.telemetry.tracing import RequestTrace


__all__ = [
    "Pending",
    "RouterService",
    "proxy_completion",
    "proxy_stream",
    "release",
    "release_soon",
    "shared_service",
]

log = logging.getLogger("rlm_router.router.plugin")

_MAX_PENDING_DECISIONS = 4096
# Decision ids remembered for the feedback endpoint's 404 (~100 bytes each).
RECENT_DECISIONS = 65_536


@dataclass
class Pending:
    """A routed request between the hook and whoever serves it."""

    decision: Decision
    trace: RequestTrace | None
    started: float  # time.monotonic() when the hook saw the request
    slot: Slot | None = None  # the admitted RLM run's slot, released when the run ends
    # time.time_ns() when deciding began: where the request's spans start, so they nest.
    started_ns: int | None = None
    decide_s: float = 0.0


class RouterService:
    """Process-wide plugin state: config, router and dispatcher, built on first use."""

    def __init__(
        self, config: ServiceConfig | None = None, *, admission: Admission | None = None
    ) -> None:
        self._config = config
        self._admission = admission
        self._exploration: ExplorationBudget | None = None
        self._reloader: PolicyReloader | None = None
        self._lock = threading.Lock()
        self._router: Router | None = None
        self._dispatcher: Dispatcher | None = None
        self._telemetry: Telemetry | None = None
        self._telemetry_loaded = False
        # decision id -> the hook's decision and trace, for the provider or the log events.
        self._pending: OrderedDict[str, Pending] = OrderedDict()
        # The ids of the last RECENT_DECISIONS decisions, served or not.
        self._issued: OrderedDict[str, None] = OrderedDict()

    @property
    def config(self) -> ServiceConfig:
        if self._config is None:
            self._config = ServiceConfig.from_env()
        return self._config

    @property
    def router(self) -> Router:
        if self._router is None:
            with self._lock:
                if self._router is None:
                    from rlm_router.router import Router

                    path = self.config.policy_path
                    self.config.register_groups()
                    router = Router.from_config(str(path) if path else None)
                    self._router = self._fitted(router)
                    # At proxy start-up (the plugin builds its router while LiteLLM loads
                    # its config), so the first request does not pay for it.
                    self._router.warm_up()
        return self._router

    def _fitted(self, router: Router) -> Router:
        """``router`` measuring inputs against the window of the config's direct group."""
        from rlm_router.router import Router

        config = self.config
        window = config.group_window(config.direct) if config.direct else None
        if window is None:
            return router
        # Features measure the input against the window of the model that actually serves
        # the direct route here: the config's group.
        windows = {**router.windows, router.policy.models.direct.model: window}
        return Router(
            router.policy,
            router.classifier,
            windows=windows,
            warning=router.warning,
            telemetry=router.telemetry,
        )

    def reload(self, trigger: str) -> ReloadResult:
        """Re-read the policy file and classifier; on failure keep serving the last good one.

        Requests in flight finish on the policy they started with."""
        router = self.router
        ok = router.reload(self.config.policy_path)
        if ok:
            self._router = self._fitted(router)
            self._dispatcher = None  # rebuilt from the new policy on next use
            if self._admission is not None:
                self._admission.reconfigure(router.policy.admission)
        version = self.router.policy_version
        error = None if ok else router.warning
        if ok:
            log.info("rlm-router: policy reloaded (%s): now %s", trigger, version)
        else:
            log.warning("rlm-router: policy reload (%s) failed: %s", trigger, error)
        metrics = getattr(self.telemetry, "metrics", None)
        if metrics is not None:
            with contextlib.suppress(Exception):
                metrics.policy_reload(ok=ok, trigger=trigger)
        return ReloadResult(ok=ok, policy_version=version, error=error)

    def watched_files(self) -> list[Path]:
        """The files a reload reads: the policy file and its classifier artifact."""
        policy = self.router.policy
        files = [policy.source] if policy.source is not None else []
        return [*files, policy.classifier.artifact_path()]

    @property
    def reloader(self) -> PolicyReloader:
        if self._reloader is None:
            self._reloader = PolicyReloader(self.reload, self.watched_files)
        return self._reloader

    @property
    def dispatcher(self) -> Dispatcher:
        if self._dispatcher is None:
            from rlm_router.router.dispatch_settings import DispatchSettings

            config = self.config
            settings = DispatchSettings.from_policy(
                self.router.policy,
                direct=config.direct,
                rlm_root=config.rlm_root,
                rlm_sub=config.rlm_sub,
                rlm_name=config.rlm_name,
                proxy=True,
            )
            judge = None
            telemetry = self.telemetry
            if self.router.policy.judge.enabled and telemetry is not None:
                from rlm_router.router.judge import Judge

                # The judge's model is a litellm model name from the policy (not a
                # model_list group), so it is called through litellm, not the proxy's router.
                judge = Judge(self.router.policy.judge, telemetry)
            self._dispatcher = Dispatcher(
                decide=self.router.decide,
                decide_parsed=self.router.decide_parsed,
                settings=settings,
                completion=proxy_completion,
                telemetry=telemetry,
                judge=judge,
            )
        return self._dispatcher

    @property
    def telemetry(self) -> Telemetry | None:
        """The router's telemetry, else one configured from the OTEL_* environment."""
        if not self._telemetry_loaded:
            self._telemetry_loaded = True
            self._telemetry = self.router.telemetry
            if self._telemetry is None:
                try:
                    from rlm_router.telemetry import Telemetry

                    self._telemetry = Telemetry.from_env()
                except Exception:  # telemetry must never stop the proxy from serving
                    log.warning("rlm-router: telemetry disabled", exc_info=True)
        return self._telemetry

    @property
    def admission(self) -> Admission:
        """Bounds concurrent RLM runs under the policy's limits: in this process, or through
        Redis when the config shares state between instances (unless given one)."""
        if self._admission is None:
            settings, shared = self.router.policy.admission, self.config.shared
            if shared is None:
                self._admission = LocalAdmission(settings)
            else:
                self._admission = RedisAdmission(settings, shared, client=shared.connect())
        return self._admission

    @property
    def exploration(self) -> ExplorationBudget:
        """The explorations left this hour (policy ``exploration.max_per_hour``): counted in
        this process, or in Redis for the fleet when the config shares state."""
        if self._exploration is None:
            shared = self.config.shared
            if shared is None:
                self._exploration = LocalExplorationBudget()
            else:
                self._exploration = RedisExplorationBudget(shared, client=shared.connect())
        return self._exploration

    def issued(self, decision_id: str) -> bool:
        """Whether this process made the decision (one of its last ``RECENT_DECISIONS``)."""
        return decision_id in self._issued

    def note_issued(self, decision_id: str) -> None:
        self._issued[decision_id] = None
        if len(self._issued) > RECENT_DECISIONS:
            self._issued.popitem(last=False)

    def remember(self, pending: Pending) -> None:
        self.note_issued(pending.decision.id)
        self._pending[pending.decision.id] = pending
        while len(self._pending) > _MAX_PENDING_DECISIONS:
            _, dropped = self._pending.popitem(last=False)
            release_soon(dropped)
            self.dispatcher.close_trace(dropped.trace, None)

    def recall(self, decision_id: object) -> Pending | None:
        if not isinstance(decision_id, str):
            return None
        return self._pending.pop(decision_id, None)


async def proxy_completion(**kwargs: object) -> object:
    """Model calls through the running proxy's router (its model_list, keys and retries):
    ``litellm.acompletion``'s result, a ``ModelResponse`` or, streamed, a stream of chunks."""
    from litellm.proxy import proxy_server

    llm_router = proxy_server.llm_router
    if llm_router is None:
        return await litellm_api.acompletion(**kwargs)
    # Its overloads want typed ``model``/``messages``; these are forwarded as LiteLLM gave them.
    call: Callable[..., Awaitable[object]] = llm_router.acompletion
    return await call(**kwargs)


async def proxy_stream(**kwargs: object) -> AsyncIterable[ModelResponseStream]:
    """A streamed model call through the running proxy's router (``stream=True``)."""
    response = await proxy_completion(**{**kwargs, "stream": True})
    if not isinstance(response, AsyncIterable):
        raise TypeError(f"a streamed call returned {type(response).__name__}, not a stream")
    return response


def release_soon(pending: Pending) -> None:
    """Release a pending request's admission slot from a synchronous path."""
    slot, pending.slot = pending.slot, None
    if slot is not None:
        with contextlib.suppress(RuntimeError):  # no running loop: nothing to hand back to
            asyncio.get_running_loop().create_task(slot.release())


async def release(pending: Pending) -> None:
    slot, pending.slot = pending.slot, None
    if slot is not None:
        await slot.release()


def shared_service() -> RouterService:
    """One service per process, even if LiteLLM loads this file as two module objects.

    (LiteLLM execs a callback's module from a file next to the config when one exists, once
    per reference, so the hook and the provider could otherwise hold different services.)
    """
    from rlm_router.router.plugin import config as service_config

    service = service_config.PROCESS_STATE.get("plugin_service")
    if not isinstance(service, RouterService):
        service = RouterService()
        service_config.PROCESS_STATE["plugin_service"] = service
    return service
