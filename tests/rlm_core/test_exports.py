"""The public API is exactly what the contracts name (plus Usage and SandboxError)."""

from __future__ import annotations

import rlm_router.rlm_core as rlm_core


def test_exported_names() -> None:
    assert set(rlm_core.__all__) == {
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
    }
    for name in rlm_core.__all__:
        assert getattr(rlm_core, name).__module__.startswith("rlm_router.rlm_core.")


def test_error_tree() -> None:
    assert issubclass(rlm_core.ProviderFailure, rlm_core.RLMError)
    assert issubclass(rlm_core.SandboxError, rlm_core.RLMError)


def test_model_spec_repr_hides_the_key() -> None:
    spec = rlm_core.ModelSpec(model="openai/x", api_key="sk-very-secret")
    assert "sk-very-secret" not in repr(spec)
