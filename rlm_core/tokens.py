"""Token counting shared by the engine, the features and the simulated provider.

``count_span_tokens`` is the estimate the router decides on (exact up to ``EXACT_MAX_CHARS``,
sampled above; see ``router.features``); the engine's pre-flight budget checks use the same
estimate (``estimate_tokens``), so a sub-call is priced the way its request was routed.

Counts are o200k token counts, computed by ``WordCounter``: text is cut at single spaces and
each piece's count is looked up in a bounded cache of pieces seen before, so repeated words
cost a dict lookup instead of a BPE run. The sum is tiktoken's count wherever a space sits
between two non-space characters: o200k's pre-tokenizer always starts a new piece there (the
space joins the following word, and BPE merges never cross pieces), so the count of the
text is the sum of the counts of " " + piece. Runs of two or more spaces (indentation, with
or without line breaks after them) are corrected for by run length (``_RunFix``). What is
left is whitespace that mixes tabs and spaces and a space run at the very end of a text: on
152 real texts (19 sources x 2 offsets x 1K/4K/32K/200K tokens) 23 differ from tiktoken, by
at most 0.72% (configuration files and man pages indented with tabs and spaces;
tests/rlm_core/test_tokens.py). A piece
over ``LONG_PIECE`` characters is counted in chunks (tiktoken is superlinear on one long
piece), within a token per chunk.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from itertools import compress, islice, repeat
from operator import is_
from typing import TYPE_CHECKING, Protocol

from rlm_router.rlm_core.env import apply_offline_defaults

if TYPE_CHECKING:
    import tiktoken

ENCODING_NAME = "o200k_base"

# Exact up to 24K characters (~6K tokens): a warm count costs ~10-25 ns per character, a cold
# one (every word new) about what tiktoken costs, ~75 ns.
EXACT_MAX_CHARS = 24_576
# Above that, an eighth of the text (16K-48K characters) in up to 192 evenly spaced slices.
# Chosen on 19 real sources x 2 offsets (benchmarks/decision_bench.py): rms error 1.6% at 8K
# tokens, 1.8% at 32K, 1.0% at 200K, 1.2% at 1M (worst single text 2.0-3.7%); the 32K-character,
# 128-slice sample before gave rms 2.5% at 32K and 2.2% at 1M (worst 6.9% and 5.6%). A quarter
# of the text gains little (rms 1.6% at 32K) for twice the cost.
SAMPLE_BUDGET_MIN = 16_384
SAMPLE_BUDGET_DIVISOR = 8
SAMPLE_BUDGET_MAX = 49_152
SAMPLE_COUNT = 192
SAMPLE_MIN_WIDTH = 128


class Span(Protocol):
    """``text[start:end]`` without the copy (``router.request.TextSpan`` is one)."""

    @property
    def text(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    def __len__(self) -> int: ...
    def materialize(self) -> str: ...


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    """The o200k encoding (GPT-4o/GPT-5 family), loaded once from litellm's bundled files."""
    apply_offline_defaults()
    import tiktoken

    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    """Exact token count of ``text`` by tiktoken (special-token text counts as ordinary text).

    The reference the fast counter is checked against; the router uses ``word_counter()``."""
    return len(encoding().encode(text, disallowed_special=()))


# The cache holds pieces up to this long (a long piece, e.g. CJK text or base64, is rarely
# seen twice and would make the cache's memory unbounded).
PIECE_CACHE_MAX_LEN = 40
PIECE_CACHE_MAX_ENTRIES = 1 << 17  # learnt pieces (~20 MB); emptied back to the seed when full
# New pieces learnt per count: the rest of a count's unseen pieces are encoded in one call,
# so a text of unseen words costs about one tiktoken call, not one call per word.
LEARN_PER_COUNT = 16
_SPACE_RUN = re.compile(" {2,}[\r\n]*")
# tiktoken's merge is superlinear in the length of one pre-tokenizer piece: 24K spaces take
# ~30 ms, "a" * 24K ~12 ms. A piece longer than this is counted in chunks of this size (off
# by at most a token per chunk), and a run of one repeated character (the slow case) from
# the cached count of a chunk of it, so no request makes the count cost more than linear.
LONG_PIECE = 256


