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
tests/rlm_core/test_tokens.py). The pieces a count has not seen are encoded in one tiktoken
call, and every one of them is learnt from it: the tokens that start with a space start a
piece. A piece over ``LONG_PIECE`` characters is counted in chunks (tiktoken is superlinear
on one long piece), within a token per chunk.

Samples are cut at the same single spaces (``token_sample``), so their count is the count
their characters have in place.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from functools import lru_cache
from itertools import compress, repeat
from operator import is_, sub
from typing import TYPE_CHECKING

from rlm_router.rlm_core.env import apply_offline_defaults
from rlm_router.rlm_core.token_sample import ALIGN_WINDOW, Span, aligned_sample, slice_targets

if TYPE_CHECKING:
    import tiktoken

ENCODING_NAME = "o200k_base"

# Exact up to 36K characters (8K tokens of all 19 real sources but the densest): on real
# text a count costs ~50 ns per character once its words are cached and ~120 ns when half of
# them are new (this machine's tiktoken), 2-4 ms at the limit: under 1% of a direct call on
# 8K tokens (over a second).
EXACT_MAX_CHARS = 36_864
# Above that, an eighth of the text (16K-48K characters) in slices of 128 characters, one
# per stratum, at a jittered place in it (``token_sample``). Tokens per character differ by
# ~30% between 128-character slices of real text (dpkg's database, man pages, code), so the
# error is sampling error, not bias, and falls with the characters counted. On 19 real
# sources x 4 offsets, rms error / worst text (slices of 256 evenly spaced before):
#   32K tokens (16K counted): 1.6% / 3.9%  ->  1.5% / 4.4%
#   200K (48K counted):       1.0% / 3.2%  ->  1.0% / 2.7%
#   1M (48K counted):         1.2% / 5.3%  ->  1.2% / 4.4%
# 64K counted would give 0.9% / 2.4-2.6% at 200K and 1M, and 128K ~0.5% / 1.5-2.1%, but a
# count costs ~100 ns per piece between spaces even with every piece cached (the lookups
# miss the CPU caches: 13-18 ns per character): 64K characters put the 10M-token decision
# at 2.5-4.5 ms against 1.8-2.8 ms with 48K (p50, quiet), too near the 5 ms it has; and at
# 32K tokens the decision has 1 ms, ~0.3 ms of it left.
SAMPLE_BUDGET_MIN = 16_384
SAMPLE_BUDGET_DIVISOR = 8
SAMPLE_BUDGET_MAX = 49_152
SAMPLE_WIDTH = 128
SAMPLE_JITTER = 1.0


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


