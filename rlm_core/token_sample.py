"""The sample a long text's token count is estimated from (``tokens.count_span_tokens``).

Slices are placed one per stratum of the text (``slice_targets``) and both edges of each
move forward to the next single space between two non-space characters (``aligned_sample``):
o200k starts a piece there, so the joined slices are cut into exactly the pieces they have in
the text, and one count of the joined sample is the sum of the counts its characters have in
place. Moving both edges the same way keeps the sample fair: a stretch between two such
spaces is in a slice exactly when it starts inside the slice's nominal span, whatever its
length. (Moving each edge inwards, as an earlier version did, kept long stretches out:
indentation and blank lines, cheap in tokens, so code and JSON read 3-6% long.) A slice with
no such space near an edge (CJK text, base64) is cut where it falls and joined to its
neighbours with a line break, a token of its own that is taken off again.

The edges are found for all slices at once with numpy over the slices' windows (the
characters each slice can reach), not with a regex search per slice: a Python loop cost
~1.1 us a slice, which at the 1,024 slices of a long text's sample was ~1.1 ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

# How far a slice's edge moves to reach a single space (prose has one every ~6 characters,
# code and JSON every ~10-20); at most the gap between two slices (a slice's stratum is 1.5x
# its width or more), so slices never overlap.
ALIGN_WINDOW = 64
_GOLDEN = 0.6180339887498949
_LAST_TABLED = 0x3000  # the highest code point str.isspace() holds true for
_FAR = np.int64(1) << 62  # past every window: "no single space found"


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


def slice_targets(total: int, count: int, width: int, jitter: float) -> NDArray[np.int64]:
    """Where each of ``count`` slices of ``width`` starts, one per stratum of ``total // count``.

    ``jitter`` 0 puts each slice mid-stratum (systematic sampling); up to 1 moves it by a
    golden-ratio sequence over the stratum's free room. Systematic slices alias with a text
    that repeats at a period close to a multiple of the stratum (fixed-width records, a
    document pasted many times): on 19 real sources x 4 offsets at 1M tokens (a short source
    repeats there), the worst text was off by 3.9% systematic and 1.5-2.3% jittered.
    Deterministic: the same text always gets the same estimate."""
    stride = total / count
    k = np.arange(count, dtype=np.float64)
    where = 0.5 + jitter * (np.modf(k * _GOLDEN)[0] - 0.5)
    return (k * stride + where * (stride - width)).astype(np.int64)


# str.isspace() per code point up to the last one it holds for (~1 ms to build, at import:
# not in the first long request's decision).
_WHITESPACE = np.array([chr(c).isspace() for c in range(_LAST_TABLED + 1)], dtype=np.bool_)


def _is_space(codes: NDArray[np.uint32]) -> NDArray[np.bool_]:
    return _WHITESPACE[np.minimum(codes, _LAST_TABLED)] & (codes <= _LAST_TABLED)


def aligned_sample(
    spans: Sequence[Span], targets: NDArray[np.int64], width: int
) -> tuple[str, int]:
    """The slices starting at ``targets`` (offsets into the spans' joined text, ascending),
    edges moved to single spaces, joined into one text; and how many line breaks the join
    added (a slice cut where it fell is joined with one). A slice never reads past the end
    of its span (a message's end is a piece boundary of its own)."""
    n = len(targets)
    n_spans = len(spans)
    if n_spans == 1:
        only = spans[0]
        lo = only.start + targets
        end = np.full(n, only.end, dtype=np.int64)
    else:
        lengths = np.fromiter(map(len, spans), np.int64, n_spans)
        stops = np.cumsum(lengths)
        # A target belongs to the first span that ends after it (empty spans get none).
        index = np.minimum(np.searchsorted(stops, targets, side="right"), n_spans - 1)
        starts = np.fromiter((span.start for span in spans), np.int64, n_spans)
        ends = np.fromiter((span.end for span in spans), np.int64, n_spans)
        lo = starts[index] + np.maximum(0, targets - (stops - lengths)[index])
        end = ends[index]
    hi = np.minimum(end, lo + width)
    # Each slice's window: one character before it (to see what precedes a space there) to
    # as far as its end can move. The windows are joined and read as code points.
    w_lo = np.maximum(lo - 1, 0)
    w_hi = np.minimum(end, hi + ALIGN_WINDOW)
    bounds = (w_lo.tolist(), w_hi.tolist())
    if n_spans == 1 or all(span.text is spans[0].text for span in spans):
        windows = list(map(spans[0].text.__getitem__, map(slice, *bounds)))
    else:
        texts = [spans[i].text for i in index.tolist()]
        windows = [text[a:b] for text, a, b in zip(texts, *bounds, strict=True)]
    joined = "".join(windows)
    codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    sizes = w_hi - w_lo
    shift = np.cumsum(sizes) - sizes - w_lo  # a text position + shift = its joined position
    spaces = np.flatnonzero(codes == 0x20)
    spaces = spaces[(spaces > 0) & (spaces < len(codes) - 1)]
    single = spaces[~_is_space(codes[spaces - 1]) & ~_is_space(codes[spaces + 1])]
    single = np.append(single, [_FAR, _FAR])
    # The first single space at or after the slice's start whose next character is inside
    # the search's reach (a space at a text's very first character has nothing before it).
    first = single[np.searchsorted(single, lo + shift + (lo == 0))]
    found_first = first + 1 < np.minimum(end, lo + ALIGN_WINDOW) + shift
    at_end = hi >= end
    last = single[
        np.minimum(np.searchsorted(single, np.maximum(hi + shift, first + 1)), len(single) - 1)
    ]
    aligned = found_first & (at_end | (last + 1 < w_hi + shift))
    cut_lo = np.where(aligned, first, lo + shift)
    cut_hi = np.where(aligned, np.where(at_end, end + shift, last), hi + shift)
    parts = list(map(joined.__getitem__, map(slice, cut_lo.tolist(), cut_hi.tolist())))
    raw = ~aligned
    if not raw.any():
        return "".join(parts), 0
    # A slice cut where it fell is joined to both neighbours with a line break.
    joins = raw.copy()
    joins[1:] |= raw[:-1]
    joins[0] = False
    out: list[str] = []
    for part, join in zip(parts, joins.tolist(), strict=True):
        if join:
            out.append("\n")
        out.append(part)
    return "".join(out), int(joins.sum())
