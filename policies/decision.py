"""A routing decision and how it is made: hard rules first, then the classifier's score."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlm_router.policies.classifier import LinearClassifier
from rlm_router.policies.schema import Policy, Route
from rlm_router.policies.screen import Screen

if TYPE_CHECKING:
    from rlm_router.policies.features import RequestFeatures

TOP_CONTRIBUTIONS = 5


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one request goes, and why.

    ``score`` is the classifier's probability that the RLM route is better (always computed,
    also when a rule decided; for rule ``screened``, the highest score any request of its
    size could get, see ``policies.screen``). ``rule`` names the hard rule that fired, if any.
    ``contributions`` are the largest per-term contributions to the score, in log-odds.
    ``exploration`` is true when the route was flipped for exploration; ``propensity`` is the
    probability with which the chosen route was taken (1.0 when a rule decided).
    ``model`` is the model that serves the route (direct model, or the RLM root model).
    ``warning`` is set when the router is serving on a fallback policy or classifier.
    """

    id: str
    route: Route
    score: float
    threshold: float
    rule: str | None
    contributions: tuple[tuple[str, float], ...]
    features: RequestFeatures
    policy_version: str
    exploration: bool
    propensity: float
    model: str
    warning: str | None = None

    def explain(self) -> str:
        """A few human-readable lines: the route, the reason, the top contributions."""
        f = self.features
        tokens = f"{f.n_tokens:,} tokens{' (estimated)' if f.tokens_estimated else ''}"
        lines = [f"route: {self.route} -> {self.model}"]
        lines.append(f"decision: {self.id}, policy {self.policy_version}")
        if self.rule == "screened":
            lines.append(
                f"reason: rule screened: at this size no instruction or data could reach the "
                f"threshold (highest possible score {self.score:.3f} < {self.threshold:.3f}); "
                "the instruction and the data were not read"
            )
        elif self.rule is not None:
            lines.append(f"reason: rule {self.rule} fired; score {self.score:.3f} was not used")
        else:
            side = ">=" if self.score >= self.threshold else "<"
            lines.append(
                f"reason: classifier score {self.score:.3f} {side} threshold {self.threshold:.3f}"
            )
        if self.exploration:
            lines.append(f"exploration: route flipped (propensity {self.propensity:.3f})")
        lines.append(
            f"input: {tokens}, {100 * f.window_ratio:.1f}% of a {f.context_window:,}-token window; "
            f"turns {f.n_turns}, tools {bool(f.has_tools)}, stream {bool(f.stream)}"
            + (f", latency budget {f.latency_budget_ms:.0f} ms" if f.has_latency_budget else "")
        )
        if self.rule != "screened":
            lines.append(f"task: {task_summary(f)}")
            lines.append(
                f"data: {100 * f.dense_frac:.0f}% dense lines (records "
                f"{100 * f.record_line_frac:.0f}%, code {100 * f.code_line_frac:.0f}%, prose "
                f"{100 * f.prose_line_frac:.0f}%)"
            )
        if self.contributions:
            parts = ", ".join(f"{name} {value:+.2f}" for name, value in self.contributions)
            lines.append(f"evidence terms (log-odds toward rlm): {parts}")
        if self.warning:
            lines.append(f"warning: {self.warning}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "route": self.route,
            "model": self.model,
            "score": self.score,
            "threshold": self.threshold,
            "rule": self.rule,
            "contributions": {name: value for name, value in self.contributions},
            "features": self.features.as_dict(),
            "policy_version": self.policy_version,
            "exploration": self.exploration,
            "propensity": self.propensity,
            "warning": self.warning,
        }


TASK_KINDS = ("chat", "lookup", "aggregate", "pairwise", "multihop")


def task_summary(features: RequestFeatures) -> str:
    """ "aggregate 0.83 (lookup 0.10, ...)": the task kind read from the instruction."""
    probs = sorted(
        ((kind, float(getattr(features, f"task_{kind}"))) for kind in TASK_KINDS),
        key=lambda item: -item[1],
    )
    rest = ", ".join(f"{kind} {p:.2f}" for kind, p in probs[1:])
    return f"{probs[0][0]} {probs[0][1]:.2f} ({rest})"


def hard_rule(
    policy: Policy, features: RequestFeatures, *, model: str | None, api_key: str | None
) -> tuple[str, Route] | None:
    """The first hard rule that fires, in the documented order, or None."""
    rules = policy.rules
    if rules.over_window and features.n_tokens > rules.window_fraction * features.context_window:
        return "over_window", "rlm"
    for override in rules.overrides:
        if override.matches(model, api_key):
            return override.name, override.route
    if rules.tools and features.has_tools:
        return "tools", "llm"
    if (
        rules.latency
        and features.has_latency_budget
        and features.latency_budget_ms < policy.latency.rlm_min_ms
    ):
        return "latency_budget", "llm"
    return None


def decide(
    policy: Policy,
    classifier: LinearClassifier,
    features: RequestFeatures,
    *,
    model: str | None = None,
    api_key: str | None = None,
    rng: random.Random | None = None,
    policy_version: str | None = None,
    warning: str | None = None,
    explore: bool = True,
    screen: Screen | None = None,
) -> Decision:
    """Apply ``policy`` to ``features``: rules, then the screen, then score vs threshold,
    then exploration (``explore=False``: none this time, e.g. the exploration budget is
    spent). ``screen`` (``policies.screen``): a request under its limit was screened by the
    feature extraction; it goes direct with rule ``screened`` and the screen's score bound."""
    threshold = policy.classifier.threshold
    fired = hard_rule(policy, features, model=model, api_key=api_key)
    under = None
    if fired is None and screen is not None and features.n_tokens < screen.limit:
        under = screen
    contributions: tuple[tuple[str, float], ...] = ()
    if under is not None:
        score = under.score_bound(features.n_tokens)
    else:
        score, contributions = classifier.score(features)
    exploring = False
    propensity = 1.0
    rule: str | None
    if fired is not None:
        rule, route = fired
    elif under is not None:
        rule, route = "screened", "llm"
    else:
        rule = None
        route = "rlm" if score >= threshold else "llm"
        rate = policy.exploration.rate if explore else 0.0
        if rate > 0.0:
            draw = (rng or random).random()
            exploring = draw < rate
            if exploring:
                route = "llm" if route == "rlm" else "rlm"
            propensity = rate if exploring else 1.0 - rate
    top = sorted(contributions, key=lambda item: -abs(item[1]))[:TOP_CONTRIBUTIONS]
    target = policy.models.direct if route == "llm" else policy.models.rlm_root
    return Decision(
        id=uuid.uuid4().hex,
        route=route,
        score=score,
        threshold=threshold,
        rule=rule,
        contributions=tuple(top),
        features=features,
        policy_version=policy_version or f"{policy.version}/{classifier.version}",
        exploration=exploring,
        propensity=propensity,
        model=target.model,
        warning=warning,
    )
