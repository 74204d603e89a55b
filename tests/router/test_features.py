"""Features: exact vs estimated token counts, density on samples, cues from the question."""

from __future__ import annotations

import time

import pytest

from rlm_router.rlm_core.tokens import count_tokens
from rlm_router.router import ChatRequest, RequestFeatures, extract_features
from rlm_router.router.features import (
    EXACT_MAX_CHARS,
    FEATURE_NAMES,
    REPLY_PRIMER_TOKENS,
    TOKENS_PER_MESSAGE,
)
from rlm_router.sim.tasks import generate


def _features(family: str, n_tokens: int, seed: int = 0, window: int = 272_000) -> RequestFeatures:
    task = generate(family, n_tokens=n_tokens, seed=seed)
    return extract_features(ChatRequest.parse({"messages": task.messages()}), context_window=window)


def test_small_inputs_are_counted_exactly() -> None:
    text = "How many r's are in strawberry?"
    assert len(text) <= EXACT_MAX_CHARS
    features = extract_features(
        ChatRequest.parse({"messages": [{"role": "user", "content": text}]})
    )
    assert features.tokens_estimated == 0
    assert features.n_tokens == count_tokens(text) + TOKENS_PER_MESSAGE + REPLY_PRIMER_TOKENS


@pytest.mark.parametrize("family", ["oolong", "niah"])
def test_large_inputs_are_estimated_within_two_percent(family: str) -> None:
    task = generate(family, n_tokens=200_000, seed=1)
    req = ChatRequest.parse({"messages": task.messages()})
    features = extract_features(req)
    exact = count_tokens(task.messages()[-1]["content"]) + TOKENS_PER_MESSAGE + REPLY_PRIMER_TOKENS
    assert features.tokens_estimated == 1
    assert abs(features.n_tokens / exact - 1) < 0.02


def test_cost_stays_flat_as_inputs_grow() -> None:
    small = generate("oolong", n_tokens=100_000, seed=0).messages()
    big = [{"role": "user", "content": small[-1]["content"] * 20}]

    def best_of(messages: list[dict[str, str]]) -> float:
        req = ChatRequest.parse({"messages": messages})
        best = float("inf")
        for _ in range(5):
            # CPU time of this thread: waiting for a core on a loaded host does not count.
            start = time.thread_time()
            extract_features(req)
            best = min(best, time.thread_time() - start)
        return best

    # 20x the input, not 20x the time (sampling), with slack for a shared CPU.
    assert best_of(big) < 4 * best_of(small) + 0.002


def test_density_separates_records_from_prose() -> None:
    records = _features("oolong", 20_000)
    prose = _features("niah", 20_000)
    assert records.record_line_frac > 0.5 > prose.record_line_frac
    assert records.digit_rate > prose.digit_rate
    assert 0 < prose.compress_ratio < 1


def test_cues_come_from_the_question_only() -> None:
    pairs = _features("oolong_pairs", 8_000)
    needle = _features("niah", 8_000)
    assert pairs.pair_cues >= 1 and pairs.lookup_cues == 0
    assert needle.lookup_cues >= 1 and needle.pair_cues == 0 and needle.agg_cues == 0


def test_window_ratio_and_request_flags() -> None:
    body = {
        "messages": [{"role": "user", "content": "hello"}],
        "stream": True,
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "metadata": {"latency_budget_ms": 300},
    }
    features = extract_features(ChatRequest.parse(body), context_window=1000)
    assert features.window_ratio == pytest.approx(features.n_tokens / 1000)
    assert (features.stream, features.has_tools, features.n_turns) == (1, 1, 1)
    assert (features.has_latency_budget, features.latency_budget_ms) == (1, 300.0)


def test_features_are_plain_numbers() -> None:
    values = _features("qa", 1_000).as_dict()
    assert tuple(values) == FEATURE_NAMES
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values.values())
