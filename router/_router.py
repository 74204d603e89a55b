"""``Router``: a loaded policy + classifier that turns requests into decisions.

Everything slow happens at construction (reading YAML and the artifact, asking litellm for
context windows, the screen of ``policies.screen``); ``decide`` only parses, extracts
features and applies the policy.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import rlm_router.rlm_core.litellm_api as litellm_api
from rlm_router.policies.classifier import ArtifactError, LinearClassifier
from rlm_router.policies.decision import Decision, decide
from rlm_router.policies.loader import PolicyError, load_policy
from rlm_router.policies.schema import ClassifierSpec, ModelTarget, Policy, SandboxSettings
from rlm_router.policies.screen import Screen
from rlm_router.rlm_core.tokens import word_counter
from rlm_router.router.features import DEFAULT_CONTEXT_WINDOW, FEATURE_NAMES, extract_features
from rlm_router.router.request import ChatRequest

if TYPE_CHECKING:
    from rlm_router.rlm_core.litellm_api import ModelResponse
    from rlm_router.router.dispatch import Dispatcher, RoutedStream
    from rlm_router.telemetry import Telemetry

logger = logging.getLogger("rlm_router.router")
_FEATURES = frozenset(FEATURE_NAMES)


@dataclass(frozen=True)
class _State:
    policy: Policy
    classifier: LinearClassifier
    windows: Mapping[str, int]
    warning: str | None
    screen: Screen | None = field(init=False)

    def __post_init__(self) -> None:
        # With exploration on every request needs its features (an explored one is training
        # data), so nothing is screened.
        screen = None
        if self.policy.exploration.rate == 0.0:
            screen = Screen.build(
                self.classifier, self.policy.classifier.threshold, self.direct_window
            )
        object.__setattr__(self, "screen", screen if screen and screen.limit else None)

    @property
    def direct_window(self) -> int:
        return self.windows.get(self.policy.models.direct.model, DEFAULT_CONTEXT_WINDOW)


class Router:
    """Decides the route (``llm`` or ``rlm``) of chat-completion requests under a policy.

    ``policy``, ``classifier`` and ``windows`` (context window per model name) are the live
    objects; ``warning`` is set while the router serves on a fallback (a classifier artifact
    that failed to load, or a reload that failed) and is copied onto every decision.
    ``telemetry`` (a ``telemetry.Telemetry``) records what ``acompletion`` does; without
    one, spans and metrics go through the OpenTelemetry API to the application's SDK (no-op
    when it configured none; ``Telemetry.from_env()`` turns on the embedded default).
    """

    def __init__(
        self,
        policy: Policy,
        classifier: LinearClassifier,
        *,
        windows: Mapping[str, int] | None = None,
        seed: int | None = None,
        warning: str | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._state = _State(policy, classifier, windows or resolve_windows(policy), warning)
        self.telemetry = telemetry
        self._dispatcher: tuple[Policy, Dispatcher] | None = None
        chosen_seed = seed if seed is not None else policy.exploration.seed
        self.rng = random.Random(chosen_seed)

    @classmethod
    def from_config(
        cls,
        path: str | Path | None = None,
        *,
        seed: int | None = None,
        telemetry: Telemetry | None = None,
        warm: bool = False,
    ) -> Router:
        """Load a policy file (``None``: the shipped default) and its classifier.

        ``warm=True`` pays the start-up costs here (``warm_up``), not on the first request (a
        server wants that; deciding alone imports neither litellm nor scikit-learn, so a
        CLI that only decides stays fast without it).

        An invalid policy raises ``PolicyError``. A classifier artifact that cannot be loaded
        does not: the router serves with the shipped prior and says so in ``warning``.
        """
        policy = load_policy(path)
        classifier, warning = _load_classifier_or_prior(policy.classifier)
        if warning:
            logger.warning(warning)
        router = cls(policy, classifier, seed=seed, warning=warning, telemetry=telemetry)
        if warm:
            router.warm_up()
        return router

    def warm_up(self) -> float:
        """Pay the start-up costs now instead of on the first request; returns the seconds.

        Measured on a fresh process: the first decision loaded tiktoken's encoding (~0.27 s)
        and seeded the token counter's cache (~0.1 s)
        and the feature extractor's code paths, and the first escalated or direct call
        imported litellm (~2-3 s). Here: litellm is imported and its completion path run
        once on a mocked reply (no network), the encoding loaded, one
        decision made on a short request (without touching the exploration draws: a
        private random source) and the dispatcher built.
        """
        started = time.perf_counter()
        litellm_api.warm_up()
        word_counter()  # tiktoken's encoding and the counter's seeded cache
        state = self._state
        request = ChatRequest.parse(_WARM_UP_BODY)
        features = extract_features(request, context_window=state.direct_window)
        decide(state.policy, state.classifier, features, rng=random.Random(0))
        _ = self.dispatcher
        return time.perf_counter() - started

    @property
    def policy(self) -> Policy:
        return self._state.policy

    @property
    def classifier(self) -> LinearClassifier:
        return self._state.classifier

    @property
    def windows(self) -> Mapping[str, int]:
        return self._state.windows

    @property
    def warning(self) -> str | None:
        return self._state.warning

    @property
    def policy_version(self) -> str:
        return f"{self.policy.version}/{self.classifier.version}"

    def decide(
        self, request: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> Decision:
        """Decide the route of one request body (raises ``InvalidRequest`` if it is malformed)."""
        return self.decide_parsed(ChatRequest.parse(request, headers))

    def decide_parsed(self, request: ChatRequest, *, explore: bool = True) -> Decision:
        """``decide`` for a request already parsed (the dispatcher needs the parts too);
        ``explore=False`` decides without exploring (the exploration budget is spent)."""
        state = self._state
        screen = state.screen
        features = extract_features(
            request,
            context_window=state.direct_window,
            screen_below=screen.limit if screen is not None else 0,
        )
        return decide(
            state.policy,
            state.classifier,
            features,
            model=request.model,
            api_key=request.api_key,
            rng=self.rng,
            warning=state.warning,
            explore=explore,
            screen=screen,
        )

    @property
    def dispatcher(self) -> Dispatcher:
        """The ``Dispatcher`` behind ``acompletion``, built from the live policy (and rebuilt
        after ``reload`` swapped it); it reports to ``telemetry``."""
        from rlm_router.router.dispatch import Dispatcher
        from rlm_router.router.dispatch_settings import DispatchSettings

        cached = self._dispatcher
        if cached is not None and cached[0] is self.policy:
            return cached[1]
        telemetry = self.telemetry if self.telemetry is not None else _app_telemetry()
        judge = None
        if self.policy.judge.enabled:  # the policy's optional judge grades sampled answers
            from rlm_router.router.judge import Judge

            judge = Judge(self.policy.judge, telemetry)
        dispatcher = Dispatcher(
            decide=self.decide,
            decide_parsed=self.decide_parsed,
            settings=DispatchSettings.from_policy(self.policy),
            telemetry=telemetry,
            judge=judge,
        )
        self._dispatcher = (self.policy, dispatcher)
        return dispatcher

    async def acompletion(self, **openai_kwargs: object) -> ModelResponse | RoutedStream:
        """Decide and dispatch (see ``router.dispatch``): a litellm ``ModelResponse``, or with
        ``stream=True`` an async iterator of chunks; the route is in ``_hidden_params``."""
        return await self.dispatcher.acompletion(**openai_kwargs)

    def reload(self, path: str | Path | None = None) -> bool:
        """Re-read the policy (default: the current one's file). On any failure keep serving
        the last good policy, record why in ``warning`` and return False."""
        source = path if path is not None else self.policy.source
        try:
            policy = load_policy(source)
            classifier = load_classifier(policy.classifier)
            windows = resolve_windows(policy)
        except (PolicyError, ArtifactError) as exc:
            warning = f"policy reload failed, still serving {self.policy_version}: {exc}"
            logger.warning(warning)
            self._state = _State(self.policy, self.classifier, self.windows, warning)
            return False
        old = self.policy.sandbox
        self._state = _State(policy, classifier, windows, None)
        _replace_pool(old, policy.sandbox)
        logger.info("policy reloaded: %s", self.policy_version)
        return True


def _replace_pool(old: SandboxSettings, new: SandboxSettings) -> None:
    """A reload that changed the sandbox limits or the pool size: stop the old pool (its
    waiting workers would otherwise stay until the loop ends) and pre-start the new one on
    the running loop (without one, the first escalation starts it)."""
    if (old.limits, old.prestart_workers) == (new.limits, new.prestart_workers):
        return
    from rlm_router.rlm_core.pool import retire_shared, shared_pool

    if old.prestart_workers > 0:
        retire_shared(old.limits, old.prestart_workers)
    if new.prestart_workers > 0:
        with contextlib.suppress(RuntimeError):  # no running loop
            shared_pool(new.limits, new.prestart_workers)


_WARM_UP_BODY = {
    "model": "auto",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {
            "role": "user",
            "content": "Context:\n2026-01-01 || user 1 || ok\nHow many users are there?",
        },
    ],
}


def load_classifier(spec: ClassifierSpec) -> LinearClassifier:
    return LinearClassifier.load(spec.artifact_path(), feature_names=_FEATURES)


def _load_classifier_or_prior(spec: ClassifierSpec) -> tuple[LinearClassifier, str | None]:
    try:
        return load_classifier(spec), None
    except ArtifactError as exc:
        prior = load_classifier(ClassifierSpec())
        return prior, f"{exc}; serving with the shipped prior classifier {prior.version}"


def resolve_windows(policy: Policy) -> dict[str, int]:
    """Context window per model of the policy: the YAML's value, else litellm's model info."""
    windows: dict[str, int] = {}
    models = policy.models
    for target in (models.direct, models.rlm_root, models.rlm_sub):
        if target.model not in windows:
            windows[target.model] = context_window(target)
    return windows


def context_window(target: ModelTarget) -> int:
    """The input window of ``target`` in tokens (imports litellm unless the policy sets it)."""
    if target.context_window is not None:
        return target.context_window
    window = litellm_api.context_window(target.model)
    if window is None:
        logger.warning(
            "litellm has no model info for %s; assuming a %d-token window "
            "(set models.<role>.context_window in the policy)",
            target.model,
            DEFAULT_CONTEXT_WINDOW,
        )
        return DEFAULT_CONTEXT_WINDOW
    return window


@functools.cache
def _app_telemetry() -> Telemetry:
    """Spans and metrics through the OpenTelemetry API, so an application that configured an
    SDK gets the library's request trees with its own; built once (the API's providers
    delegate to whatever is configured, also later)."""
    from rlm_router.telemetry import Telemetry

    return Telemetry.from_api()
