"""The routing policy as typed, immutable objects (built from YAML by ``policies.loader``).

YAML shape (every key optional except ``models``; unknown keys are errors)::

    version: 1                      # schema version, must be 1
    name: default                   # shows up in the policy version string
    models:
      direct:   {model: openai/gpt-5, api_base: null, api_key_env: null, context_window: null}
      rlm_root: {model: openai/gpt-5}
      rlm_sub:  {model: openai/gpt-5-mini}      # optional; defaults to rlm_root
    rules:                          # evaluated in this order, before the classifier
      over_window: rlm              # rlm | off   input > window_fraction * direct window
      window_fraction: 0.95         # (0, 1]: the share of the window the input may fill
      overrides:                    # first match wins; a matcher is model and/or api_key
        - {model: gpt-4o-mini, route: llm}
        - {api_key: team-batch, route: rlm}
      tools: llm                    # llm | off   requests that carry tools stay direct
      latency: llm                  # llm | off   budget below latency.rlm_min_ms stays direct
    classifier:
      artifact: default             # "default" (the shipped prior) or a path relative to the file
      threshold: 0.5                # [0, 1]: escalate when score >= threshold
    calibration:
      target_escalation_rate: null  # [0, 1]: what `policy calibrate` aims for by default
    exploration:
      rate: 0.0                     # [0, 0.5]: chance of flipping a classifier decision
      seed: null                    # int: makes the exploration draws reproducible
      max_per_hour: null            # int: explorations per clock hour, for the whole fleet
                                    # when the proxies share state (rlm_router.shared_state)
    budgets:                        # rlm_core.Budget for each RLM run; null = unlimited
      max_iterations: 30            # per recursion node
      max_depth: 2
      max_sub_calls: 1000
      max_tokens: null
      max_cost_usd: null
      max_wall_s: 600
    latency:
      rlm_min_ms: 8000              # budgets (x-latency-budget-ms) below this stay direct
      on_deadline: direct           # direct | partial: what the RLM route does at the deadline
    retry:                          # rlm_core.RetryPolicy for provider calls on both routes
      max_attempts: 4
      initial_backoff_s: 0.5
      max_backoff_s: 8.0
      multiplier: 2.0
      jitter: 0.1
      timeout_s: 120                # per attempt
      max_retry_after_s: 30
    limits:                         # checked before any routing work; null = no limit
      max_request_bytes: 33554432   # request body bytes (32 MiB): larger is answered 413
      max_messages: 4096            # more messages is answered 400
      max_input_tokens: 12000000    # estimated input tokens: more is answered 400
    admission:                      # RLM runs admitted at once, per proxy instance
      max_concurrent_rlm: 4         # null = unbounded
      max_concurrent_rlm_per_key: null   # per API key (LiteLLM's key hash or alias)
      max_concurrent_rlm_per_team: null  # per LiteLLM team
      queue_ms: 2000                # how long an escalation waits for a slot (never past its
                                    # latency budget)
      when_full: direct             # direct (when the input fits its window) | reject (429)
    sandbox:                        # rlm_core.SandboxLimits for the RLM route's REPL workers
      allow_weak_containment: false # run model code where a containment layer is missing
      prestart_workers: 2           # workers started and locked down ahead of RLM runs
      memory_mb: 2048               # memory of one sandbox's whole process tree (+ context)
      max_processes: 64             # processes of one sandbox
      cpu_seconds: 60               # CPU time per execution
      wall_seconds: 120             # wall time per execution (sub-call time excluded)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rlm_router.rlm_core import Budget, RetryPolicy, SandboxLimits

Route = Literal["llm", "rlm"]
ROUTES: tuple[Route, ...] = ("llm", "rlm")
DEFAULT_ARTIFACT = "default"


@dataclass(frozen=True, kw_only=True)
class ModelTarget:
    """One model the router sends requests to (a litellm model name)."""

    model: str
    api_base: str | None = None
    api_key_env: str | None = None
    context_window: int | None = None

    def api_key(self) -> str | None:
        """The key from ``api_key_env`` (read at call time, never stored in the policy)."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None


@dataclass(frozen=True, kw_only=True)
class Models:
    direct: ModelTarget
    rlm_root: ModelTarget
    rlm_sub: ModelTarget


@dataclass(frozen=True, kw_only=True)
class Override:
    """A per-model / per-key rule: requests matching every given matcher take ``route``."""

    route: Route
    model: str | None = None
    api_key: str | None = None

    @property
    def name(self) -> str:
        parts = [f"model={self.model}" if self.model is not None else ""]
        parts.append(f"api_key={self.api_key}" if self.api_key is not None else "")
        return "override:" + ",".join(p for p in parts if p)

    def matches(self, model: str | None, api_key: str | None) -> bool:
        return (self.model is None or self.model == model) and (
            self.api_key is None or self.api_key == api_key
        )


@dataclass(frozen=True, kw_only=True)
class Rules:
    over_window: bool = True
    window_fraction: float = 0.95
    overrides: tuple[Override, ...] = ()
    tools: bool = True
    latency: bool = True


@dataclass(frozen=True, kw_only=True)
class ClassifierSpec:
    artifact: str = DEFAULT_ARTIFACT
    threshold: float = 0.5
    # Where relative artifact paths are resolved (the policy file's directory).
    base_dir: Path | None = None

    def artifact_path(self) -> Path:
        if self.artifact == DEFAULT_ARTIFACT:
            return Path(__file__).with_name("default_classifier.json")
        path = Path(self.artifact).expanduser()
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        return path