class _LongPieces:
    """``len(encode(text))`` for any text, in chunks when it is one long piece."""

    def __init__(self, encode: Callable[[str], list[int]]) -> None:
        self._encode = encode
        self._runs: dict[tuple[str, int], int] = {}

    def __call__(self, text: str) -> int:
        encode = self._encode
        if len(text) <= LONG_PIECE:
            return len(encode(text))
        if text.count(text[0]) == len(text):
            whole, rest = divmod(len(text), LONG_PIECE)
            return whole * self._run(text[0], LONG_PIECE) + (
                self._run(text[0], rest) if rest else 0
            )
        return sum(len(encode(text[i : i + LONG_PIECE])) for i in range(0, len(text), LONG_PIECE))

    def _run(self, char: str, length: int) -> int:
        key = (char, length)
        n = self._runs.get(key)
        if n is None:
            if len(self._runs) > 4096:
                self._runs.clear()
            n = self._runs[key] = len(self._encode(char * length))
        return n


class _RunFix(dict[str, int]):
    """Per run of 2+ spaces: how many tokens the piece-wise sum over-counts for it.

    Cut at single spaces, a run of m spaces gives m-1 empty pieces, each summed as " " (one
    token); tiktoken gives the run's first m-1 spaces one token and the last joins the next
    word. A run followed by line breaks is one piece with them (``\\s*[\\r\\n]+``).
    """

    def __init__(self, encode_len: _LongPieces) -> None:
        super().__init__()
        self._encode_len = encode_len

    def __missing__(self, run: str) -> int:
        spaces = run.rstrip("\r\n")
        breaks = run[len(spaces) :]
        m = len(spaces)
        encode_len = self._encode_len
        if breaks:
            fix = m - 1 + encode_len(" " + breaks) - encode_len(run)
        else:
            fix = m - 1 - encode_len(" " * (m - 1))
        if len(run) <= PIECE_CACHE_MAX_LEN:
            self[run] = fix
        return fix


class WordCounter:
    """Exact o200k token counts, with a cache of the pieces between single spaces.

    See the module docstring for why the piece-wise sum is tiktoken's count, and where it is
    off by a token (mixed tab/space whitespace, a space run ending the text). Thread-safe
    (the cache is a dict; a race at worst counts a piece twice).
    """

    def __init__(self, encode: Callable[[str], list[int]]) -> None:
        self._encode = encode
        self._seed: dict[str, int] = {"": 1}  # an empty piece is a lone " "
        self._pieces = dict(self._seed)
        self._encode_len = _LongPieces(encode)
        self._runs = _RunFix(self._encode_len)

    def seed(self, words: Iterable[str]) -> None:
        """Add pieces known to be one token after a space (kept when the cache is emptied)."""
        self._seed.update(dict.fromkeys(words, 1))
        self._pieces.update(self._seed)

    @property
    def cached_pieces(self) -> int:
        return len(self._pieces)

    def count(self, text: str) -> int:
        """The o200k token count of ``text``."""
        pieces = text.split(" ")
        total = self._encode_len(pieces[0]) if pieces[0] else 0
        del pieces[0]
        counts = list(map(self._pieces.get, pieces))
        total += sum(filter(None, counts))  # every cached count is >= 1; None: not cached
        if None in counts:
            total += self._count_unseen(list(compress(pieces, map(is_, counts, repeat(None)))))
        if "  " in text:
            total -= sum(map(self._runs.__getitem__, _SPACE_RUN.findall(text)))
        return total

    def _count_unseen(self, unseen: list[str]) -> int:
        """The count of pieces not in the cache: up to ``LEARN_PER_COUNT`` distinct ones are
        learnt (one tiktoken call each), the rest encoded together in one call."""
        cache, encode = self._pieces, self._encode
        learn = (p for p in dict.fromkeys(unseen) if len(p) <= PIECE_CACHE_MAX_LEN)
        for piece in islice(learn, LEARN_PER_COUNT):
            if len(cache) >= len(self._seed) + PIECE_CACHE_MAX_ENTRIES:
                cache.clear()
                cache.update(self._seed)
            cache[piece] = len(encode(" " + piece))
        counts = list(map(cache.get, unseen))
        total = sum(filter(None, counts))
        if None not in counts:
            return total
        rest = list(compress(unseen, map(is_, counts, repeat(None))))
        long = [piece for piece in rest if len(piece) > LONG_PIECE]
        if long:
            rest = [piece for piece in rest if len(piece) <= LONG_PIECE]
            total += sum(map(self._encode_len, (" " + piece for piece in long)))
        if rest:
            # " a" + " b" is cut where " a" and " b" are: the joined count is the sum.
            total += len(encode(" " + " ".join(rest)))
        return total


