"""``POST /rlm-router/feedback``: validation, recording through ``Telemetry``, proxy wiring."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rlm_router.router.plugin.feedback import FEEDBACK_PATH, feedback_router, install
from rlm_router.telemetry import Telemetry, load_request_records


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def telemetry(tmp_path: Path, spans: InMemorySpanExporter) -> Iterator[Telemetry]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    sink = Telemetry(tracer_provider=provider, feedback_path=tmp_path / "feedback.jsonl")
    yield sink
    sink.shutdown()


@pytest.fixture
def client(telemetry: Telemetry) -> TestClient:
    app = FastAPI()
    app.include_router(feedback_router(lambda: telemetry, authenticate=False))
    return TestClient(app)


def test_feedback_is_recorded_as_a_span_and_a_line(
    client: TestClient, telemetry: Telemetry, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    response = client.post(
        FEEDBACK_PATH, json={"decision_id": "d-1", "quality": 0.25, "comment": "wrong total"}
    )
    assert response.status_code == 200
    assert response.json() == {"recorded": True, "decision_id": "d-1", "quality": 0.25}
    [span] = spans.get_finished_spans()
    assert span.name == "rlm_router.feedback"
    assert span.attributes is not None
    assert span.attributes["rlm_router.decision.id"] == "d-1"
    assert span.attributes["rlm_router.outcome.quality"] == 0.25
    assert "rlm_router.feedback.comment" not in span.attributes  # content capture is off
    [line] = (tmp_path / "feedback.jsonl").read_text().splitlines()
    assert json.loads(line)["source"] == "http"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"quality": 1}', "decision_id must be a non-empty string"),
        (b'{"decision_id": "", "quality": 1}', "decision_id must be a non-empty string"),
        (b'{"decision_id": "d", "quality": 1.5}', "quality must be a number in [0, 1]"),
        (b'{"decision_id": "d", "quality": true}', "quality must be a number in [0, 1]"),
        (b'{"decision_id": "d", "quality": "good"}', 'got "good"'),
        (b'{"decision_id": "d", "quality": 1, "score": 2}', "unknown field(s) 'score'"),
        (b'{"decision_id": "d", "quality": 1, "comment": 3}', "comment must be a string"),
        (b"[1, 2]", "body must be a JSON object"),
        (b"quality=1", "body is not valid JSON"),
    ],
)
def test_bad_feedback_is_a_400_naming_the_problem(
    client: TestClient, spans: InMemorySpanExporter, body: bytes, message: str
) -> None:
    response = client.post(FEEDBACK_PATH, content=body)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert spans.get_finished_spans() == ()


def test_without_telemetry_the_endpoint_says_so() -> None:
    app = FastAPI()
    app.include_router(feedback_router(lambda: None, authenticate=False))
    response = TestClient(app).post(FEEDBACK_PATH, json={"decision_id": "d", "quality": 1})
    assert response.status_code == 503
    assert "telemetry is disabled" in response.json()["error"]["message"]


def test_install_adds_the_route_once(telemetry: Telemetry) -> None:
    app = FastAPI()
    assert install(app, lambda: telemetry)
    assert not install(app, lambda: telemetry)
    assert list(app.openapi()["paths"]) == [FEEDBACK_PATH]
    assert list(app.openapi()["paths"][FEEDBACK_PATH]) == ["post"]


_PROXY_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    work = Path(sys.argv[1])
    os.environ["CONFIG_FILE_PATH"] = str(work / "proxy.yaml")
    os.environ["LITELLM_MASTER_KEY"] = "sk-feedback-test"
    from litellm.proxy.proxy_server import app
    from fastapi.testclient import TestClient
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from rlm_router.telemetry import OtlpJsonLinesSpanExporter, Telemetry
    from rlm_router.router.plugin.feedback import install_on_running_proxy
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OtlpJsonLinesSpanExporter(work / "t.jsonl")))
    telemetry = Telemetry(tracer_provider=provider, feedback_path=work / "feedback.jsonl")
    assert install_on_running_proxy(lambda: telemetry)
    with TestClient(app) as client:
        key = {"Authorization": "Bearer sk-feedback-test"}
        ok = client.post("/rlm-router/feedback", json={"decision_id": "d-9", "quality": 1.0},
                         headers=key)
        bad = client.post("/rlm-router/feedback", json={"decision_id": "d-9", "quality": 9},
                          headers=key)
    telemetry.shutdown()
    print(json.dumps({"ok": [ok.status_code, ok.json()], "bad": [bad.status_code, bad.json()]}))
    """
)


@pytest.mark.server
def test_the_route_serves_inside_the_litellm_proxy_app(tmp_path: Path) -> None:
    """The proxy's own app (in a child process: the proxy module reads its config at import)."""
    (tmp_path / "proxy.yaml").write_text(
        "model_list:\n  - model_name: m\n    litellm_params: "
        "{model: openai/sim-large, api_base: 'http://127.0.0.1:9/v1', api_key: x}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", _PROXY_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"] == [200, {"recorded": True, "decision_id": "d-9", "quality": 1.0}]
    assert result["bad"][0] == 400
    assert "quality must be a number" in result["bad"][1]["error"]["message"]
    # The report reached the trace file, where `rlm-router train` finds it.
    records = load_request_records([tmp_path / "t.jsonl"], [tmp_path / "feedback.jsonl"])
    assert records == []  # feedback alone is not a request...
    lines = (tmp_path / "feedback.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["decision_id"] == "d-9"  # ...but is joined to one by id
