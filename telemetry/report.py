"""The built-in HTML report: cost, latency and routing per route, from OTLP-JSON traces.

``render_report(records)`` returns one self-contained HTML page (inline CSS and SVG, no
scripts, no network): requests, cost and latency p50/p95 per route over time, escalation
rate, the decision score distribution, fallbacks, RLM iterations and sub-calls, and a
summary table. Missing data renders as "no data", never as an error.
"""

from __future__ import annotations

import itertools
import math
import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

import numpy as np

from rlm_router.telemetry import semconv as sc
from rlm_router.telemetry.otlp_json import TraceFormatError
from rlm_router.telemetry.records import RequestRecord, RequestScan
from rlm_router.telemetry.report_data import (
    UNKNOWN,
    BoolArray,
    FloatArray,
    IntArray,
    ReportColumns,
    ReportData,
)
from rlm_router.telemetry.svg_charts import (
    PALETTE,
    Series,
    bar_chart,
    format_number,
    histogram,
    line_chart,
)

ROUTE_COLORS = {sc.ROUTE_LLM: PALETTE[0], sc.ROUTE_RLM: PALETTE[1]}
FALLBACK_COLORS = {sc.FALLBACK_RLM_TO_LLM: PALETTE[4], sc.FALLBACK_LLM_TO_RLM: PALETTE[3]}
# Bucket widths the time axis may use, in seconds.
_BUCKET_WIDTHS = (
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600,
    3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400,
)  # fmt: skip
_TARGET_BUCKETS = 24


@dataclass(frozen=True, slots=True)
class TimeBuckets:
    """Requests grouped into equal time buckets (x axis of the time charts).

    Bucket ``i`` holds the rows ``bounds[i]:bounds[i + 1]`` of time-ordered columns.
    """

    labels: list[str]
    bounds: list[int]

    def slices(self) -> list[slice]:
        return [slice(lo, hi) for lo, hi in itertools.pairwise(self.bounds)]