# The cache holds pieces up to this long. Longer ones (CJK text, base64) are rarely seen
# twice. Pieces of 65-256 characters are common where a document is sent again (the next
# turn of a chat about it): man pages' comment rules (.\"*****) and URLs followed by a line
# break, a config file's "KEY=value\n#KEY=value" stretches. At 64, 16-66 such pieces went
# through tiktoken again on every count of a 32K-token man page's sample (~0.2 ms of 0.7).
PIECE_CACHE_MAX_LEN = LONG_PIECE = 256
LEADING_CACHE_MAX_ENTRIES = 1 << 14  # first pieces of texts; emptied when full
# Learnt pieces: emptied back to the seed when either bound is passed (~20-30 MB at most).
PIECE_CACHE_MAX_ENTRIES = 1 << 17
PIECE_CACHE_MAX_CHARS = 1 << 22
# Added for each piece the cache has not seen: one pass over the pieces sums the counts and,
# in the multiples of this, how many are missing (no list of the lookups, no second scan).
_MISSING = 1 << 40
# Two literal spaces first (" {2,}" is the same runs): the regex engine then skips to
# candidate runs at C speed instead of stopping at every single space. On a 49K-character
# sample with 8K single spaces (a changelog's), 0.7 -> 0.16 ms.
_SPACE_RUN = re.compile("  [ ]*[\r\n]*")
# tiktoken's merge is superlinear in the length of one pre-tokenizer piece: 24K spaces take
# ~30 ms, "a" * 24K ~12 ms. A piece longer than LONG_PIECE is counted in chunks of that size
# (off by at most a token per chunk), and a run of one repeated character (the slow case) from
# the cached count of a chunk of it, so no request makes the count cost more than linear.
_GUARD = "a"  # one token after a space, and no whitespace at either end


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

    def __init__(self, encode: Callable[[str], list[int]], space_first: bytes) -> None:
        """``space_first[t]`` is 1 where token ``t``'s bytes start with a space."""
        self._encode = encode
        self._space_first = space_first
        self._seed: dict[str, int] = {"": 1}  # an empty piece is a lone " "
        self._pieces = dict(self._seed)
        self._learnt_chars = 0  # characters in the learnt pieces' keys
        # A text's first piece has no space before it, so its count is not the cached
        # " " + piece one. Cached apart: otherwise every count ran tiktoken on it (its one
        # tiktoken call for a short chat), which also drops and retakes the GIL: 3.2 -> 1.7 us
        # per short chat alone, up to ~0.15 ms of wall time in the proxy's event loop at 50
        # clients where the exporter thread takes the GIL meanwhile (cProfile).
        self._leading: dict[str, int] = {}
        self._encode_len = _LongPieces(encode)
        self._runs = _RunFix(self._encode_len)

    def seed(self, words: Iterable[str]) -> None:
        """Add pieces known to be one token after a space (kept when the cache is emptied)."""
        self._seed.update(dict.fromkeys(_compact(list(words)), 1))
        self._pieces.update(self._seed)

    @property
    def cached_pieces(self) -> int:
        return len(self._pieces)

    def count(self, text: str) -> int:
        """The o200k token count of ``text``."""
        pieces = text.split(" ")
        first = pieces[0]
        get = self._pieces.get
        # The first piece is summed with the others, then taken off: cheaper than a copy
        # without it. On a 33K-character sample of a changelog, 533 -> 395 us.
        missing, total = divmod(
            sum(map(get, pieces, repeat(_MISSING))) - get(first, _MISSING), _MISSING
        )
        if first:
            total += self._leading_count(first)
        if missing:
            del pieces[0]
            total += self._count_unseen(
                list(compress(pieces, map(is_, map(get, pieces), repeat(None))))
            )
        if "  " in text:
            total -= sum(map(self._runs.__getitem__, _SPACE_RUN.findall(text)))
        return total

    def _leading_count(self, piece: str) -> int:
        """The count of a text's first piece (no space before it), cached like the others."""
        n = self._leading.get(piece)
        if n is None:
            n = self._encode_len(piece)
            if len(piece) <= PIECE_CACHE_MAX_LEN:
                if len(self._leading) >= LEADING_CACHE_MAX_ENTRIES:
                    self._leading.clear()
                self._leading[piece] = n
        return n

    def _count_unseen(self, unseen: list[str]) -> int:
        """The count of pieces not in the cache, from one tiktoken call over the distinct
        ones; what that call shows of each piece's count is learnt."""
        long = [piece for piece in unseen if len(piece) > LONG_PIECE]
        total = sum(map(self._encode_len, (" " + piece for piece in long)))
        if long:
            unseen = [piece for piece in unseen if len(piece) <= LONG_PIECE]
        distinct = list(dict.fromkeys(unseen))
        if not distinct:
            return total
        # A piece that starts with whitespace ("\nfoo") goes after the guard "a": after a
        # piece that ends with whitespace, its separator would join that whitespace
        # ("\n \n" is one piece) and neither count would show.
        pieces = [piece for piece in distinct if not piece[0].isspace()]
        if len(pieces) < len(distinct):
            for piece in distinct:
                if piece[0].isspace():
                    pieces += (_GUARD, piece)
        tokens = self._encode(" " + " ".join(pieces))
        counts = self._per_piece(tokens, len(pieces))
        if counts is None:  # not seen on real text; counted together, nothing learnt
            return total + len(self._encode(" " + " ".join(unseen)))
        learnt = dict(zip(pieces, counts, strict=True))  # the guard's count (1) is right too
        total += sum(map(learnt.__getitem__, unseen))
        cache = self._pieces
        chars = sum(map(len, learnt))
        if (
            len(cache) + len(learnt) > len(self._seed) + PIECE_CACHE_MAX_ENTRIES
            or self._learnt_chars + chars > PIECE_CACHE_MAX_CHARS
        ):
            cache.clear()
            cache.update(self._seed)
            self._learnt_chars = 0
        self._learnt_chars += chars
        cache.update(zip(_compact(learnt), learnt.values(), strict=True))
        return total

    def _per_piece(self, tokens: list[int], n_pieces: int) -> list[int] | None:
        """Each piece's token count in ``tokens``, the encoding of " " + " ".join(pieces).

        The pieces hold no space, so a token that starts with one starts a piece: the counts
        are the gaps between those tokens. None when there are fewer such tokens than pieces
        (a separator space merged into whitespace around it)."""
        starts = list(compress(range(len(tokens)), map(self._space_first.__getitem__, tokens)))
        if len(starts) != n_pieces or (starts and starts[0] != 0):
            return None
        starts.append(len(tokens))
        return list(map(sub, starts[1:], starts))


