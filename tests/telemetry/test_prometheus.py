"""Prometheus (Debian's binary) scrapes the router's metrics endpoint; we query them back."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rlm_router.telemetry import Telemetry
from rlm_router.telemetry.metrics import PROMETHEUS_NAMES
from tests.telemetry.telemetry_support import scrape_names, simulate_traffic

pytestmark = pytest.mark.server

N = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _poll(condition: Any, *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
        except httpx.HTTPError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


@pytest.fixture
def telemetry_endpoint() -> Iterator[tuple[Telemetry, int]]:
    telemetry, port = Telemetry.with_prometheus(host="127.0.0.1", port=0)
    yield telemetry, port
    telemetry.shutdown()


@pytest.fixture
def prometheus(tmp_path: Path, telemetry_endpoint: tuple[Telemetry, int]) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus binary is not installed (.ci/system-deps installs it)")
    _, target_port = telemetry_endpoint
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: rlm_router\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{target_port}']\n"
    )
    port = _free_port()
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _poll(
            lambda: process.poll() is None and httpx.get(f"{base}/-/ready", timeout=2).is_success,
            timeout=30,
            what="prometheus to be ready",
        )
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


def _query(base: str, promql: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_prometheus_scrapes_router_metrics(
    prometheus: str, telemetry_endpoint: tuple[Telemetry, int]
) -> None:
    telemetry, port = telemetry_endpoint
    simulate_traffic(telemetry, N - 1, seed=1)
    with telemetry.request_span() as req:  # one fallback, whatever the simulation drew
        req.fallback("rlm_to_llm", reason="budget")
        req.outcome(route_served="llm", cost_usd=0.01)

    def all_requests_seen() -> bool:
        result = _query(prometheus, "sum(rlm_router_requests_total)")
        return bool(result) and float(result[0]["value"][1]) == N

    _poll(all_requests_seen, timeout=30, what=f"{N} requests in Prometheus")
    by_route = {
        r["metric"]["rlm_router_route_served"]: float(r["value"][1])
        for r in _query(prometheus, "sum by (rlm_router_route_served) (rlm_router_requests_total)")
    }
    assert set(by_route) == {"llm", "rlm"} and sum(by_route.values()) == N
    cost = _query(prometheus, "sum(rlm_router_cost_usd_total)")
    assert float(cost[0]["value"][1]) > 0
    p95 = _query(
        prometheus,
        "histogram_quantile(0.95, sum by (le, rlm_router_route_served) "
        "(rlm_router_request_duration_seconds_bucket))",
    )
    assert {r["metric"]["rlm_router_route_served"] for r in p95} == {"llm", "rlm"}
    tokens = _query(prometheus, 'sum(gen_ai_client_token_usage_sum{gen_ai_token_type="input"})')
    assert float(tokens[0]["value"][1]) > 0

    # Every series name we document (and the Grafana dashboard uses) reached Prometheus.
    stored = set(httpx.get(f"{prometheus}/api/v1/label/__name__/values", timeout=5).json()["data"])
    exposed = scrape_names(port)
    for name in PROMETHEUS_NAMES.values():
        assert name in exposed or f"{name}_bucket" in exposed, name
        assert name in stored or f"{name}_bucket" in stored, name