@dataclass(frozen=True, kw_only=True)
class Calibration:
    target_escalation_rate: float | None = None


@dataclass(frozen=True, kw_only=True)
class Exploration:
    """``rate``: the chance of flipping a classifier decision. ``max_per_hour``: at most this
    many explorations per clock hour (None = no cap); once it is spent, decisions are made
    without exploring (and record propensity 1), so the estimate stays unbiased."""

    rate: float = 0.0
    seed: int | None = None
    max_per_hour: int | None = None


@dataclass(frozen=True, kw_only=True)
class LatencySettings:
    """How a latency budget is met (the policy's ``latency`` section and the dispatcher's).

    ``rlm_min_ms``: the fastest an RLM run realistically answers (tighter budgets go direct).
    ``on_deadline``: when the budget runs out mid-RLM, answer directly or return the partial.
    ``direct_reserve_ms``: time kept back for the direct fallback when ``on_deadline`` is
    "direct" (at most half the budget). ``grace_ms``: extra time the engine gets past its
    deadline to return its partial answer.
    """

    rlm_min_ms: float = 8000.0
    on_deadline: Literal["direct", "partial"] = "direct"
    direct_reserve_ms: float = 2000.0
    grace_ms: float = 250.0


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Input size limits, checked before any routing work (None = no limit).

    A body over ``max_request_bytes`` is answered 413; more than ``max_messages`` messages or
    more than ``max_input_tokens`` (the features' estimate) is answered 400.
    """

    max_request_bytes: int | None = 32 * 1024 * 1024
    max_messages: int | None = 4096
    # Above the 10M-token requests the RLM route is built for (a 10M OOLONG body is ~31 MiB).
    max_input_tokens: int | None = 12_000_000


@dataclass(frozen=True, kw_only=True)
class AdmissionSettings:
    """How many RLM runs may be in flight at once, and what happens to the next one.

    An escalation waits up to ``queue_ms`` (never past its latency budget) for a slot under
    every limit that applies to it (instance, key, team). Then ``when_full``: ``direct``
    serves it on the direct route when its input fits that window (recorded as degraded),
    otherwise, and with ``reject``, it is answered 429.
    """

    max_concurrent_rlm: int | None = 4
    max_concurrent_rlm_per_key: int | None = None
    max_concurrent_rlm_per_team: int | None = None
    queue_ms: float = 2000.0
    when_full: Literal["direct", "reject"] = "direct"


@dataclass(frozen=True, kw_only=True)
class SandboxSettings:
    """The RLM route's sandbox: its limits, and how many workers start ahead of runs.

    Where this host cannot give a containment layer (a network namespace, Landlock, a PID
    namespace, seccomp, a per-sandbox cgroup) the engine refuses to run model code unless
    ``limits.allow_weak_containment`` is set.
    """

    limits: SandboxLimits = field(default_factory=SandboxLimits)
    # Workers started and locked down ahead of RLM runs, per event loop that serves them
    # (a proxy, a Router): a pre-started worker takes tens of ms of containment start-up
    # off an escalated request and costs ~10 MB (PSS) while it waits. Two cover a 2-core
    # box's escalations arriving together; more only help bursts.
    prestart_workers: int = 2


@dataclass(frozen=True, kw_only=True)
class JudgeSettings:
    """The optional judge: a model that grades a sampled share of answers (off by default).

    ``sample_rate`` of served requests are graded by ``model`` (in a policy, as any
    ``models`` entry); its grades are recorded as feedback (source ``judge``). The judge
    spends at most ``max_cost_usd`` per process, then stops grading; each grading call may
    take ``timeout_s`` and returns at most ``max_tokens``. It runs after the answer was
    returned, so it never delays or fails a request.
    """

    model: ModelTarget | None = None
    sample_rate: float = 0.0
    max_cost_usd: float = 1.0
    timeout_s: float = 30.0
    max_tokens: int = 16
    seed: int | None = None

    @property
    def enabled(self) -> bool:
        return self.model is not None and self.sample_rate > 0.0 and self.max_cost_usd > 0.0


@dataclass(frozen=True, kw_only=True)
class Policy:
    """A validated routing policy. ``version`` identifies its exact content (name@hash)."""

    name: str
    version: str
    models: Models
    rules: Rules = field(default_factory=Rules)
    classifier: ClassifierSpec = field(default_factory=ClassifierSpec)
    calibration: Calibration = field(default_factory=Calibration)
    exploration: Exploration = field(default_factory=Exploration)
    budgets: Budget = field(default_factory=Budget)
    latency: LatencySettings = field(default_factory=LatencySettings)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limits: Limits = field(default_factory=Limits)
    admission: AdmissionSettings = field(default_factory=AdmissionSettings)
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    judge: JudgeSettings = field(default_factory=JudgeSettings)
    source: Path | None = None

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly summary (for ``policy check`` and logs)."""
        return {
            "name": self.name,
            "version": self.version,
            "source": str(self.source) if self.source else None,
            "models": {
                "direct": self.models.direct.model,
                "rlm_root": self.models.rlm_root.model,
                "rlm_sub": self.models.rlm_sub.model,
            },
            "threshold": self.classifier.threshold,
            "artifact": str(self.classifier.artifact_path()),
            "exploration_rate": self.exploration.rate,
        }
