"""Telemetry.from_env: exporter selection, and exporter failures kept off the request path."""

from __future__ import annotations

import logging
import os
import socket
import stat
import time
from pathlib import Path

import pytest

from rlm_router.telemetry import Telemetry, TelemetryConfigError, read_spans
from rlm_router.telemetry import semconv as sc


def _requests(telemetry: Telemetry, n: int) -> float:
    """Run ``n`` traced requests; return the seconds they took."""
    started = time.monotonic()
    for i in range(n):
        with telemetry.request_span(model="auto") as req:
            with req.chat(model="openai/sim-mini") as call:
                call.record_response(input_tokens=i, output_tokens=1)
            req.outcome(route_served="llm", cost_usd=0.001)
    return time.monotonic() - started


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_default_writes_otlp_json_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    telemetry = Telemetry.from_env({"OTEL_SERVICE_NAME": "svc-under-test"})
    assert [e.name for e in telemetry.span_exporters] == ["otlp_json_file"]
    _requests(telemetry, 3)
    telemetry.shutdown()  # flushes the batch processor
    records = list(read_spans([tmp_path / "rlm-router-traces.jsonl"]))
    assert [r.name for r in records].count(sc.SPAN_REQUEST) == 3
    assert records[0].resource["service.name"] == "svc-under-test"


def test_traces_file_from_env(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "t.jsonl"
    telemetry = Telemetry.from_env({"RLM_ROUTER_TRACES_FILE": str(path)})
    _requests(telemetry, 1)
    telemetry.shutdown()
    assert len(list(read_spans([path]))) == 2


def test_exporter_selection() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
        "RLM_ROUTER_TRACES_FILE": os.devnull,
        "OTEL_METRICS_EXPORTER": "none",
    }
    telemetry = Telemetry.from_env(env)
    assert [e.name for e in telemetry.span_exporters] == ["otlp", "otlp_json_file"]
    telemetry.shutdown(timeout_s=0.5)
    telemetry = Telemetry.from_env({"OTEL_TRACES_EXPORTER": "none"})
    assert telemetry.span_exporters == []
    telemetry.shutdown()
    with pytest.raises(TelemetryConfigError, match="zipkin"):
        Telemetry.from_env({"OTEL_TRACES_EXPORTER": "zipkin"})
    with pytest.raises(TelemetryConfigError, match="http/json"):
        Telemetry.from_env(
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
        )


def test_sdk_disabled_is_a_no_op() -> None:
    telemetry = Telemetry.from_env({"OTEL_SDK_DISABLED": "true"})
    with telemetry.request_span() as req:
        assert not req.span.is_recording()
        req.outcome(route_served="llm")
    telemetry.shutdown()


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_unreachable_collector_never_fails_or_slows_requests(
    protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{_refused_port()}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_TIMEOUT": "0.2",
        "OTEL_BSP_SCHEDULE_DELAY": "10",
        "OTEL_METRICS_EXPORTER": "none",
    }
    with caplog.at_level(logging.WARNING, logger="rlm_router.telemetry"):
        telemetry = Telemetry.from_env(env)
        elapsed = _requests(telemetry, 200)
        deadline = time.monotonic() + 10
        (exporter,) = telemetry.span_exporters
        while exporter.failures < 2 and time.monotonic() < deadline:
            _requests(telemetry, 5)
            time.sleep(0.05)
        started = time.monotonic()
        telemetry.shutdown(timeout_s=1.0)
        shutdown_s = time.monotonic() - started
    assert elapsed < 1.0, f"200 traced requests took {elapsed:.2f} s with a dead collector"
    assert exporter.failures >= 2
    ours = [
        r for r in caplog.records if r.name == "rlm_router.telemetry" and "failed" in r.getMessage()
    ]
    assert len(ours) == 1, [r.getMessage() for r in ours]
    assert shutdown_s < 3.0


def test_read_only_traces_file_never_fails_requests(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.access(read_only, os.W_OK):  # root ignores permissions: use a path under a file
        (tmp_path / "file").write_text("")
        target = tmp_path / "file" / "traces.jsonl"
    else:
        target = read_only / "traces.jsonl"
    env = {"RLM_ROUTER_TRACES_FILE": str(target), "OTEL_BSP_SCHEDULE_DELAY": "10"}
    with caplog.at_level(logging.WARNING, logger="rlm_router.telemetry"):
        telemetry = Telemetry.from_env(env)
        for _ in range(3):
            _requests(telemetry, 5)
            telemetry.force_flush()
        telemetry.shutdown()
    (exporter,) = telemetry.span_exporters
    assert exporter.failures >= 3
    ours = [r for r in caplog.records if r.name == "rlm_router.telemetry"]
    assert len(ours) == 1 and str(target.parent) in ours[0].getMessage()
    read_only.chmod(stat.S_IRWXU)


def test_shutdown_is_bounded_while_exporter_retries(caplog: pytest.LogCaptureFixture) -> None:
    # Default export timeout (10 s of retries with back-off): shutdown must not wait for it.
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{_refused_port()}",
        "OTEL_METRICS_EXPORTER": "none",
    }
    telemetry = Telemetry.from_env(env)
    _requests(telemetry, 10)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="rlm_router.telemetry"):
        telemetry.shutdown(timeout_s=0.3)
    assert time.monotonic() - started < 2.5
    assert any("did not finish" in r.getMessage() for r in caplog.records)


def test_a_busy_metrics_port_disables_metrics_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    traces, feedback = tmp_path / "traces.jsonl", tmp_path / "feedback.jsonl"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        env = {
            "OTEL_TRACES_EXPORTER": "otlp_json_file",
            "RLM_ROUTER_TRACES_FILE": str(traces),
            "RLM_ROUTER_FEEDBACK_FILE": str(feedback),
            "OTEL_METRICS_EXPORTER": "prometheus",
            "OTEL_EXPORTER_PROMETHEUS_PORT": str(port),
        }
        with caplog.at_level(logging.WARNING, logger="rlm_router.telemetry"):
            telemetry = Telemetry.from_env(env)
        try:
            assert telemetry.prometheus_port is None
            _requests(telemetry, 2)
            telemetry.record_feedback("decision-1", 0.5)
        finally:
            telemetry.shutdown()
    said = " ".join(r.getMessage() for r in caplog.records)
    assert f"metrics disabled: cannot serve Prometheus on 127.0.0.1:{port}" in said
    assert "Traces and feedback are still recorded" in said
    names = [r.name for r in read_spans([traces])]
    assert names.count(sc.SPAN_REQUEST) == 2 and sc.SPAN_FEEDBACK in names
    assert "decision-1" in feedback.read_text()


def test_prometheus_endpoint_from_env() -> None:
    import httpx

    port = _refused_port()  # free right now
    env = {
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_EXPORTER_PROMETHEUS_PORT": str(port),
    }
    telemetry = Telemetry.from_env(env)
    try:
        assert telemetry.prometheus_port == port
        _requests(telemetry, 2)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "rlm_router_requests_total{" in text and 'rlm_router_route_served="llm"' in text
    finally:
        telemetry.shutdown()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
