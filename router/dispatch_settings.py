"""What the dispatcher needs to know: the models behind each route, budgets, retries, and how
a latency budget is enforced; built from a ``policies.Policy``."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rlm_router.policies.schema import LatencySettings
from rlm_router.rlm_core import Budget, ModelSpec, RetryPolicy, SandboxLimits
from rlm_router.router.fallback import OnDeadline

__all__ = ["DispatchSettings", "LatencySettings", "OnDeadline", "RouteModels"]

if TYPE_CHECKING:
    from rlm_router.policies.schema import ModelTarget, Policy
    from rlm_router.rlm_core import EngineObserver, RLMEngine, WorkerPool
    from rlm_router.rlm_core.provider import Completion


@dataclass(frozen=True, kw_only=True)
class RouteModels:
    """The models behind each route. In the proxy these are model_list group names."""

    direct: ModelSpec
    rlm_root: ModelSpec
    rlm_sub: ModelSpec | None = None
    rlm_name: str = "default"  # served as rlm/<rlm_name>


@dataclass(frozen=True, kw_only=True)
class DispatchSettings:
    models: RouteModels
    budget: Budget = field(default_factory=Budget)
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    latency: LatencySettings = field(default_factory=LatencySettings)
    concurrency: int = 16
    keepalive_s: float = 5.0
    # REPL workers started and locked down ahead of RLM runs (rlm_core.WorkerPool, one per
    # event loop); 0 starts each sandbox's worker when its run begins. A policy's default
    # (policies.SandboxSettings) is on: servers built from a policy pre-start.
    prestart_workers: int = 0

    def engine(
        self, *, observer: EngineObserver | None = None, completion: Completion | None = None
    ) -> RLMEngine:
        """The RLM engine of the escalated route, with these settings' models and limits."""
        from rlm_router.rlm_core import RLMEngine

        return RLMEngine(
            root=self.models.rlm_root,
            sub=self.models.rlm_sub,
            budget=self.budget,
            limits=self.limits,
            retry=self.retry,
            concurrency=self.concurrency,
            observer=observer,
            completion=completion,
            pool=self.pool(),
        )

    def pool(self) -> WorkerPool | None:
        """The running loop's shared pool of ``prestart_workers`` workers for these limits,
        started on first use (None: no pool wanted, or no running loop). A server calls it
        early, so that its first escalated request finds a worker waiting."""
        if self.prestart_workers <= 0:
            return None
        from rlm_router.rlm_core.pool import shared_pool

        with contextlib.suppress(RuntimeError):  # no running loop: no pool to share
            return shared_pool(self.limits, self.prestart_workers)
        return None

    @classmethod
    def from_policy(
        cls,
        policy: Policy,
        *,
        direct: str | None = None,
        rlm_root: str | None = None,
        rlm_sub: str | None = None,
        rlm_name: str = "default",
        proxy: bool = False,
    ) -> DispatchSettings:
        """Settings from a ``policies.Policy``; model names given here override the policy's.

        With ``proxy`` the models are model_list group names reached through the proxy's
        router, so the policy's ``api_base`` and key are not used.
        """
        models = policy.models

        def spec(override: str | None, target: ModelTarget) -> ModelSpec:
            if override is not None:
                return ModelSpec(model=override)
            if proxy:
                return ModelSpec(model=target.model)
            return ModelSpec(model=target.model, api_base=target.api_base, api_key=target.api_key())

        return cls(
            models=RouteModels(
                direct=spec(direct, models.direct),
                rlm_root=spec(rlm_root, models.rlm_root),
                rlm_sub=spec(rlm_sub, models.rlm_sub),
                rlm_name=rlm_name,
            ),
            budget=policy.budgets,
            limits=policy.sandbox.limits,
            prestart_workers=policy.sandbox.prestart_workers,
            retry=policy.retry,
            # Budgets the RLM route cannot meet never get here: the policy's latency rule
            # (latency.rlm_min_ms) sends them direct.
            latency=policy.latency,
        )
