"""Small inline-SVG charts for the HTML report: no scripts, no network, no dependencies.

Each chart is an ``<svg class="chart">`` string whose data marks carry ``class="mark"``
(``<circle>`` for line points, ``<rect>`` for bars) with a ``<title>`` tooltip, so a browser
shows values on hover and a test can count what was drawn. An empty chart says so in text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

import numpy as np
import numpy.typing as npt

WIDTH = 560
HEIGHT = 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 58, 12, 12, 34
PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#71717a")


@dataclass(frozen=True, slots=True)
class Series:
    """One line (or one stack layer): y per x position; None leaves a gap."""

    name: str
    values: Sequence[float | None]
    color: str
    dashed: bool = False


def nice_ticks(low: float, high: float, count: int = 5, *, min_step: float = 0.0) -> list[float]:
    """Round tick values from below ``low`` up to at least ``high``."""
    if not math.isfinite(low) or not math.isfinite(high) or high <= low:
        high = low + 1.0
    raw = max((high - low) / max(count, 1), min_step)
    magnitude = 10 ** math.floor(math.log10(raw))
    candidates = [m * magnitude for m in (1, 2, 2.5, 5, 10)]
    if min_step >= 1:  # counts: whole-number steps only
        candidates = [c for c in candidates if c == int(c)]
    step = next(c for c in candidates if c >= raw)
    ticks = [math.floor(low / step) * step]
    while ticks[-1] < high - step * 1e-9:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def format_number(value: float) -> str:
    """Compact label: 1.2k, 3.4M, 0.0012."""
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.3g}M"
    if magnitude >= 1e3:
        return f"{value / 1e3:.3g}k"
    if magnitude == 0 or magnitude >= 0.01:
        return f"{value:.3g}"
    return f"{value:.2g}"


def _frame(title: str, body: str, legend: Sequence[Series] = (), marks: int = 0) -> str:
    legend_html = "".join(
        f'<span class="key"><i class="{"dashed" if s.dashed else "solid"}" '
        f'style="border-color:{s.color};background:{"none" if s.dashed else s.color}">'
        f"</i>{escape(s.name)}</span>"
        for s in legend
    )
    return (
        f'<figure class="panel"><figcaption>{escape(title)}</figcaption>'
        f'<svg class="chart" data-marks="{marks}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg">{body}</svg>'
        f'<div class="legend">{legend_html}</div></figure>'
    )


def _empty(title: str) -> str:
    body = (
        f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text>'
    )
    return _frame(title, body)


def _axes(
    ticks: Sequence[float],
    y_of: Callable[[float], float],
    x_labels: Sequence[tuple[float, str]],
    y_format: Callable[[float], str],
) -> str:
    parts = []
    for tick in ticks:
        y = y_of(tick)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(y_format(tick))}</text>"
        )
    for x, label in x_labels:
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{HEIGHT - _BOTTOM + 16}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    base = HEIGHT - _BOTTOM
    parts.append(f'<line class="axis" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{base}" y2="{base}"/>')
    return "".join(parts)


def _label_positions(
    labels: Sequence[str], x_of: Callable[[int], float]
) -> list[tuple[float, str]]:
    if not labels:
        return []
    step = max(1, math.ceil(len(labels) / 6))
    return [(x_of(i), labels[i]) for i in range(0, len(labels), step)]


def line_chart(
    title: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    y_format: Callable[[float], str] = format_number,
    y_max: float | None = None,
) -> str:
    """Lines over categorical x positions (time buckets), one point mark per value."""
    values = [v for s in series for v in s.values if v is not None]
    if not values or not x_labels:
        return _empty(title)
    ticks = nice_ticks(0.0, y_max if y_max is not None else max(max(values), 1e-12))
    top = ticks[-1]
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    n = len(x_labels)

    def x_of(i: int) -> float:
        return _LEFT + (plot_w * (i + 0.5) / n)

    def y_of(v: float) -> float:
        return _TOP + plot_h * (1 - v / top)

    parts = [_axes(ticks, y_of, _label_positions(x_labels, x_of), y_format)]
    marks = 0
    for s in series:
        segments: list[list[str]] = [[]]
        for i, value in enumerate(s.values):
            if value is None:
                segments.append([])
                continue
            segments[-1].append(f"{x_of(i):.1f},{y_of(value):.1f}")
        dash = ' stroke-dasharray="5 4"' if s.dashed else ""
        for points in segments:
            if len(points) > 1:
                parts.append(
                    f'<polyline fill="none" stroke="{s.color}" stroke-width="2"{dash} '
                    f'points="{" ".join(points)}"/>'
                )
        for i, value in enumerate(s.values):
            if value is None:
                continue
            marks += 1
            parts.append(
                f'<circle class="mark" cx="{x_of(i):.1f}" cy="{y_of(value):.1f}" r="2.6" '
                f'fill="{s.color}"><title>{escape(s.name)} · {escape(x_labels[i])}: '
                f"{escape(y_format(value))}</title></circle>"
            )
    return _frame(title, "".join(parts), series, marks)


def bar_chart(
    title: str,
    x_labels: Sequence[str],
    layers: Sequence[Series],
    *,
    y_format: Callable[[float], str] = format_number,
    marker_x: float | None = None,
    marker_label: str = "",
    counts: bool = False,
) -> str:
    """Stacked bars per x position; ``marker_x`` (fractional index) draws a vertical rule.

    ``counts``: the values are counts, so ticks are whole numbers.
    """
    n = len(x_labels)
    totals = [sum((layer.values[i] or 0.0) for layer in layers) for i in range(n)]
    if not n or not any(totals):
        return _empty(title)
    ticks = nice_ticks(0.0, max(totals), min_step=1.0 if counts else 0.0)
    top = ticks[-1]
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    slot = plot_w / n
    bar_w = max(1.0, slot * 0.8)

    def x_of(i: int) -> float:
        return _LEFT + slot * (i + 0.5)

    def y_of(v: float) -> float:
        return _TOP + plot_h * (1 - v / top)

    parts = [_axes(ticks, y_of, _label_positions(x_labels, x_of), y_format)]
    marks = 0
    for i in range(n):
        base = 0.0
        for layer in layers:
            value = layer.values[i] or 0.0
            if value <= 0:
                continue
            y_top, y_bottom = y_of(base + value), y_of(base)
            marks += 1
            parts.append(
                f'<rect class="mark" x="{x_of(i) - bar_w / 2:.1f}" y="{y_top:.1f}" '
                f'width="{bar_w:.1f}" height="{max(y_bottom - y_top, 0.5):.1f}" '
                f'fill="{layer.color}"><title>{escape(layer.name)} · {escape(x_labels[i])}: '
                f"{escape(y_format(value))}</title></rect>"
            )
            base += value
    if marker_x is not None:
        x = _LEFT + slot * marker_x
        parts.append(
            f'<line class="marker" x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" '
            f'y2="{HEIGHT - _BOTTOM}"/><text class="tick" x="{x + 4:.1f}" y="{_TOP + 10}">'
            f"{escape(marker_label)}</text>"
        )
    return _frame(title, "".join(parts), layers if len(layers) > 1 else (), marks)


def histogram(
    title: str,
    groups: Mapping[str, Sequence[float] | npt.NDArray[np.float64]],
    *,
    colors: Mapping[str, str],
    bins: Sequence[float],
    edge_format: Callable[[float], str] = format_number,
    marker: float | None = None,
    marker_label: str = "",
) -> str:
    """Counts of values per bin (``bins`` are the edges), stacked by group."""
    labels = [edge_format(low) for low in bins[:-1]]
    layers = []
    for name, values in groups.items():
        # _bin_index for all values at once: the first bin whose upper edge is above the
        # value, the last bin for values beyond it (and NaN).
        upper = np.asarray(bins[1:], dtype=np.float64)
        slots = np.searchsorted(upper, np.asarray(values, dtype=np.float64), side="right")
        slots = np.minimum(slots, len(bins) - 2)
        counts = np.bincount(slots, minlength=len(bins) - 1).astype(np.float64).tolist()
        layers.append(Series(name, counts, colors.get(name, PALETTE[-1])))
    marker_x = None
    if marker is not None and len(bins) > 1:
        index = _bin_index(marker, bins)
        low, high = bins[index], bins[index + 1]
        marker_x = index + min(max((marker - low) / ((high - low) or 1.0), 0.0), 1.0)
    return bar_chart(
        title,
        labels,
        layers,
        y_format=_count,
        marker_x=marker_x,
        marker_label=marker_label,
        counts=True,
    )


def _bin_index(value: float, bins: Sequence[float]) -> int:
    for i in range(len(bins) - 1):
        if value < bins[i + 1]:
            return i
    return len(bins) - 2


def _count(value: float) -> str:
    return format_number(value) if value != int(value) else str(int(value))
