"""The engine's exceptions, one tree.

    RLMError                  base of everything the engine raises
    ├── ProviderFailure       a model call failed permanently (after retries); carries the
    │                         partial trajectory and the best partial answer
    └── SandboxError          the REPL worker could not be started or talked to

Errors in model-written code are not exceptions of the engine: they go back to the model as
REPL output. Budget breaches are not exceptions either: they end the run with a StopReason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlm_core.trajectory import Trajectory


class RLMError(Exception):
    """Base class of the engine's errors."""


class SandboxError(RLMError):
    """The REPL worker could not be started or stopped responding to the protocol."""


class ProviderFailure(RLMError):
    """A model call failed permanently; the run ended without a final answer."""

    def __init__(
        self,
        message: str,
        *,
        trajectory: Trajectory | None = None,
        partial_answer: str | None = None,
        status_code: int | None = None,
        error_type: str = "",
    ) -> None:
        super().__init__(message)
        self.trajectory = trajectory
        self.partial_answer = partial_answer
        self.status_code = status_code
        self.error_type = error_type
