"""Router.decide on the benchmark task families: the issue's done-when behaviours."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from rlm_router.policies import Decision
from rlm_router.router import Router
from rlm_router.sim.tasks import generate

DEFAULT = Path(__file__).parents[2] / "policies" / "default.yaml"


@pytest.fixture(scope="module")
def router() -> Router:
    return Router.from_config()


def _body(family: str, n_tokens: int, seed: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "model": "auto",
        "messages": generate(family, n_tokens=n_tokens, seed=seed).messages(),
        **extra,
    }


def _policy(tmp_path: Path, replace: dict[str, str]) -> Path:
    text = DEFAULT.read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def _assert_explained(decision: Decision) -> None:
    text = decision.explain()
    assert f"route: {decision.route}" in text
    assert decision.policy_version in text
    assert ("rule " + decision.rule) in text if decision.rule else "classifier score" in text
    if decision.rule == "screened":  # nothing of the instruction or data was read
        assert not decision.contributions and "task:" not in text
    else:
        assert decision.contributions and decision.contributions[0][0] in text
    data = decision.to_dict()
    for key in (
        "route",
        "score",
        "threshold",
        "rule",
        "features",
        "contributions",
        "policy_version",
    ):
        assert key in data
    assert 0.0 <= decision.score <= 1.0


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("family", ["chat", "qa"])
def test_short_chat_and_qa_stay_direct(router: Router, family: str, seed: int) -> None:
    decision = router.decide(_body(family, 1_000, seed))
    # Direct by the classifier, or by its screen (no instruction could escalate at this size);
    # never by a hard rule.
    assert decision.route == "llm"
    assert decision.rule in (None, "screened")
    assert decision.score < decision.threshold
    _assert_explained(decision)


@pytest.mark.parametrize("n_tokens", [64_000, 128_000])
@pytest.mark.parametrize("seed", range(3))
def test_oolong_escalates_above_a_modest_length(router: Router, n_tokens: int, seed: int) -> None:
    decision = router.decide(_body("oolong", n_tokens, seed))
    assert (decision.route, decision.rule) == ("rlm", None)
    assert decision.score >= decision.threshold
    _assert_explained(decision)


@pytest.mark.parametrize("n_tokens", [8_000, 32_000])
def test_oolong_pairs_escalates(router: Router, n_tokens: int) -> None:
    decision = router.decide(_body("oolong_pairs", n_tokens, 1))
    assert (decision.route, decision.rule) == ("rlm", None)
    _assert_explained(decision)


def test_short_oolong_stays_direct(router: Router) -> None:
    assert router.decide(_body("oolong", 2_000)).route == "llm"


@pytest.mark.parametrize("n_tokens", [4_000, 64_000, 200_000])
def test_needle_lookups_that_fit_stay_direct(router: Router, n_tokens: int) -> None:
    decision = router.decide(_body("niah", n_tokens, 2))
    assert (decision.route, decision.rule) == ("llm", None)
    _assert_explained(decision)


@pytest.mark.parametrize("family", ["niah", "qa"])
def test_anything_over_the_direct_window_escalates(family: str) -> None:
    default = Router.from_config()
    small = {"openai/sim-large": 4_000, "openai/sim-mini": 4_000}
    router = Router(default.policy, default.classifier, windows=small)
    decision = router.decide(_body(family, 8_000))
    assert (decision.route, decision.rule) == ("rlm", "over_window")
    assert decision.features.window_ratio > 1
    _assert_explained(decision)


def test_over_the_real_window_escalates(router: Router) -> None:
    decision = router.decide(_body("niah", 300_000))
    assert (decision.route, decision.rule) == ("rlm", "over_window")


def test_tight_latency_budget_keeps_a_fitting_request_direct(router: Router) -> None:
    body = _body("oolong", 64_000)
    assert router.decide(body).route == "rlm"
    decision = router.decide(body, {"x-latency-budget-ms": "1500"})
    assert (decision.route, decision.rule) == ("llm", "latency_budget")
    assert "latency budget 1500 ms" in decision.explain()
    meta = router.decide({**body, "metadata": {"latency_budget_ms": 1500}})
    assert meta.rule == "latency_budget"
    roomy = router.decide(body, {"x-latency-budget-ms": "60000"})
    assert roomy.route == "rlm"


def test_tools_stay_direct(router: Router) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    decision = router.decide(_body("oolong", 64_000, tools=tools))
    assert (decision.route, decision.rule) == ("llm", "tools")


def test_per_model_and_per_key_overrides(tmp_path: Path) -> None:
    path = _policy(
        tmp_path,
        {
            "  overrides: []": "  overrides:\n"
            "    - {model: cheap, route: llm}\n"
            "    - {api_key: batch, route: rlm}"
        },
    )
    router = Router.from_config(path)
    assert (
        router.decide({**_body("oolong", 64_000), "model": "cheap"}).rule == "override:model=cheap"
    )
    keyed = router.decide({**_body("qa", 1_000), "metadata": {"user_api_key_alias": "batch"}})
    assert (keyed.route, keyed.rule) == ("rlm", "override:api_key=batch")


def test_exploration_flips_with_logged_propensity(tmp_path: Path) -> None:
    path = _policy(tmp_path, {"  rate: 0.0 ": "  rate: 0.3 ", "  seed: null": "  seed: 7"})
    body = _body("qa", 1_000)
    runs = []
    for _ in range(2):
        router = Router.from_config(path)
        runs.append([router.decide(body) for _ in range(200)])
    assert [d.route for d in runs[0]] == [d.route for d in runs[1]]  # seeded: reproducible
    explored = [d for d in runs[0] if d.exploration]
    assert 30 < len(explored) < 90
    assert all(d.route == "rlm" and d.propensity == pytest.approx(0.3) for d in explored)
    assert all(d.propensity == pytest.approx(0.7) for d in runs[0] if not d.exploration)
    ruled = Router.from_config(path).decide(body, {"x-latency-budget-ms": "10"})
    assert (ruled.exploration, ruled.propensity) == (False, 1.0)


def test_decision_ids_are_unique(router: Router) -> None:
    body = _body("qa", 1_000)
    assert len({router.decide(body).id for _ in range(50)}) == 50


def test_window_comes_from_litellm_model_info(tmp_path: Path) -> None:
    from rlm_router.sim import register_sim_models

    register_sim_models()
    path = _policy(tmp_path, {"    context_window: 272000\n": ""})
    router = Router.from_config(path)
    assert router.windows["openai/sim-large"] == 272_000
    assert router.decide(_body("qa", 1_000)).features.context_window == 272_000


def test_missing_artifact_serves_on_the_prior_and_says_so(tmp_path: Path) -> None:
    path = _policy(tmp_path, {"artifact: default": "artifact: nowhere.json"})
    router = Router.from_config(path)
    assert router.warning is not None and "nowhere.json" in router.warning
    decision = router.decide(_body("qa", 1_000))
    assert decision.route == "llm"
    assert decision.warning == router.warning
    assert "warning:" in decision.explain()


def test_reload_keeps_the_last_good_policy(tmp_path: Path) -> None:
    artifact = tmp_path / "clf.json"
    artifact.write_text((DEFAULT.parent / "default_classifier.json").read_text())
    path = _policy(
        tmp_path,
        {"artifact: default": f"artifact: {artifact.name}", "threshold: 0.5 ": "threshold: 0.4 "},
    )
    router = Router.from_config(path)
    good = router.policy_version
    assert router.warning is None

    artifact.write_text("{not json")
    assert router.reload() is False
    assert router.policy_version == good and router.warning and "not valid JSON" in router.warning
    assert router.decide(_body("qa", 1_000)).route == "llm"

    path.write_text(path.read_text().replace("threshold: 0.4 ", "threshold: 7 "))
    assert router.reload() is False
    assert "classifier.threshold" in (router.warning or "")

    artifact.write_text((DEFAULT.parent / "default_classifier.json").read_text())
    path.write_text(path.read_text().replace("threshold: 7 ", "threshold: 0.6 "))
    assert router.reload() is True
    assert router.warning is None and router.policy.classifier.threshold == 0.6


def test_decide_is_deterministic_apart_from_the_id(router: Router) -> None:
    body = _body("oolong", 32_000, random.Random(3).randrange(100))
    a, b = router.decide(body), router.decide(body)
    assert (a.route, a.score, a.features) == (b.route, b.score, b.features)
