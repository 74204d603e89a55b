"""The router's token counter against tiktoken's own count, on real text on this machine."""

from __future__ import annotations

from itertools import pairwise

import pytest

from benchmarks.routing_eval.sources import NAMES, fit
from rlm_router.rlm_core import tokens
from rlm_router.rlm_core.tokens import (
    EXACT_MAX_CHARS,
    PIECE_CACHE_MAX_ENTRIES,
    WordCounter,
    count_tokens,
    encoding,
    estimate_tokens,
    space_first_tokens,
)


def _fresh() -> WordCounter:
    return WordCounter(encoding().encode_ordinary, space_first_tokens())


@pytest.mark.parametrize("size", [1_000, 4_000, 32_000])
def test_counts_match_tiktoken_on_real_text(size: int) -> None:
    counter = _fresh()
    worst = 0.0
    exact_texts = 0
    for name in NAMES:
        for offset in (0.0, 0.5):
            text = fit(name, size, offset=offset)
            expected = count_tokens(text)
            cold, warm = counter.count(text), counter.count(text)  # unseen words, then cached
            assert cold == warm
            worst = max(worst, abs(cold / expected - 1))
            exact_texts += cold == expected
    # Exact except tab+space indentation (configuration files) and man-page tab runs.
    assert worst <= 0.008
    assert exact_texts >= 1.5 * len(NAMES)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "a   b",
        "   leading",
        "x\n    return y\n",
        "X  \n  Y",
        "a \nb",
        "a\n b",
        "  \n\n  x  y",
        "é 漢字 test  \r\n  z",
        "def f(x):\n        return {'k': [1, 2,  3]}\n\n\n",
        "<|endoftext|> special text counts as text",
        "1234567 89 0.5 -3e10  $100,000",
    ],
)
def test_whitespace_and_scripts(text: str) -> None:
    assert _fresh().count(text) == count_tokens(text)


def test_unseen_words_are_counted_in_one_call_and_learnt_exactly() -> None:
    words = " " + " ".join(f"w{i:05d}x{i * 7919 % 10007}" for i in range(500))
    counter = _fresh()
    assert counter.count(words) == count_tokens(words)
    assert counter.cached_pieces == 1 + 500  # "" and every word, from that one count
    assert counter.count(words) == count_tokens(words)


def test_a_texts_first_piece_is_counted_once_then_cached() -> None:
    calls: list[str] = []

    def encode(text: str) -> list[int]:
        calls.append(text)
        return encoding().encode_ordinary(text)

    counter = WordCounter(encode, space_first_tokens())
    texts = ["Summarize the report", "Summarize: the report", "\nSummarize the report"]
    for text in texts + texts:
        assert counter.count(text) == count_tokens(text)
    leading = [text for text in calls if not text.startswith(" ")]
    assert sorted(leading) == sorted({"Summarize", "Summarize:", "\nSummarize"})


@pytest.mark.parametrize(
    "pieces",
    [
        ["x\n", "\ny", "1", "'s", "漢字", "\t", "a\n\n", "42.5%", "don't", "é"],
        ["a\n", "\nb", "c"],  # the separator between "a\n" and "\nb" joins "\n \n"
        ["<|endoftext|>", "\r\n", "--flag=1", "x\tz"],
    ],
)
def test_what_one_call_shows_of_each_piece_is_its_own_count(pieces: list[str]) -> None:
    """Each piece is learnt as the count " " + piece has on its own, or not at all."""
    counter = _fresh()
    text = "lead " + " ".join(pieces)
    # Where a piece ending in whitespace meets one starting with it, tiktoken joins the two
    # around their space ("\n \n"): the piece-wise sum is a token over for each such pair.
    joined = sum(a[-1].isspace() and b[0].isspace() for a, b in pairwise(pieces))
    assert 0 <= counter.count(text) - count_tokens(text) <= joined
    for piece in pieces:
        assert counter.count(" " + piece) == count_tokens(" " + piece), piece


def test_the_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "PIECE_CACHE_MAX_ENTRIES", 100)
    counter = _fresh()
    for i in range(200):
        text = " ".join(f"u{i}v{j}" for j in range(16))
        assert counter.count(text) == count_tokens(text)
        assert counter.cached_pieces <= 1 + 100
    assert PIECE_CACHE_MAX_ENTRIES >= 1 << 16


def test_a_document_sent_again_is_counted_without_tiktoken() -> None:
    """Pieces up to 256 characters are learnt (a man page's rules and URLs are 65-256), so
    the next turn of a chat about the same document costs dict lookups only."""
    calls: list[str] = []

    def encode(text: str) -> list[int]:
        calls.append(text)
        return encoding().encode_ordinary(text)

    counter = WordCounter(encode, space_first_tokens())
    text = fit("man_en", 4_000)
    assert max(map(len, text.split(" "))) > 64
    first = counter.count(text)
    calls.clear()
    assert counter.count(text) == first == count_tokens(text)
    assert calls == []


def test_the_cache_holds_a_bounded_number_of_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tokens.PIECE_CACHE_MAX_CHARS >= 1 << 20  # the shipped bound, before the test's
    monkeypatch.setattr(tokens, "PIECE_CACHE_MAX_CHARS", 10_000)
    counter = _fresh()
    seeded = counter.cached_pieces
    for i in range(100):
        text = " ".join(f"{i}-{j}-" + "ab/" * 60 for j in range(8))  # pieces of ~185 chars
        assert counter.count(text) == count_tokens(text)
        assert (counter.cached_pieces - seeded) * 185 <= 10_000 + 8 * 200


def test_long_pieces_are_not_cached() -> None:
    text = "x" + "漢" * 5000 + " " + "y" * 3000
    counter = _fresh()
    assert abs(counter.count(text) - count_tokens(text)) <= 2  # long pieces: in chunks
    assert counter.cached_pieces == 1  # "" and nothing of the two long pieces


def test_short_requests_are_counted_exactly_long_ones_within_two_percent() -> None:
    text = fit("man_fr", 5_000)
    assert len(text) <= EXACT_MAX_CHARS
    assert estimate_tokens(text) == count_tokens(text)
    long_text = fit("changelogs", 200_000)
    assert abs(estimate_tokens(long_text) / count_tokens(long_text) - 1) < 0.02


def test_the_seed_holds_only_one_token_words() -> None:
    import random

    from rlm_router.rlm_core.tokens import _one_token_words

    words = list(_one_token_words(encoding()))
    assert len(words) > 50_000
    encode = encoding().encode_ordinary
    for word in random.Random(0).sample(words, 3_000):
        assert len(encode(" " + word)) == 1, word


@pytest.mark.parametrize(
    "text",
    [
        " " * 24_000,
        "a" * 24_000,
        "ab" * 12_000,
        "\n" * 24_000,
        "q" + " " * 20_000 + "z",
        "-" * 30_000,
        "x" + "漢" * 5_000,
    ],
)
def test_long_single_pieces_are_counted_within_half_a_percent(text: str) -> None:
    """One long pre-tokenizer piece (tiktoken's slow case) is counted in chunks."""
    n = _fresh().count(text)
    assert abs(n - count_tokens(text)) <= max(2, 0.005 * count_tokens(text))
