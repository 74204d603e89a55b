"""The shipped Grafana dashboard: valid, well-formed, and only asks for series we export."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import pytest

from rlm_router.telemetry import Telemetry
from rlm_router.telemetry.metrics import PROMETHEUS_NAMES
from tests.telemetry.telemetry_support import scrape_names, simulate_traffic

PROMQL_WORDS = {
    "sum", "rate", "increase", "histogram_quantile", "by", "without", "le", "avg", "max",
    "min", "count", "on", "ignoring", "and", "or", "unless",
}  # fmt: skip


def _dashboard() -> dict[str, Any]:
    text = resources.files("rlm_router.telemetry").joinpath("grafana_dashboard.json").read_text()
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def exported() -> tuple[set[str], set[str]]:
    """(series names, label names) as our Prometheus endpoint exposes them."""
    telemetry, port = Telemetry.with_prometheus()
    try:
        simulate_traffic(telemetry, 80, seed=2)
        with telemetry.request_span() as req:
            req.fallback("rlm_to_llm")
            req.outcome(route_served="llm", error_type="RateLimitError")
        import httpx

        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        names = scrape_names(port)
    finally:
        telemetry.shutdown()
    labels = set(re.findall(r"[{,]([a-zA-Z_][a-zA-Z0-9_]*)=", text))
    return names, labels


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def test_dashboard_structure() -> None:
    dashboard = _dashboard()
    assert dashboard["title"] and dashboard["uid"]
    (variable,) = dashboard["templating"]["list"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels) >= 10
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("cost", "latency", "requests", "escalation", "fallback", "rlm"):
        assert topic in titles, topic
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["type"] in {"timeseries", "stat"}
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}  # fmt: skip
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells
        assert panel["targets"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids)
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")")


def test_every_query_uses_exported_series_and_labels(exported: tuple[set[str], set[str]]) -> None:
    names, labels = exported
    documented = set(PROMETHEUS_NAMES.values())
    used_metrics: set[str] = set()
    for expr in _exprs(_dashboard()):
        label_groups = re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
        matchers = re.findall(r"\{([^}]*)\}", expr)
        used_labels = {name.strip() for group in label_groups for name in group.split(",")}
        used_labels |= {
            m.split("=")[0].rstrip("!~").strip() for g in matchers for m in g.split(",")
        }
        stripped = re.sub(r"\{[^}]*\}|\b(?:by|without)\s*\([^)]*\)|\[[^\]]*\]", " ", expr)
        metrics = {
            token for token in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", stripped)
            if token not in PROMQL_WORDS
        }  # fmt: skip
        assert metrics, expr
        for metric in metrics:
            assert metric in names, f"{metric} (in {expr!r}) is not exported"
            base = re.sub(r"_(bucket|sum|count)$", "", metric)
            assert metric in documented or base in documented, metric
        used_metrics |= metrics
        for label in used_labels - {"le", ""}:
            assert label in labels, f"label {label} (in {expr!r}) is not exported"
    # The dashboard covers the router's own metrics, not only GenAI ones.
    assert {"rlm_router_requests_total", "rlm_router_cost_usd_total",
            "rlm_router_fallbacks_total", "rlm_router_decisions_total"} <= used_metrics  # fmt: skip
