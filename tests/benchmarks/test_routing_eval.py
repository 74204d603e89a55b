"""The held-out routing evaluation: its shape, and that it builds real requests."""

from __future__ import annotations

from collections import Counter

import pytest

from benchmarks.routing_eval.cases import CASES, CATEGORIES, LANGS
from router.request import ChatRequest


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


@pytest.mark.slow
def test_every_case_is_a_valid_request_of_about_its_size() -> None:
    from rlm_core.tokens import count_tokens

    for case in CASES:
        body, headers = case.body()
        request = ChatRequest.parse(body, headers)
        if case.tokens >= 16_000:
            n = count_tokens(request.context_text) + count_tokens(request.question)
            assert 0.85 * case.tokens <= n <= 1.1 * case.tokens, (case.id, n)
