"""The screen: requests it routes without reading them go where the full decision sends them."""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path

import pytest

from benchmarks.routing_eval.sources import NAMES, fit
from rlm_router.policies.classifier import LinearClassifier, Term
from rlm_router.policies.decision import decide
from rlm_router.policies.features import FEATURE_NAMES, RequestFeatures
from rlm_router.policies.screen import Screen, max_logit
from rlm_router.router import ChatRequest, Router, extract_features
from rlm_router.sim.tasks import generate

WINDOW = 272_000
TASKS = ("task_chat", "task_lookup", "task_aggregate", "task_pairwise", "task_multihop")


@pytest.fixture(scope="module")
def router() -> Router:
    return Router.from_config()


def _random_features(rng: random.Random, n_tokens: int, window: int) -> RequestFeatures:
    """Any request of ``n_tokens``: task on the simplex (often a pure kind), data anywhere."""
    weights = [rng.random() ** 4 for _ in TASKS]
    if rng.random() < 0.5:
        weights = [1.0 if i == rng.randrange(5) else 0.0 for i in range(5)]
    total = sum(weights) or 1.0
    task = {name: w / total for name, w in zip(TASKS, weights, strict=True)}
    values: dict[str, float] = {name: rng.random() for name in FEATURE_NAMES}
    values.update(task)
    values.update(
        n_tokens=n_tokens,
        log2_tokens=math.log2(1 + n_tokens),
        context_window=window,
        window_ratio=n_tokens / window,
        task_compositional=task["task_aggregate"] + task["task_pairwise"] + task["task_multihop"],
        task_confidence=max(task.values()),
        line_density=rng.random() * 1000,
        compress_ratio=rng.random() * 1.2,
    )
    for name in ("agg_cues", "pair_cues", "multihop_cues", "lookup_cues", "n_turns"):
        values[name] = rng.randrange(4)
    return RequestFeatures(**values)  # type: ignore[arg-type]


def test_no_request_under_the_limit_reaches_the_threshold(router: Router) -> None:
    screen = Screen.build(router.classifier, router.policy.classifier.threshold, WINDOW)
    assert screen.limit > 500  # the shipped prior: short requests are screened
    rng = random.Random(0)
    highest = 0.0
    for _ in range(20_000):
        n = rng.randrange(1, screen.limit)
        features = _random_features(rng, n, WINDOW)
        score, _ = router.classifier.score(features)
        assert score <= screen.score_bound(n) + 1e-12
        highest = max(highest, score)
    assert highest < router.policy.classifier.threshold


def test_the_limit_is_tight_for_the_shipped_prior(router: Router) -> None:
    """Just above the limit some request (pure pairwise, dense data) does reach it."""
    threshold = router.policy.classifier.threshold
    screen = Screen.build(router.classifier, threshold, WINDOW)
    n = int(screen.limit * 1.1) + 1
    features = _random_features(random.Random(1), n, WINDOW)
    pairwise = dict.fromkeys(TASKS, 0.0) | {"task_pairwise": 1.0}
    features = dataclasses.replace(
        features, **pairwise, task_compositional=1.0, dense_frac=1.0, task_confidence=1.0
    )
    assert router.classifier.score(features)[0] >= threshold


def _artifact(terms: list[Term]) -> LinearClassifier:
    return LinearClassifier(version="t", intercept=-2.0, terms=tuple(terms), training={})


def _term(factors: tuple[str, ...], coef: float, **kw: object) -> Term:
    caps = kw.pop("caps", (None,) * len(factors))
    clip = kw.pop("clip", (0.0, 24.0))
    return Term("*".join(factors), factors, caps, clip[0], clip[1], 0.3, 1.5, coef)  # type: ignore[arg-type,index]


@pytest.mark.parametrize(
    "terms",
    [
        # caps, clips that bind, products of two task kinds, squares, negative coefficients
        [
            _term(("task_pairwise", "log2_tokens"), 2.0, clip=(0.0, 6.0)),
            _term(("task_aggregate",), -1.0),
        ],
        [
            _term(("task_pairwise", "task_aggregate", "log2_tokens"), 3.0),
            _term(("dense_frac",), 1.0),
        ],
        [_term(("log2_tokens", "log2_tokens"), 0.05), _term(("task_multihop",), 0.5)],
        [_term(("pair_cues", "log2_tokens"), 1.0, caps=(1.0, None)), _term(("digit_rate",), -2.0)],
        [_term(("task_confidence", "window_ratio"), 5.0), _term(("code_line_frac",), 0.7)],
    ],
)
def test_the_bound_holds_for_other_artifacts(terms: list[Term]) -> None:
    classifier = _artifact(terms)
    rng = random.Random(2)
    for low, high in ((0, 64), (500, 600), (4_000, 5_000), (100_000, 120_000)):
        bound = max_logit(classifier, low, high, WINDOW)
        assert bound is not None
        for _ in range(2_000):
            features = _random_features(rng, rng.randint(low, high), WINDOW)
            score, _ = classifier.score(features)
            assert math.log(score / (1 - score)) <= bound + 1e-9


def test_an_unbounded_term_disables_the_screen() -> None:
    classifier = _artifact([_term(("question_chars",), 1.0, clip=(0.0, math.inf))])
    assert Screen.build(classifier, 0.5, WINDOW).limit == 0


def _bodies() -> list[dict[str, object]]:
    bodies: list[dict[str, object]] = []
    for family in ("oolong_pairs", "oolong", "niah", "chat", "qa", "multihop"):
        for n in (500, 700, 1_000, 1_100):
            bodies.append({"messages": generate(family, n_tokens=n, seed=n).messages()})
    for name in NAMES:
        text = fit(name, 900)
        ask = "Which pairs of entries above share a value? List every pair."
        bodies.append({"messages": [{"role": "user", "content": f"{ask}\n\n{text}"}]})
        bodies.append(
            {"messages": [{"role": "system", "content": ask}, {"role": "user", "content": text}]}
        )
    return bodies


def test_screened_requests_route_as_the_full_decision(router: Router) -> None:
    screened = 0
    for body in _bodies():
        decision = router.decide(body)
        full = extract_features(ChatRequest.parse(body), context_window=WINDOW)
        reference = decide(router.policy, router.classifier, full)
        assert decision.route == reference.route
        if decision.rule == "screened":
            screened += 1
            assert reference.score <= decision.score < decision.threshold
            assert "screened" in decision.explain()
        else:
            assert decision.features == full
    assert screened > 20


def test_nothing_is_screened_with_exploration_on(tmp_path: Path) -> None:
    from rlm_router.policies.loader import DEFAULT_POLICY_PATH

    policy = tmp_path / "policy.yaml"
    text = Path(DEFAULT_POLICY_PATH).read_text()
    policy.write_text(text.replace("rate: 0.0 ", "rate: 0.1 ", 1))
    router = Router.from_config(policy)
    assert router.policy.exploration.rate == 0.1
    for body in _bodies()[:8]:
        decision = router.decide(body)
        assert decision.rule != "screened"
        assert decision.features.task_confidence > 0
