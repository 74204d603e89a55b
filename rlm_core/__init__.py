"""The embedded Recursive Language Model engine."""

from rlm_router.rlm_core.budget import Budget, StopReason, Usage
from rlm_router.rlm_core.engine import RLMEngine, RLMResult
from rlm_router.rlm_core.errors import ProviderFailure, RLMError, SandboxError
from rlm_router.rlm_core.observer import EngineObserver
from rlm_router.rlm_core.pool import WorkerPool
from rlm_router.rlm_core.provider import ModelSpec, RetryPolicy
from rlm_router.rlm_core.sandbox import SandboxLimits
from rlm_router.rlm_core.trajectory import Trajectory

__all__ = [
    "Budget",
    "EngineObserver",
    "ModelSpec",
    "ProviderFailure",
    "RLMEngine",
    "RLMError",
    "RLMResult",
    "RetryPolicy",
    "SandboxError",
    "SandboxLimits",
    "StopReason",
    "Trajectory",
    "Usage",
    "WorkerPool",
]