def _compact(pieces: Collection[str]) -> list[str]:
    """Copies of ``pieces`` (which hold no space) allocated side by side.

    A lookup compares the piece with the cached key, so it reads the key's memory: keys
    scattered over the heap (the seed is decoded among other objects, a learnt piece sits
    where its request's text was split) cost a TLB and cache miss each. On a 49K-character
    sample of 8K pieces looked up in the seeded cache (108K keys), 2.1 ms with the keys
    where they were made, 0.6 ms with copies made together."""
    return " ".join(pieces).split(" ") if pieces else []


@lru_cache(maxsize=1)
def word_counter() -> WordCounter:
    """The process's counter (its cache is shared by every request), seeded with the words
    that are one token in o200k (~106K: a fresh process counts most words of unseen text,
    in any of the vocabulary's languages, without a BPE run; measured on 38 real texts, 72%
    of pieces hit the seeded cache against 36% for an empty one). Built once, ~0.1 s."""
    enc = encoding()
    counter = WordCounter(enc.encode_ordinary, space_first_tokens())
    counter.seed(_one_token_words(enc))
    return counter


@lru_cache(maxsize=1)
def space_first_tokens() -> bytes:
    """1 at each o200k token id whose bytes start with a space, else 0 (~40 ms, once)."""
    enc = encoding()
    n_tokens = len(enc.token_byte_values())  # the ordinary tokens are ids 0 .. n-1
    return bytes(raw[:1] == b" " for raw in enc.decode_tokens_bytes(list(range(n_tokens))))


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
    n_slices = budget // SAMPLE_WIDTH
    if total <= n_slices * (SAMPLE_WIDTH + ALIGN_WINDOW):  # slices would overlap
        sample = "\n".join(span.materialize() for span in spans)
        joins = len(spans) - 1
    else:
        targets = slice_targets(total, n_slices, SAMPLE_WIDTH, SAMPLE_JITTER)
        sample, joins = aligned_sample(spans, targets, SAMPLE_WIDTH)
    n_sampled = len(sample) - joins
    if n_sampled <= 0:
        return 0, True
    return round((count(sample) - joins) * total / n_sampled), True


def even_slices(spans: Sequence[Span], total: int, count: int, width: int) -> list[str]:
    """``count`` slices of about ``width`` characters, evenly spaced over the spans' text."""
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
        lo = max(span.start, span.start + target - span_base)
        out.append(span.text[lo : min(span.end, lo + width)])
    return out
