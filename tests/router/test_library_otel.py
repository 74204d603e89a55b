"""An application that configured the OpenTelemetry SDK gets the library's span tree with no
wiring of ours: the library reports through the OTel API's global providers.

The global providers can be set once per process, so the application runs in a subprocess
(its own interpreter, as a real app would be) and reports what its exporters received.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from rlm_router.sim import SimServer

APP = textwrap.dedent(
    """
    import asyncio, json, sys
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

    from rlm_router.router import Router

    async def main():
        router = Router.from_config(sys.argv[1])
        with trace.get_tracer("app").start_as_current_span("app handler"):
            response = await router.acompletion(
                model="auto", messages=[{"role": "user", "content": "What is 6 times 7?"}]
            )
        return response.choices[0].message.content

    answer = asyncio.run(main())
    spans = [
        {
            "name": s.name,
            "id": s.context.span_id,
            "parent": s.parent.span_id if s.parent else None,
            "start": s.start_time,
            "end": s.end_time,
            "attributes": {k: v for k, v in s.attributes.items() if isinstance(v, (int, str))},
        }
        for s in exporter.get_finished_spans()
    ]
    data = reader.get_metrics_data()
    names = sorted(
        m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    )
    print(json.dumps({"answer": answer, "spans": spans, "metrics": names}))
    """
)


def test_an_app_configured_sdk_receives_the_library_span_tree(
    sim_server: SimServer, tmp_path: Path
) -> None:
    from rlm_router.policies.loader import DEFAULT_POLICY_PATH

    policy = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    for role in ("direct", "rlm_root", "rlm_sub"):
        policy["models"][role].update(api_base=sim_server.base_url, api_key_env="SIM_KEY")
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    (tmp_path / "app.py").write_text(APP)
    done = subprocess.run(
        [sys.executable, "app.py", "policy.yaml"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "SIM_KEY": "sk-sim", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["answer"] == "42"
    spans = {s["name"]: s for s in report["spans"]}
    app = spans["app handler"]
    request = spans["rlm_router.request"]
    chat = next(s for name, s in spans.items() if name.startswith("chat "))
    assert request["parent"] == app["id"]  # our tree hangs under the app's own span
    assert spans["rlm_router.decide"]["parent"] == request["id"]
    assert chat["parent"] == request["id"]
    assert chat["attributes"]["gen_ai.usage.input_tokens"] > 0
    for child in (spans["rlm_router.decide"], chat):  # children lie within their parent
        assert request["start"] <= child["start"] <= child["end"] <= request["end"]
    assert any(name.startswith("gen_ai.client.") for name in report["metrics"])
