"""YAML → ``Policy``, with errors that point at the file, line and key.

The YAML is composed into nodes (not loaded into dicts) so every value keeps its position;
each section is read by a ``_Section`` that knows which keys it accepts, so an unknown or
misspelt key is reported at its own line instead of being silently ignored.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import yaml
from yaml.constructor import SafeConstructor

from rlm_router.policies.schema import (
    ROUTES,
    AdmissionSettings,
    Calibration,
    ClassifierSpec,
    Exploration,
    JudgeSettings,
    LatencySettings,
    Limits,
    Models,
    ModelTarget,
    Override,
    Policy,
    Route,
    Rules,
    SandboxSettings,
)
from rlm_router.rlm_core import Budget, RetryPolicy, SandboxLimits
from rlm_router.rlm_core.errors import ConfigError

DEFAULT_POLICY_PATH = Path(__file__).with_name("default.yaml")
SCHEMA_VERSION = 1
T = TypeVar("T")


class PolicyError(ConfigError):
    """An invalid policy: ``file:line: key: what was expected``."""

    def __init__(self, message: str, *, file: str, line: int | None = None, key: str | None = None):
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate a policy file (``None``: the shipped default)."""
    source = Path(path) if path is not None else DEFAULT_POLICY_PATH
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(
            f"cannot read policy file ({exc.strerror or exc})", file=str(source)
        ) from exc
    return parse_policy(text, source=source)