def bucket_by_time(times_s: Sequence[float] | FloatArray) -> TimeBuckets:
    """About 24 buckets of a round width covering the (sorted) times' range."""
    times = np.asarray(times_s, dtype=np.float64)
    if not len(times):
        return TimeBuckets([], [0])
    start, end = float(times[0]), float(times[-1])
    width = next((w for w in _BUCKET_WIDTHS if (end - start) / w <= _TARGET_BUCKETS), 86400 * 30)
    first = math.floor(start / width) * width
    count = int((end - first) // width) + 1
    index = np.minimum(((times - first) // width).astype(np.int64), count - 1)
    bounds = np.searchsorted(index, np.arange(count + 1), side="left").tolist()
    labels = [_time_label(first + i * width, width, end - start) for i in range(count)]
    return TimeBuckets(labels, bounds)


def _time_label(t: float, width: float, span: float) -> str:
    moment = datetime.fromtimestamp(t, tz=UTC)
    if span >= 2 * 86400:
        return moment.strftime("%m-%d %H:%M")
    if width >= 60:
        return moment.strftime("%H:%M")
    if width >= 1:
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def percentile(values: Sequence[float] | FloatArray, q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation; None when there are no values."""
    if not len(values):
        return None
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    lo, hi = float(ordered[low]), float(ordered[high])
    return lo + (hi - lo) * (position - low)


def _routes(data: ReportData) -> list[str]:
    seen = {data.served_names[code] for code in np.unique(data.served)}
    known = [route for route in (sc.ROUTE_LLM, sc.ROUTE_RLM) if route in seen]
    return known + sorted(seen - set(known))


def _color(route: str) -> str:
    return ROUTE_COLORS.get(route, PALETTE[-1])


def _sum(values: FloatArray) -> float:
    """Left-to-right float sum, as ``sum()`` over the records was (numpy's is pairwise)."""
    return float(sum(values.tolist()))


def _charts(data: ReportData) -> list[str]:
    buckets = bucket_by_time(data.time_s)
    slices = buckets.slices()
    routes = _routes(data)
    served = {route: data.served_mask(route) for route in routes}
    cost = np.where(data.cost_set & (data.cost != 0.0), data.cost, 0.0)  # `cost_usd or 0.0`
    charts = []
    charts.append(
        bar_chart(
            "Requests per route (route served)",
            buckets.labels,
            [
                Series(route, [int(served[route][b].sum()) for b in slices], _color(route))
                for route in routes
            ],
            y_format=_integer,
            counts=True,
        )
    )
    charts.append(
        line_chart(
            "Cost per route (USD per interval)",
            buckets.labels,
            [
                Series(
                    route,
                    [
                        _sum(cost[b][served[route][b]]) if served[route][b].any() else None
                        for b in slices
                    ],
                    _color(route),
                )
                for route in routes
            ],
            y_format=_usd,
        )
    )
    latency_series = []
    for route in routes:
        latencies = [_latencies_s(data, served[route], b) for b in slices]
        for q, dashed in ((0.5, False), (0.95, True)):
            values = [percentile(values, q) for values in latencies]
            latency_series.append(
                Series(f"{route} p{round(q * 100)}", values, _color(route), dashed)
            )
    charts.append(line_chart("Latency p50 / p95 per route (s)", buckets.labels, latency_series))
    decided = data.decided >= 0
    escalated = data.decided_mask(sc.ROUTE_RLM)
    escalation = [
        int(escalated[b].sum()) / int(decided[b].sum()) if decided[b].any() else None
        for b in slices
    ]
    exploration = [
        int(data.exploration[b].sum()) / (b.stop - b.start) if b.stop > b.start else None
        for b in slices
    ]
    charts.append(
        line_chart(
            "Escalation rate (share of decisions routed to RLM)",
            buckets.labels,
            [
                Series("escalated", escalation, PALETTE[1]),
                Series("explored", exploration, PALETTE[3], dashed=True),
            ],
            y_format=_percent,
            y_max=1.0,
        )
    )
    scored = data.score_set & np.isfinite(data.score)
    clamped = np.minimum(np.maximum(data.score, 0.0), 1.0)
    scores: dict[str, list[FloatArray]] = {}
    for code, name in [(-1, UNKNOWN), *enumerate(data.decided_names)]:
        rows = scored & (data.decided == code)
        if rows.any():
            scores.setdefault(name, []).append(clamped[rows])
    thresholds = data.threshold[data.threshold_set]
    threshold = _median(thresholds) if len(thresholds) else None
    charts.append(
        histogram(
            "Decision score distribution (by decided route)",
            {name: np.concatenate(parts) for name, parts in sorted(scores.items())},
            colors=ROUTE_COLORS,
            bins=[i / 20 for i in range(21)],
            edge_format=lambda v: f"{v:.2f}",
            marker=threshold,
            marker_label=f"threshold {threshold:.2f}" if threshold is not None else "",
        )
    )
    fallback = {kind: data.fallback_mask(kind) for kind in FALLBACK_COLORS}
    charts.append(
        bar_chart(
            "Fallbacks",
            buckets.labels,
            [
                Series(kind, [int(fallback[kind][b].sum()) for b in slices], color)
                for kind, color in FALLBACK_COLORS.items()
            ],
            y_format=_integer,
            counts=True,
        )
    )
    rlm = data.served_mask(sc.ROUTE_RLM)
    counts: tuple[tuple[str, FloatArray], ...] = (
        (
            "RLM iterations per escalated request",
            data.rlm_iterations[rlm & data.rlm_iterations_set],
        ),
        ("RLM sub-calls per escalated request", data.rlm_sub_calls[rlm & data.rlm_sub_calls_set]),
    )
    for title, present in counts:
        top = float(present.max()) if len(present) else 0.0
        step = max(1, math.ceil((top + 1) / 16))
        edges = [float(i * step) for i in range(int(top // step) + 2)]
        charts.append(
            histogram(
                title,
                {sc.ROUTE_RLM: present} if len(present) else {},
                colors=ROUTE_COLORS,
                bins=edges,
                edge_format=_integer,
            )
        )
    return charts


def _median(values: FloatArray) -> float:
    """``statistics.median``: the middle value, or the mean of the two middle ones."""
    ordered = np.sort(values)
    n = len(ordered)
    if n % 2:
        return float(ordered[n // 2])
    return (float(ordered[n // 2 - 1]) + float(ordered[n // 2])) / 2


def _summary_table(data: ReportData) -> str:
    rows = []
    total = len(data)
    everything = slice(0, total)
    for route in _routes(data):
        mine = data.served_mask(route)
        count = int(mine.sum())
        costs = data.cost[mine & data.cost_set]
        latencies = _latencies_s(data, mine, everything)
        qualities = data.quality[mine & data.quality_set]
        p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
        cost_sum = _sum(costs)
        cells = [
            route,
            str(count),
            _percent(count / total),
            _usd(cost_sum),
            _usd(cost_sum / len(costs)) if len(costs) else "–",
            f"{p50:.2f}" if p50 is not None else "–",
            f"{p95:.2f}" if p95 is not None else "–",
            str(int((mine & data.error).sum())),
            str(int((mine & ~data.fallback_mask(sc.FALLBACK_NONE)).sum())),
            f"{statistics.fmean(qualities.tolist()):.2f} (n={len(qualities)})"
            if len(qualities)
            else "–",
        ]
        rows.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    header = (
        "route served", "requests", "share", "cost", "cost / request", "latency p50 (s)",
        "latency p95 (s)", "errors", "fallbacks", "quality",
    )  # fmt: skip
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join(rows) or f'<tr><td colspan="{len(header)}">no requests</td></tr>'
    return f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _most_common(codes: IntArray, names: Sequence[str], n: int) -> list[tuple[str, int]]:
    """``Counter.most_common(n)`` of the set codes: by count, ties in first-seen order."""
    present = codes[codes >= 0]
    if not len(present):
        return []
    values, first, counts = np.unique(present, return_index=True, return_counts=True)
    order = sorted(range(len(values)), key=lambda i: (-counts[i], first[i]))[:n]
    return [(names[int(values[i])], int(counts[i])) for i in order]


def _facts(data: ReportData, sources: Sequence[str]) -> str:
    if len(data):
        window = (
            f"{datetime.fromtimestamp(float(data.time_s.min()), tz=UTC):%Y-%m-%d %H:%M:%S} – "
            f"{datetime.fromtimestamp(float(data.time_s.max()), tz=UTC):%Y-%m-%d %H:%M:%S} UTC"
        )
    else:
        window = "no requests found"
    decided = data.decided >= 0
    n_decided = int(decided.sum())
    escalated = int(data.decided_mask(sc.ROUTE_RLM).sum())
    rate = _percent(escalated / n_decided) if n_decided else "–"
    policies = _most_common(data.policy, data.policy_names, 4)
    rules = _most_common(data.rule[decided], data.rule_names, 4)
    cost = np.where(data.cost_set & (data.cost != 0.0), data.cost, 0.0)
    facts = [
        ("Requests", str(len(data))),
        ("Window", window),
        ("Escalation rate", rate),
        ("Explorations", str(int(data.exploration.sum()))),
        ("Total cost", _usd(_sum(cost))),
        ("Errors", str(int(data.error.sum()))),
        ("Policy versions", ", ".join(f"{p} ({n})" for p, n in policies) or "–"),
        ("Top rules", ", ".join(f"{p} ({n})" for p, n in rules) or "–"),
        ("Sources", ", ".join(sources) or "–"),
    ]
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts)
    return f'<dl class="facts">{items}</dl>'


_CSS = "".join(
    (
        "body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;",
        "margin:24px;color:#18181b;background:#fafafa}",
        "h1{font-size:20px;margin:0 0 12px}",
        "h2{font-size:16px;margin:24px 0 8px}",
        ".facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0 0 8px}",
        ".facts dt{color:#52525b}",
        ".facts dd{margin:0}",
        ".grid{display:flex;flex-wrap:wrap;gap:16px}",
        ".panel{margin:0;padding:10px 12px;background:#fff;",
        "border:1px solid #e4e4e7;border-radius:6px}",
        "figcaption{font-weight:600;margin-bottom:4px}",
        ".chart .grid{stroke:#f0f0f2}",
        ".chart .axis{stroke:#a1a1aa}",
        ".chart .marker{stroke:#18181b;stroke-dasharray:3 3}",
        ".chart .tick{font-size:10px;fill:#52525b}",
        ".chart .empty{font-size:14px;fill:#a1a1aa}",
        ".legend{font-size:12px;color:#3f3f46;min-height:16px}",
        ".key{margin-right:12px;white-space:nowrap}",
        ".key i{display:inline-block;width:10px;height:10px;border-radius:2px;",
        "margin-right:4px;vertical-align:-1px;box-sizing:border-box;border:2px solid}",
        ".key i.dashed{border-style:dashed}",
        "table.summary{border-collapse:collapse;background:#fff}",
        ".summary th,.summary td{border:1px solid #e4e4e7;padding:4px 10px;text-align:right}",
        ".summary th:first-child,.summary td:first-child{text-align:left}",
    )
)


def render_report(
    records: Sequence[RequestRecord] | ReportData,
    *,
    title: str = "rlm-router report",
    sources: Sequence[str] = (),
) -> str:
    """The report page for ``records`` as one self-contained HTML string."""
    data = records if isinstance(records, ReportData) else ReportData.from_records(records)
    charts = "".join(_charts(data))
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>{_facts(data, sources)}"
        f"<h2>Summary by route</h2>{_summary_table(data)}"
        f'<h2>Over time and distributions</h2><div class="grid">{charts}</div>'
        "</body></html>\n"
    )


def read_report_data(
    trace_paths: Iterable[str | os.PathLike[str]],
    feedback_paths: Iterable[str | os.PathLike[str]] = (),
    *,
    workers: int | None = None,
) -> ReportData:
    """The report's columns from trace files (or directories, gzip), in one pass
    (``workers``: reading processes, as for ``RequestScan``)."""
    scan = RequestScan(trace_paths, feedback_paths, workers=workers)
    columns = ReportColumns()
    for record in scan:
        columns.add(record)

    return columns.finish(scan.reported_quality if scan.feedback else None)


def write_report(
    trace_paths: Iterable[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    feedback_paths: Iterable[str | os.PathLike[str]] = (),
    title: str = "rlm-router report",
    workers: int | None = None,
) -> int:
    """Read traces (and feedback), write the report to ``output``; returns the request count.

    Raises ``TraceFormatError`` (and writes nothing) when the files hold no request at all:
    an empty report is what a wrong or empty file would otherwise give, silently.
    """
    trace_paths = list(trace_paths)
    data = read_report_data(trace_paths, feedback_paths, workers=workers)
    if not len(data):
        names = ", ".join(os.fspath(p) for p in trace_paths)
        raise TraceFormatError(
            f"no rlm-router request in {names}: expected OTLP-JSON trace lines with "
            "rlm_router.request spans (RLM_ROUTER_TRACES_FILE, or a Collector's file exporter)"
        )
    html = render_report(data, title=title, sources=[os.path.basename(p) for p in trace_paths])
    with open(output, "w", encoding="utf-8") as handle:
        handle.write(html)
    return len(data)


def _latencies_s(data: ReportData, rows: BoolArray, within: slice) -> FloatArray:
    chosen = rows[within] & data.latency_set[within]
    return np.asarray(data.latency_ms[within][chosen] / 1000, dtype=np.float64)


def _usd(value: float) -> str:
    if value == 0:
        return "$0"
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4g}"


def _percent(value: float) -> str:
    return f"{value * 100:.0f}%" if value >= 0.1 or value == 0 else f"{value * 100:.1f}%"


def _integer(value: float) -> str:
    return str(int(value)) if value == int(value) else format_number(value)
