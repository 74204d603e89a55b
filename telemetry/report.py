"""The built-in HTML report: cost, latency and routing per route, from OTLP-JSON traces.

``render_report(records)`` returns one self-contained HTML page (inline CSS and SVG, no
scripts, no network): requests, cost and latency p50/p95 per route over time, escalation
rate, the decision score distribution, fallbacks, RLM iterations and sub-calls, and a
summary table. Missing data renders as "no data", never as an error.
"""

from __future__ import annotations

import math
import os
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from telemetry import semconv as sc
from telemetry.records import RequestRecord, load_request_records
from telemetry.svg_charts import PALETTE, Series, bar_chart, format_number, histogram, line_chart

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
    """Requests grouped into equal time buckets (x axis of the time charts)."""

    labels: list[str]
    members: list[list[RequestRecord]]


def bucket_by_time(records: Sequence[RequestRecord]) -> TimeBuckets:
    """About 24 buckets of a round width covering the records' time range."""
    if not records:
        return TimeBuckets([], [])
    times = [r.start_time_unix_nano / 1e9 for r in records]
    start, end = min(times), max(times)
    width = next((w for w in _BUCKET_WIDTHS if (end - start) / w <= _TARGET_BUCKETS), 86400 * 30)
    first = math.floor(start / width) * width
    count = int((end - first) // width) + 1
    members: list[list[RequestRecord]] = [[] for _ in range(count)]
    for record, t in zip(records, times, strict=True):
        members[min(int((t - first) // width), count - 1)].append(record)
    labels = [_time_label(first + i * width, width, end - start) for i in range(count)]
    return TimeBuckets(labels, members)


def _time_label(t: float, width: float, span: float) -> str:
    moment = datetime.fromtimestamp(t, tz=UTC)
    if span >= 2 * 86400:
        return moment.strftime("%m-%d %H:%M")
    if width >= 60:
        return moment.strftime("%H:%M")
    if width >= 1:
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation; None when there are no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _routes(records: Sequence[RequestRecord]) -> list[str]:
    seen = {r.route_served or "unknown" for r in records}
    known = [route for route in (sc.ROUTE_LLM, sc.ROUTE_RLM) if route in seen]
    return known + sorted(seen - set(known))


def _color(route: str) -> str:
    return ROUTE_COLORS.get(route, PALETTE[-1])


def _served(record: RequestRecord) -> str:
    return record.route_served or "unknown"


def _charts(records: Sequence[RequestRecord]) -> list[str]:
    buckets = bucket_by_time(records)
    routes = _routes(records)
    charts = []
    charts.append(
        bar_chart(
            "Requests per route (route served)",
            buckets.labels,
            [
                Series(route, [sum(_served(r) == route for r in m) for m in buckets.members],
                       _color(route))
                for route in routes
            ],
            y_format=_integer,
            counts=True,
        )
    )  # fmt: skip
    charts.append(
        line_chart(
            "Cost per route (USD per interval)",
            buckets.labels,
            [
                Series(
                    route,
                    [
                        sum(r.cost_usd or 0.0 for r in m if _served(r) == route)
                        if any(_served(r) == route for r in m) else None
                        for m in buckets.members
                    ],
                    _color(route),
                )
                for route in routes
            ],
            y_format=_usd,
        )
    )  # fmt: skip
    latency_series = []
    for route in routes:
        for q, dashed in ((0.5, False), (0.95, True)):
            values = [percentile(_latencies_s(m, route), q) for m in buckets.members]
            latency_series.append(
                Series(f"{route} p{round(q * 100)}", values, _color(route), dashed)
            )
    charts.append(line_chart("Latency p50 / p95 per route (s)", buckets.labels, latency_series))
    escalation = [
        (sum(r.escalated for r in decided) / len(decided)) if decided else None
        for decided in ([r for r in m if r.decided_route is not None] for m in buckets.members)
    ]
    exploration = [(sum(r.exploration for r in m) / len(m)) if m else None for m in buckets.members]
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
    scores: dict[str, list[float]] = {}
    for r in records:
        if r.score is not None and math.isfinite(r.score):
            scores.setdefault(r.decided_route or "unknown", []).append(min(max(r.score, 0.0), 1.0))
    thresholds = [r.threshold for r in records if r.threshold is not None]
    threshold = statistics.median(thresholds) if thresholds else None
    charts.append(
        histogram(
            "Decision score distribution (by decided route)",
            dict(sorted(scores.items())),
            colors=ROUTE_COLORS,
            bins=[i / 20 for i in range(21)],
            edge_format=lambda v: f"{v:.2f}",
            marker=threshold,
            marker_label=f"threshold {threshold:.2f}" if threshold is not None else "",
        )
    )
    charts.append(
        bar_chart(
            "Fallbacks",
            buckets.labels,
            [
                Series(kind, [sum(r.fallback == kind for r in m) for m in buckets.members], color)
                for kind, color in FALLBACK_COLORS.items()
            ],
            y_format=_integer,
            counts=True,
        )
    )
    rlm = [r for r in records if _served(r) == sc.ROUTE_RLM]
    counts: tuple[tuple[str, list[int | None]], ...] = (
        ("RLM iterations per escalated request", [r.rlm_iterations for r in rlm]),
        ("RLM sub-calls per escalated request", [r.rlm_sub_calls for r in rlm]),
    )
    for title, per_request in counts:
        present = [float(v) for v in per_request if v is not None]
        top = max(present, default=0.0)
        step = max(1, math.ceil((top + 1) / 16))
        edges = [float(i * step) for i in range(int(top // step) + 2)]
        charts.append(
            histogram(
                title,
                {sc.ROUTE_RLM: present} if present else {},
                colors=ROUTE_COLORS,
                bins=edges,
                edge_format=_integer,
            )
        )
    return charts


def _summary_table(records: Sequence[RequestRecord]) -> str:
    rows = []
    total = len(records)
    for route in _routes(records):
        mine = [r for r in records if _served(r) == route]
        costs = [r.cost_usd for r in mine if r.cost_usd is not None]
        latencies = _latencies_s(mine, route)
        qualities = [r.quality for r in mine if r.quality is not None]
        p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
        cells = [
            route,
            str(len(mine)),
            _percent(len(mine) / total),
            _usd(sum(costs)),
            _usd(sum(costs) / len(costs)) if costs else "–",
            f"{p50:.2f}" if p50 is not None else "–",
            f"{p95:.2f}" if p95 is not None else "–",
            str(sum(r.error_type is not None for r in mine)),
            str(sum(r.fallback != sc.FALLBACK_NONE for r in mine)),
            f"{statistics.fmean(qualities):.2f} (n={len(qualities)})" if qualities else "–",
        ]
        rows.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    header = (
        "route served", "requests", "share", "cost", "cost / request", "latency p50 (s)",
        "latency p95 (s)", "errors", "fallbacks", "quality",
    )  # fmt: skip
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join(rows) or f'<tr><td colspan="{len(header)}">no requests</td></tr>'
    return f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _facts(records: Sequence[RequestRecord], sources: Sequence[str]) -> str:
    if records:
        times = [r.start_time_unix_nano / 1e9 for r in records]
        window = (
            f"{datetime.fromtimestamp(min(times), tz=UTC):%Y-%m-%d %H:%M:%S} – "
            f"{datetime.fromtimestamp(max(times), tz=UTC):%Y-%m-%d %H:%M:%S} UTC"
        )
    else:
        window = "no requests found"
    decided = [r for r in records if r.decided_route is not None]
    rate = _percent(sum(r.escalated for r in decided) / len(decided)) if decided else "–"
    policies = Counter(r.policy_version for r in records if r.policy_version)
    rules = Counter(r.rule for r in decided if r.rule)
    facts = [
        ("Requests", str(len(records))),
        ("Window", window),
        ("Escalation rate", rate),
        ("Explorations", str(sum(r.exploration for r in records))),
        ("Total cost", _usd(sum(r.cost_usd or 0.0 for r in records))),
        ("Errors", str(sum(r.error_type is not None for r in records))),
        ("Policy versions", ", ".join(f"{p} ({n})" for p, n in policies.most_common(4)) or "–"),
        ("Top rules", ", ".join(f"{p} ({n})" for p, n in rules.most_common(4)) or "–"),
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
    records: Sequence[RequestRecord],
    *,
    title: str = "rlm-router report",
    sources: Sequence[str] = (),
) -> str:
    """The report page for ``records`` as one self-contained HTML string."""
    charts = "".join(_charts(records))
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>{_facts(records, sources)}"
        f"<h2>Summary by route</h2>{_summary_table(records)}"
        f'<h2>Over time and distributions</h2><div class="grid">{charts}</div>'
        "</body></html>\n"
    )


def write_report(
    trace_paths: Iterable[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    feedback_paths: Iterable[str | os.PathLike[str]] = (),
    title: str = "rlm-router report",
) -> int:
    """Read traces (and feedback), write the report to ``output``; returns the request count."""
    trace_paths = list(trace_paths)
    records = load_request_records(trace_paths, feedback_paths)
    html = render_report(records, title=title, sources=[os.path.basename(p) for p in trace_paths])
    with open(output, "w", encoding="utf-8") as handle:
        handle.write(html)
    return len(records)


def _latencies_s(records: Iterable[RequestRecord], route: str) -> list[float]:
    return [
        r.latency_ms / 1000 for r in records if _served(r) == route and r.latency_ms is not None
    ]


def _usd(value: float) -> str:
    if value == 0:
        return "$0"
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4g}"


def _percent(value: float) -> str:
    return f"{value * 100:.0f}%" if value >= 0.1 or value == 0 else f"{value * 100:.1f}%"


def _integer(value: float) -> str:
    return str(int(value)) if value == int(value) else format_number(value)
