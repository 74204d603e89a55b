"""The embedded Recursive Language Model engine."""

from rlm_core.env import apply_offline_defaults

apply_offline_defaults()

from rlm_core.budget import Budget, StopReason, Usage  # noqa: E402
from rlm_core.engine import RLMEngine, RLMResult  # noqa: E402
from rlm_core.errors import ProviderFailure, RLMError, SandboxError  # noqa: E402
from rlm_core.observer import EngineObserver  # noqa: E402
from rlm_core.provider import ModelSpec, RetryPolicy  # noqa: E402
from rlm_core.sandbox import SandboxLimits  # noqa: E402
from rlm_core.trajectory import Trajectory  # noqa: E402

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
]
