"""Policy YAML validation: every mistake names file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlm_router.policies import PolicyError, load_policy, parse_policy
from rlm_router.policies.loader import DEFAULT_POLICY_PATH
from rlm_router.rlm_core import Budget, RetryPolicy

MINIMAL = """\
models:
  direct: {model: openai/gpt-5}
  rlm_root: {model: openai/gpt-5}
"""


def _error(tmp_path: Path, text: str) -> PolicyError:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.file == str(path)
    assert str(info.value).startswith(f"{path}:")
    return info.value


def test_the_shipped_default_loads() -> None:
    policy = load_policy()
    assert policy.source == DEFAULT_POLICY_PATH
    assert policy.models.direct.model == "openai/sim-large"
    assert policy.models.rlm_sub.model == "openai/sim-mini"
    assert isinstance(policy.budgets, Budget) and policy.budgets.max_depth == 2
    assert isinstance(policy.retry, RetryPolicy)
    assert policy.latency.on_deadline == "direct"
    assert policy.limits.max_request_bytes == 32 * 1024 * 1024
    assert policy.admission.max_concurrent_rlm == 4
    assert policy.admission.when_full == "direct"
    assert policy.version.startswith("default@")
    assert policy.classifier.artifact_path().name == "default_classifier.json"


def test_sandbox_settings_reach_the_engine(tmp_path: Path) -> None:
    from rlm_router.router.dispatch_settings import DispatchSettings

    default = DispatchSettings.from_policy(load_policy()).engine()
    assert default.limits.allow_weak_containment is False  # never weak unless asked for
    path = tmp_path / "p.yaml"
    path.write_text(
        MINIMAL + "sandbox:\n  allow_weak_containment: true\n  prestart_workers: 2\n"
        "  memory_mb: 512\n  wall_seconds: 30\n"
    )
    settings = DispatchSettings.from_policy(load_policy(path))
    limits = settings.engine().limits
    assert limits.allow_weak_containment is True
    assert (limits.memory_mb, limits.wall_seconds, settings.prestart_workers) == (512, 30.0, 2)


def test_a_minimal_policy_gets_defaults() -> None:
    policy = parse_policy(MINIMAL)
    assert policy.models.rlm_sub == policy.models.rlm_root
    assert policy.classifier.threshold == 0.5 and policy.exploration.rate == 0.0
    assert policy.rules.over_window and policy.rules.tools and policy.rules.latency


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    error = _error(tmp_path, MINIMAL + "rules:\n  tools: [llm\n")
    assert error.line is not None and error.line >= 5
    assert "invalid YAML" in str(error)


def test_unknown_keys_are_errors(tmp_path: Path) -> None:
    error = _error(tmp_path, MINIMAL + "classifier:\n  threshhold: 0.3\n")
    assert (error.line, error.key) == (5, "classifier.threshhold")
    assert "unknown key" in str(error) and "threshold" in str(error)


def test_unknown_top_level_key(tmp_path: Path) -> None:
    error = _error(tmp_path, "modles: {}\n" + MINIMAL)
    assert (error.line, error.key) == (1, "modles")


@pytest.mark.parametrize(
    ("extra", "key", "expected"),
    [
        ("classifier:\n  threshold: 1.5\n", "classifier.threshold", "in [0.0, 1.0]"),
        ("classifier:\n  threshold: high\n", "classifier.threshold", "expected a number"),
        ("exploration:\n  rate: 0.9\n", "exploration.rate", "in [0.0, 0.5]"),
        ("budgets:\n  max_depth: two\n", "budgets.max_depth", "expected an integer"),
        ("budgets:\n  max_iterations: 0\n", "budgets.max_iterations", "integer in [1"),
        ("rules:\n  tools: maybe\n", "rules.tools", "expected one of llm, off"),
        ("latency:\n  on_deadline: never\n", "latency.on_deadline", "direct, partial"),
        ("rules:\n  overrides: {model: x}\n", "rules.overrides", "expected a list"),
        ("rules:\n  overrides:\n    - {route: llm}\n", "rules.overrides[0].route", "matcher"),
        (
            "rules:\n  overrides:\n    - {model: x, route: fast}\n",
            "rules.overrides[0].route",
            "llm, rlm",
        ),
        ("retry:\n  max_attempts: true\n", "retry.max_attempts", "expected an integer"),
        ("budgets: [1, 2]\n", "budgets", "expected a mapping"),
        ("limits:\n  max_request_bytes: 0\n", "limits.max_request_bytes", "integer in [1"),
        ("limits:\n  max_messages: many\n", "limits.max_messages", "expected an integer"),
        ("admission:\n  max_concurrent_rlm: -1\n", "admission.max_concurrent_rlm", "[1"),
        ("admission:\n  when_full: drop\n", "admission.when_full", "direct, reject"),
        ("admission:\n  queue_s: 3\n", "admission.queue_s", "unknown key"),
        (
            "sandbox:\n  allow_weak_containment: please\n",
            "sandbox.allow_weak_containment",
            "expected true or false",
        ),
        ("sandbox:\n  allow_weak_containment: 1\n", "sandbox.allow_weak_containment", "true"),
        ("sandbox:\n  prestart_workers: -1\n", "sandbox.prestart_workers", "integer in [0, 64]"),
        ("sandbox:\n  memory_mb: 8\n", "sandbox.memory_mb", "integer in [64"),
        ("sandbox:\n  allow_weak: true\n", "sandbox.allow_weak", "allow_weak_containment"),
    ],
)
def test_wrong_types_and_ranges(tmp_path: Path, extra: str, key: str, expected: str) -> None:
    error = _error(tmp_path, MINIMAL + extra)
    assert error.key == key
    assert expected in error.message
    assert error.line is not None and error.line >= 4


def test_missing_models(tmp_path: Path) -> None:
    assert _error(tmp_path, "name: x\n").key == "models"
    error = _error(tmp_path, "models:\n  direct: {model: a}\n")
    assert (error.key, error.line) == ("models.rlm_root", 2)
    error = _error(tmp_path, "models:\n  direct: {api_base: http://x}\n  rlm_root: {model: a}\n")
    assert error.key == "models.direct.model"


def test_empty_file_and_missing_file(tmp_path: Path) -> None:
    assert "empty policy" in str(_error(tmp_path, ""))
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "absent.yaml")


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    error = _error(tmp_path, MINIMAL + "name: a\nname: b\n")
    assert (error.key, error.line) == ("name", 5)


def test_model_targets_keep_api_base_and_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    text = MINIMAL.replace(
        "direct: {model: openai/gpt-5}",
        "direct: {model: openai/x, api_base: 'http://127.0.0.1:1/v1', api_key_env: MY_KEY, "
        "context_window: 1000}",
    )
    direct = parse_policy(text).models.direct
    monkeypatch.setenv("MY_KEY", "sk-test")
    assert (direct.api_base, direct.api_key(), direct.context_window) == (
        "http://127.0.0.1:1/v1",
        "sk-test",
        1000,
    )


def test_relative_artifacts_resolve_next_to_the_policy(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(MINIMAL + "classifier:\n  artifact: models/clf.json\n")
    assert load_policy(path).classifier.artifact_path() == tmp_path / "models" / "clf.json"
