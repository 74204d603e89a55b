"""The product's exceptions, one tree (it lives here because every package may import rlm_core).

    RLMRouterError                 root of everything rlm-router raises on purpose
    ├── RequestError               the caller's input is wrong; answered with HTTP 4xx
    │   │                          (also a ValueError, which is what bad input is in Python)
    │   ├── router.InvalidRequest          a malformed chat request
    │   ├── router.plugin.feedback.FeedbackInputError   a malformed feedback body
    │   ├── policies.learning.TrainingDataError   traces that cannot support training
    │   ├── telemetry.TraceFormatError     a trace line that is not OTLP span data
    │   └── ConfigError            a file or setting the user wrote (says file, line, key)
    │       ├── policies.PolicyError, policies.ArtifactError
    │       ├── router.plugin.config.ServiceConfigError
    │       └── telemetry.TelemetryConfigError
    ├── ProviderError              a model call failed; mapped from litellm's exceptions by
    │   │                          ``rlm_core.litellm_api`` (``raise … from exc``), so
    │   │                          ``__cause__`` is the provider's own error
    │   ├── ContextWindowExceeded  the input does not fit the model (not retryable)
    │   ├── ProviderRejected       4xx from the provider: auth, bad request, unknown model
    │   ├── RateLimited            429 (retryable, honouring retry-after)
    │   ├── ProviderUnavailable    5xx or no connection (retryable)
    │   └── ProviderTimeout        the call ran out of time (retryable)
    ├── PartialAnswerError         ended without a final answer; carries the best partial
    │   │                          answer and why it stopped
    │   ├── ProviderFailure        (also RLMError) a model call of the engine failed for good
    │   └── router.dispatch.EscalationFailed  (also DispatchError) RLM failed, no fallback
    ├── RLMError                   the engine could not finish
    │   ├── ProviderFailure
    │   └── SandboxError           the REPL worker could not be started or talked to
    │       └── SandboxMisbehaving the worker kept breaking the frame protocol after
    │                              restarts (ends its node: StopReason.SANDBOX_FAILURE)
    └── router.dispatch.DispatchError   no allowed route could answer (HTTP 502)
        ├── EscalationFailed
        └── LatencyBudgetExceeded  the latency budget ran out first (HTTP 504)

Errors in model-written code are not exceptions of the engine: they go back to the model as
REPL output. Budget breaches end an engine run with a StopReason, not an exception.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlm_router.rlm_core.trajectory import Trajectory


class RLMRouterError(Exception):
    """Root of the product's exceptions."""


class RequestError(RLMRouterError, ValueError):
    """The caller's input is wrong (HTTP 4xx); the message says what and where."""

    status_code = 400


class ConfigError(RequestError):
    """A configuration file or setting the user wrote is invalid."""


class ProviderError(RLMRouterError):
    """A model call failed. ``error_type`` names the provider's own error class (it is what
    spans, outcomes and training data record); ``status_code`` its HTTP status, if any."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_type: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_type = error_type or type(self).__name__
        self.retry_after_s = retry_after_s


class ContextWindowExceeded(ProviderError):
    """The input is larger than the model's context window."""


class ProviderRejected(ProviderError):
    """The provider refused the request (authentication, bad request, unknown model)."""


class RateLimited(ProviderError):
    """HTTP 429; ``retry_after_s`` is the provider's requested wait."""

    retryable = True


class ProviderUnavailable(ProviderError):
    """5xx, or the provider could not be reached."""

    retryable = True


class ProviderTimeout(ProviderError):
    """The call did not finish in time."""

    retryable = True


class PartialAnswerError(RLMRouterError):
    """Ended without a final answer: ``partial_answer`` is the best one there was."""

    def __init__(
        self, message: str, *, partial_answer: str | None = None, stopped_reason: str = "error"
    ) -> None:
        super().__init__(message)
        self.partial_answer = partial_answer
        self.stopped_reason = stopped_reason


class RLMError(RLMRouterError):
    """Base class of the engine's errors."""


class SandboxError(RLMError):
    """The REPL worker could not be started or stopped responding to the protocol."""


class SandboxMisbehaving(SandboxError):
    """The worker kept breaking the frame protocol after restarts; its node must end."""


class ProviderFailure(RLMError, PartialAnswerError):
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
        super().__init__(message, partial_answer=partial_answer, stopped_reason="provider_failure")
        self.trajectory = trajectory
        self.status_code = status_code
        self.error_type = error_type