@lru_cache(maxsize=1)
def word_counter() -> WordCounter:
    """The process's counter (its cache is shared by every request), seeded with the words
    that are one token in o200k (~106K: a fresh process counts most words of unseen text,
    in any of the vocabulary's languages, without a BPE run; measured on 38 real texts, 72%
    of pieces hit the seeded cache against 36% for an empty one). Built once, ~0.1 s."""
    enc = encoding()
    counter = WordCounter(enc.encode_ordinary)
    counter.seed(_one_token_words(enc))
    return counter


def _one_token_words(enc: tiktoken.Encoding) -> Iterator[str]:
    encode = enc.encode_ordinary
    for raw in enc.token_byte_values():
        if len(raw) < 2 or raw[0] != 0x20 or raw[1] in b" \t\r\n":
            continue
        try:
            word = raw[1:].decode("utf-8")
        except UnicodeDecodeError:  # a token that is part of a character
            continue
        if len(word) > PIECE_CACHE_MAX_LEN or " " in word:
            continue
        # A letters-only token is its own BPE result; anything else (contractions such as
        # "I'", digits, punctuation) is checked, as the pre-tokenizer may cut it.
        if word.isalpha() or len(encode(" " + word)) == 1:
            yield word


class _Whole:
    """A whole string as a Span."""

    __slots__ = ("end", "start", "text")

    def __init__(self, text: str) -> None:
        self.text, self.start, self.end = text, 0, len(text)

    def __len__(self) -> int:
        return self.end

    def materialize(self) -> str:
        return self.text


def estimate_tokens(text: str) -> int:
    """The router's token estimate of one string (exact when short, sampled when long)."""
    return count_span_tokens((_Whole(text),))[0]


def count_span_tokens(spans: Sequence[Span], n_chars: int | None = None) -> tuple[int, bool]:
    """(token count of the spans' text, whether it was estimated from samples)."""
    total = sum(len(span) for span in spans) if n_chars is None else n_chars
    count = word_counter().count
    if total <= EXACT_MAX_CHARS:
        return sum(count(span.materialize()) for span in spans), False
    budget = min(SAMPLE_BUDGET_MAX, max(SAMPLE_BUDGET_MIN, total // SAMPLE_BUDGET_DIVISOR))
    n_slices = min(SAMPLE_COUNT, max(1, budget // SAMPLE_MIN_WIDTH))
    # Aligned slices start with a space and end before one, so the joined sample is cut where
    # the slices are, and one count over it (one tiktoken call for its unseen words) gives
    # the slices' sum.
    sample = "".join(even_slices(spans, total, n_slices, budget // n_slices, align=True))
    if not sample:
        return 0, True
    return round(count(sample) * total / len(sample)), True


def even_slices(
    spans: Sequence[Span], total: int, count: int, width: int, *, align: bool
) -> list[str]:
    """``count`` slices of about ``width`` characters, evenly spaced over the spans' text.

    With ``align`` each slice starts at and ends before whitespace, so no word is cut in two
    (a cut word encodes to more tokens than it does in place, biasing the estimate upward).
    """
    if total <= count * width:
        return [span.materialize() for span in spans]
    out: list[str] = []
    stride = total / count
    span_index = 0
    span_base = 0  # virtual offset of spans[span_index]
    for k in range(count):
        target = int(k * stride + (stride - width) / 2)
        while span_index < len(spans) - 1 and target >= span_base + len(spans[span_index]):
            span_base += len(spans[span_index])
            span_index += 1
        span = spans[span_index]
        text, start, end = span.text, span.start, span.end
        lo = max(start, start + target - span_base)
        hi = min(end, lo + width)
        if align and hi - lo > 64:
            space = text.find(" ", lo, lo + 32)
            if space >= 0:
                lo = space  # keep the space: tiktoken joins it to the word
            space = text.rfind(" ", hi - 32, hi)
            if space >= lo:
                hi = space
        out.append(text[lo:hi])
    return out
