"""The held-out routing evaluation: its shape, and that it builds real requests."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.routing_eval import fresh
from benchmarks.routing_eval.cases import CASES, CATEGORIES, LANGS
from rlm_router.router.request import ChatRequest


def test_the_set_covers_every_category_and_language() -> None:
    assert len(CASES) >= 150
    assert len({case.id for case in CASES}) == len(CASES)
    by_category = Counter(case.category for case in CASES)
    by_lang = Counter(case.lang for case in CASES)
    assert set(by_category) == set(CATEGORIES)
    assert set(by_lang) == set(LANGS)
    assert min(by_category.values()) >= 8
    assert min(by_lang.values()) >= 15
    for case in CASES:
        assert case.label in ("llm", "rlm")
        assert case.evidence


@pytest.mark.parametrize("which", list(fresh.QUESTIONS))
def test_the_fresh_sets_have_every_kind_in_every_language(which: str) -> None:
    cases = fresh.load(which)
    assert len({case.id for case in cases}) == len(cases) == 72
    kinds = Counter((case.lang, case.id.split("-")[1]) for case in cases)
    per_lang = {"short_chat": 1, "short_data": 1, "lookup": 2, "aggregation": 2}
    per_lang |= {"pairwise": 1, "multi_hop": 1, "codebase": 1}
    assert kinds == Counter({(lang, k): n for lang in LANGS for k, n in per_lang.items()})
    for case in cases:
        category, label, _ = fresh.KINDS[case.id.split("-")[1]]
        assert (case.category, case.label) == (category, label)
        assert case.category in CATEGORIES


@pytest.mark.slow
def test_every_case_is_a_valid_request_of_about_its_size() -> None:
    from rlm_router.rlm_core.tokens import count_tokens

    for case in [*CASES, *fresh.load("fresh"), *fresh.load("fresh_b")]:
        body, headers = case.body()
        request = ChatRequest.parse(body, headers)
        if case.tokens >= 16_000:
            n = count_tokens(request.context_text) + count_tokens(request.question)
            assert 0.85 * case.tokens <= n <= 1.1 * case.tokens, (case.id, n)


def test_the_training_corpus_shares_no_source_and_no_wording_with_the_eval() -> None:
    import glob

    from benchmarks.routing_eval import sources as eval_sources
    from rlm_router.policies.corpus import sources as corpus_sources
    from rlm_router.policies.corpus import templates
    from rlm_router.policies.fit_task import rows

    def files(patterns: dict[str, tuple[str, ...]]) -> set[str]:
        return {p for pats in patterns.values() for pat in pats for p in glob.glob(pat)}

    shared = files(eval_sources.SOURCE_PATHS) & files(corpus_sources.SOURCE_PATHS)
    assert shared == set()
    every = [*CASES, *fresh.load("fresh"), *fresh.load("fresh_b")]
    eval_questions = {" ".join(c.question.lower().split()) for c in every}
    corpus = {" ".join(text.lower().split()) for text, _ in rows(0)}
    wordings = {
        " ".join(t.lower().split())
        for kinds in templates.TEMPLATES.values()
        for joined in kinds.values()
        for t in joined.split("|")
    }
    assert eval_questions & corpus == set()
    assert eval_questions & wordings == set()
    # The benchmark task generators' questions stay out of the corpus too.
    from rlm_router.sim.tasks import generate

    for family in ("oolong", "oolong_pairs", "niah"):
        task = generate(family, n_tokens=2000, seed=0)
        last = " ".join(task.messages()[-1]["content"].split("\n\n")[-1].lower().split())
        assert last not in corpus


@pytest.mark.slow
@pytest.mark.parametrize("which", list(fresh.QUESTIONS))
def test_routing_bench_on_a_fresh_set_writes_its_table_and_keeps_short_traffic_direct(
    which: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks import routing_bench

    args = ["--set", which, "--out", str(tmp_path), "--complexity-max-tokens", "0", "--reps", "1"]
    assert routing_bench.main(args) == 0
    result = json.loads((tmp_path / f"routing_bench_{which}.json").read_text())
    assert result["n_cases"] == 72
    short = result["summary"]["short_direct"]
    assert short["n"] == 16 and short["agree"] == 16
    assert "-- worst misroutes" in capsys.readouterr().out