def parse_policy(text: str, *, source: Path | None = None) -> Policy:
    """Validate policy YAML given as text (``source`` names it in errors and anchors paths)."""
    file = str(source) if source is not None else "<policy>"
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise PolicyError(f"invalid YAML: {exc.problem or exc}", file=file, line=line) from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"invalid YAML: {exc}", file=file) from exc
    if root is None:
        raise PolicyError(
            "empty policy: expected a mapping with at least 'models'", file=file, line=1
        )
    top = _Section(root, "", file)
    version = top.get("version", _int(1, 1), SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise top.error(
            "version", f"unsupported schema version {version}; expected {SCHEMA_VERSION}"
        )
    name = top.get("name", _str, "policy")
    base_dir = source.parent if source is not None else None
    policy = Policy(
        name=name,
        version=f"{name}@{hashlib.sha256(text.encode()).hexdigest()[:10]}",
        models=_models(top.section("models", required=True)),
        rules=_rules(top.section("rules")),
        classifier=_classifier(top.section("classifier"), base_dir),
        calibration=Calibration(
            target_escalation_rate=top.section("calibration").get(
                "target_escalation_rate", _optional(_float(0.0, 1.0)), None
            )
        ),
        exploration=_exploration(top.section("exploration")),
        budgets=_budgets(top.section("budgets")),
        latency=_latency(top.section("latency")),
        retry=_retry(top.section("retry")),
        limits=_limits(top.section("limits")),
        admission=_admission(top.section("admission")),
        sandbox=_sandbox(top.section("sandbox")),
        judge=_judge(top.section("judge")),
        source=source,
    )
    top.finish()
    return policy


# --- sections ---------------------------------------------------------------------------


def _model(section: _Section, required: bool = True) -> ModelTarget:
    target = ModelTarget(
        model=section.get("model", _str, "", required=required),
        api_base=section.get("api_base", _optional(_str), None),
        api_key_env=section.get("api_key_env", _optional(_str), None),
        context_window=section.get("context_window", _optional(_int(1)), None),
    )
    section.finish()
    return target


def _models(section: _Section) -> Models:
    direct = _model(section.section("direct", required=True))
    root = _model(section.section("rlm_root", required=True))
    sub_section = section.section("rlm_sub")
    sub = _model(sub_section) if sub_section.present else root
    section.finish()
    return Models(direct=direct, rlm_root=root, rlm_sub=sub)


def _rules(section: _Section) -> Rules:
    overrides: list[Override] = []
    for item in section.sequence("overrides"):
        route = cast(Route, item.get("route", _choice(ROUTES), None, required=True))
        model = item.get("model", _optional(_str), None)
        api_key = item.get("api_key", _optional(_str), None)
        if model is None and api_key is None:
            raise item.error("route", "an override needs a matcher: 'model' and/or 'api_key'")
        item.finish()
        overrides.append(Override(route=route, model=model, api_key=api_key))
    rules = Rules(
        over_window=section.get("over_window", _choice(("rlm", "off")), "rlm") == "rlm",
        window_fraction=section.get("window_fraction", _float(0.0, 1.0, low_open=True), 0.95),
        overrides=tuple(overrides),
        tools=section.get("tools", _choice(("llm", "off")), "llm") == "llm",
        latency=section.get("latency", _choice(("llm", "off")), "llm") == "llm",
    )
    section.finish()
    return rules


def _classifier(section: _Section, base_dir: Path | None) -> ClassifierSpec:
    spec = ClassifierSpec(
        artifact=section.get("artifact", _str, "default"),
        threshold=section.get("threshold", _float(0.0, 1.0), 0.5),
        base_dir=base_dir,
    )
    section.finish()
    return spec


def _exploration(section: _Section) -> Exploration:
    exploration = Exploration(
        rate=section.get("rate", _float(0.0, 0.5), 0.0),
        seed=section.get("seed", _optional(_int()), None),
        max_per_hour=section.get("max_per_hour", _optional(_int(0)), None),
    )
    section.finish()
    return exploration


def _budgets(section: _Section) -> Budget:
    d = Budget()
    positive = _optional(_float(0.0, math.inf, low_open=True))
    budget = Budget(
        max_iterations=section.get("max_iterations", _int(1), d.max_iterations),
        max_depth=section.get("max_depth", _int(1), d.max_depth),
        max_sub_calls=section.get("max_sub_calls", _optional(_int(0)), d.max_sub_calls),
        max_tokens=section.get("max_tokens", _optional(_int(1)), d.max_tokens),
        max_cost_usd=section.get("max_cost_usd", positive, d.max_cost_usd),
        max_wall_s=section.get("max_wall_s", positive, d.max_wall_s),
    )
    section.finish()
    return budget


def _latency(section: _Section) -> LatencySettings:
    d = LatencySettings()
    on_deadline: str = section.get("on_deadline", _choice(("direct", "partial")), "direct")
    latency = LatencySettings(
        rlm_min_ms=section.get("rlm_min_ms", _float(0.0, math.inf), d.rlm_min_ms),
        on_deadline=cast(Literal["direct", "partial"], on_deadline),
    )
    section.finish()
    return latency


def _retry(section: _Section) -> RetryPolicy:
    d = RetryPolicy()
    non_negative = _float(0.0, math.inf)
    positive = _float(0.0, math.inf, low_open=True)
    retry = RetryPolicy(
        max_attempts=section.get("max_attempts", _int(1), d.max_attempts),
        initial_backoff_s=section.get("initial_backoff_s", non_negative, d.initial_backoff_s),
        max_backoff_s=section.get("max_backoff_s", non_negative, d.max_backoff_s),
        multiplier=section.get("multiplier", _float(1.0, math.inf), d.multiplier),
        jitter=section.get("jitter", _float(0.0, 1.0), d.jitter),
        timeout_s=section.get("timeout_s", positive, d.timeout_s),
        max_retry_after_s=section.get("max_retry_after_s", non_negative, d.max_retry_after_s),
    )
    section.finish()
    return retry


def _limits(section: _Section) -> Limits:
    d = Limits()
    limits = Limits(
        max_request_bytes=section.get("max_request_bytes", _optional(_int(1)), d.max_request_bytes),
        max_messages=section.get("max_messages", _optional(_int(1)), d.max_messages),
        max_input_tokens=section.get("max_input_tokens", _optional(_int(1)), d.max_input_tokens),
    )
    section.finish()
    return limits


def _admission(section: _Section) -> AdmissionSettings:
    d = AdmissionSettings()
    when_full: str = section.get("when_full", _choice(("direct", "reject")), "direct")
    admission = AdmissionSettings(
        max_concurrent_rlm=section.get(
            "max_concurrent_rlm", _optional(_int(1)), d.max_concurrent_rlm
        ),
        max_concurrent_rlm_per_key=section.get(
            "max_concurrent_rlm_per_key", _optional(_int(1)), d.max_concurrent_rlm_per_key
        ),
        max_concurrent_rlm_per_team=section.get(
            "max_concurrent_rlm_per_team", _optional(_int(1)), d.max_concurrent_rlm_per_team
        ),
        queue_ms=section.get("queue_ms", _float(0.0, math.inf), d.queue_ms),
        when_full=cast(Literal["direct", "reject"], when_full),
    )
    section.finish()
    return admission


def _sandbox(section: _Section) -> SandboxSettings:
    d = SandboxLimits()
    limits = SandboxLimits(
        allow_weak_containment=section.get("allow_weak_containment", _bool, False),
        memory_mb=section.get("memory_mb", _int(64), d.memory_mb),
        max_processes=section.get("max_processes", _int(4), d.max_processes),
        cpu_seconds=section.get("cpu_seconds", _int(1), d.cpu_seconds),
        wall_seconds=section.get(
            "wall_seconds", _float(0.0, math.inf, low_open=True), d.wall_seconds
        ),
    )
    settings = SandboxSettings(
        limits=limits,
        prestart_workers=section.get(
            "prestart_workers", _int(0, 64), SandboxSettings().prestart_workers
        ),
    )
    section.finish()
    return settings


def _judge(section: _Section) -> JudgeSettings:
    d = JudgeSettings()
    model_section = section.section("model")
    judge = JudgeSettings(
        model=_model(model_section) if model_section.present else None,
        sample_rate=section.get("sample_rate", _float(0.0, 1.0), d.sample_rate),
        max_cost_usd=section.get("max_cost_usd", _float(0.0, math.inf), d.max_cost_usd),
        timeout_s=section.get("timeout_s", _float(0.0, math.inf, low_open=True), d.timeout_s),
        max_tokens=section.get("max_tokens", _int(1, 4096), d.max_tokens),
        seed=section.get("seed", _optional(_int()), d.seed),
    )
    if judge.sample_rate > 0.0 and judge.model is None:
        raise section.error("sample_rate", "a judge needs a model (judge.model.model)")
    section.finish()
    return judge


# --- node reading -----------------------------------------------------------------------

_CONSTRUCTOR = SafeConstructor()


class _Invalid(Exception):
    """A value of the wrong type or range; the section adds file, line and key."""


Check = Callable[[Any], T]


class _Section:
    """A YAML mapping node read key by key; ``finish()`` rejects the keys nobody asked for."""

    def __init__(self, node: yaml.Node | None, path: str, file: str):
        self.path = path
        self.file = file
        self.node = node
        self.line = node.start_mark.line + 1 if node is not None else None
        self.present = node is not None
        self.entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        self.used: set[str] = set()
        if node is None:
            return
        if not isinstance(node, yaml.MappingNode):
            raise PolicyError(
                f"expected a mapping, got {_kind(node)}",
                file=file,
                line=self.line,
                key=path or None,
            )
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                raise PolicyError(
                    "keys must be strings", file=file, line=key_node.start_mark.line + 1
                )
            if key in self.entries:
                raise PolicyError(
                    "duplicate key",
                    file=file,
                    line=key_node.start_mark.line + 1,
                    key=self._key(key),
                )
            self.entries[key] = (key_node, value_node)

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> PolicyError:
        line = self.entries[key][1].start_mark.line + 1 if key in self.entries else self.line
        return PolicyError(message, file=self.file, line=line, key=self._key(key))

    def get(self, key: str, check: Check[T], default: T, *, required: bool = False) -> T:
        self.used.add(key)
        if key not in self.entries:
            if required:
                raise PolicyError(
                    "required key is missing", file=self.file, line=self.line, key=self._key(key)
                )
            return default
        node = self.entries[key][1]
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(key, f"expected a single value, got {_kind(node)}")
        try:
            return check(_CONSTRUCTOR.construct_object(node))
        except _Invalid as exc:
            raise self.error(key, str(exc)) from None

    def section(self, key: str, *, required: bool = False) -> _Section:
        self.used.add(key)
        if key not in self.entries:
            if required:
                raise PolicyError(
                    "required section is missing",
                    file=self.file,
                    line=self.line,
                    key=self._key(key),
                )
            return _Section(None, self._key(key), self.file)
        node = self.entries[key][1]
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return _Section(None, self._key(key), self.file)
        return _Section(node, self._key(key), self.file)

    def sequence(self, key: str) -> list[_Section]:
        self.used.add(key)
        if key not in self.entries:
            return []
        node = self.entries[key][1]
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(key, f"expected a list, got {_kind(node)}")
        return [
            _Section(item, f"{self._key(key)}[{i}]", self.file) for i, item in enumerate(node.value)
        ]

    def finish(self) -> None:
        for key, (key_node, _) in self.entries.items():
            if key not in self.used:
                expected = ", ".join(sorted(self.used))
                raise PolicyError(
                    f"unknown key (expected one of: {expected})",
                    file=self.file,
                    line=key_node.start_mark.line + 1,
                    key=self._key(key),
                )


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"{node.value!r}"


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _Invalid(f"expected a non-empty string, got {value!r}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {value!r}")
    return value


def _int(low: int | None = None, high: int | None = None) -> Check[int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"expected an integer, got {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise _Invalid(
                f"expected an integer in [{low}, {high if high is not None else '∞'}], got {value}"
            )
        return value

    return check


def _float(low: float, high: float, *, low_open: bool = False) -> Check[float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Invalid(f"expected a number, got {value!r}")
        number = float(value)
        too_low = number <= low if low_open else number < low
        if math.isnan(number) or too_low or number > high:
            left = "(" if low_open else "["
            right = "∞)" if math.isinf(high) else f"{high}]"
            raise _Invalid(f"expected a number in {left}{low}, {right}, got {value}")
        return number

    return check


def _choice(choices: tuple[str, ...]) -> Check[str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise _Invalid(f"expected one of {', '.join(choices)}; got {value!r}")
        return cast(str, value)

    return check


def _optional(check: Check[T]) -> Check[T | None]:
    def optional(value: Any) -> T | None:
        return None if value is None else check(value)

    return optional
