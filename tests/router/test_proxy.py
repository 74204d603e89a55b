"""The router as a LiteLLM proxy plugin: the real ``litellm`` proxy process, the simulated
provider on loopback, and the official ``openai`` client sending ``model="auto"``.

One proxy serves the whole module (startup takes ~9 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from benchmarks.proxy_bench import (
    MASTER_KEY,
    ProxyProcess,
    free_port,
    plugin_config,
    sim_model_list,
)
from rlm_router.router.plugin.config import (
    HOOK_PATH,
    PROVIDER_PATH,
    ServiceConfig,
    ServiceConfigError,
)
from rlm_router.sim import SIM_MODELS, SimServer
from rlm_router.sim.tasks import generate
from tests.router.proxy_harness import (
    AUTH,
    ROUTE,
    plugin_proxy,
    record_spend,
    scheduled_fault,
    spans_of,
)

# ── the one YAML file (no server needed) ──


def test_proxy_config_wires_the_plugin_into_an_existing_litellm_config(tmp_path: Path) -> None:
    existing = tmp_path / "litellm.yaml"
    existing.write_text(
        yaml.safe_dump(
            {
                "model_list": [
                    {"model_name": "gpt-main", "litellm_params": {"model": "openai/gpt-4o"}},
                    {"model_name": "gpt-mini", "litellm_params": {"model": "openai/gpt-4o-mini"}},
                ],
                "litellm_settings": {"callbacks": ["otel"]},
            }
        )
    )
    router_yaml = tmp_path / "router.yaml"
    router_yaml.write_text(
        yaml.safe_dump(
            {
                "rlm_router": {
                    "litellm_config": "litellm.yaml",
                    "policy": "policy.yaml",
                    "models": {"direct": "gpt-main", "rlm_root": "gpt-main", "rlm_sub": "gpt-mini"},
                }
            }
        )
    )
    config = ServiceConfig.load(router_yaml)
    proxy = config.proxy_config()
    assert proxy["litellm_settings"]["callbacks"] == ["otel", HOOK_PATH]
    assert proxy["litellm_settings"]["custom_provider_map"] == [
        {"provider": "rlm", "custom_handler": PROVIDER_PATH}
    ]
    names = [m["model_name"] for m in proxy["model_list"]]
    assert names == ["gpt-main", "gpt-mini", "rlm/default"]
    assert proxy["rlm_router"]["policy"] == str(tmp_path / "policy.yaml")
    # Wiring twice changes nothing.
    again = ServiceConfig.from_mapping(proxy, path=router_yaml).proxy_config()
    assert again["litellm_settings"] == proxy["litellm_settings"]
    assert [m["model_name"] for m in again["model_list"]] == names


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"models": {"direct": "nope"}}, "not a model_name in model_list"),
        ({"virtual_models": ["gpt-main"]}, "also model_list names"),
        ({"rlm_name": "a/b"}, "without '/'"),
        ({"polcy": "x.yaml"}, "unknown key"),
    ],
)
def test_service_config_errors_name_the_key(section: dict[str, Any], message: str) -> None:
    data = {
        "model_list": [{"model_name": "gpt-main", "litellm_params": {"model": "openai/gpt-4o"}}],
        "rlm_router": section,
    }
    with pytest.raises(ServiceConfigError, match=message):
        ServiceConfig.from_mapping(data, path=None)


# ── the running proxy ──


@pytest.fixture(scope="module")
def sim(sim_server: SimServer) -> SimServer:
    return sim_server


@pytest.fixture(scope="module")
def traces_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("proxy-traces") / "traces.jsonl"


@pytest.fixture(scope="module")
def spend_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What LiteLLM billed each call in the proxy (see ``tests/router/spend_log.py``)."""
    return tmp_path_factory.mktemp("proxy-spend") / "spend.jsonl"


@pytest.fixture(scope="module")
def proxy(sim: SimServer, traces_file: Path, spend_log: Path) -> Iterator[ProxyProcess]:
    config = plugin_config(sim.base_url)
    env = {
        "RLM_ROUTER_FEEDBACK_FILE": str(traces_file.with_name("feedback.jsonl")),
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        **record_spend(config, spend_log),
    }
    with plugin_proxy(sim.base_url, traces_file, config=config, env=env) as process:
        yield process


def billed_by_litellm(spend_log: Path, decision_id: str, *, stream: bool) -> float:
    """LiteLLM's booked cost of the request served under ``decision_id`` (outer call only)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if spend_log.exists():
            for line in spend_log.read_text().splitlines():
                record = json.loads(line)
                if (
                    record["decision_id"] == decision_id
                    and not record["inner"]
                    and record["stream"] == stream
                ):
                    return float(record["response_cost"])
        time.sleep(0.1)
    raise AssertionError(f"LiteLLM logged no success event for {decision_id}")


@pytest.fixture
def client(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.base_url}/v1", api_key=MASTER_KEY, max_retries=0)


ROUTE_HEADERS = (ROUTE, "x-rlm-router-decision-id", "x-rlm-router-reason", "x-rlm-router-fallback")


def assert_route_headers(headers: Any, route: str) -> None:
    """The four x-rlm-router-* headers the README promises on every response."""
    missing = [name for name in ROUTE_HEADERS if not headers.get(name)]
    assert not missing, missing
    assert headers[ROUTE] == route


@pytest.mark.server
def test_short_request_is_served_direct(client: openai.OpenAI) -> None:
    task = generate("qa", seed=3)
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=task.messages(),  # type: ignore[arg-type]
    )
    assert_route_headers(raw.headers, "llm")
    assert raw.headers["x-rlm-router-fallback"] == "none"
    completion = raw.parse()
    assert task.score(completion.choices[0].message.content) == 1.0


@pytest.mark.server
def test_long_compositional_request_is_served_by_rlm_and_billed_in_full(
    client: openai.OpenAI, sim: SimServer, spend_log: Path
) -> None:
    task = generate("oolong", n_tokens=32_000, seed=1, kind="count")
    ledger_before = sim_spend(sim)
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=task.messages(),  # type: ignore[arg-type]
    )
    assert_route_headers(raw.headers, "rlm")
    completion = raw.parse()
    assert task.score(completion.choices[0].message.content) == 1.0
    # LiteLLM's spend for the request is the sum of what the engine's sub-calls cost.
    spent = sim_spend(sim) - ledger_before
    billed = float(raw.headers["x-litellm-response-cost"])
    booked = billed_by_litellm(spend_log, raw.headers["x-rlm-router-decision-id"], stream=False)
    assert billed > 0
    assert billed == pytest.approx(spent, rel=1e-6)
    assert booked == pytest.approx(spent, rel=1e-6)


@pytest.mark.server
def test_streaming_on_the_direct_route(client: openai.OpenAI) -> None:
    task = generate("qa", seed=3)
    with client.chat.completions.with_streaming_response.create(
        model="auto",
        messages=task.messages(),  # type: ignore[arg-type]
        stream=True,
    ) as response:
        assert_route_headers(response.headers, "llm")
        text = "".join(
            chunk.choices[0].delta.content or "" for chunk in response.parse() if chunk.choices
        )
    assert task.score(text) == 1.0


@pytest.mark.server
def test_streaming_on_the_rlm_route(client: openai.OpenAI, sim: SimServer, spend_log: Path) -> None:
    task = generate("oolong", n_tokens=32_000, seed=2, kind="count")
    ledger_before = sim_spend(sim)
    with client.chat.completions.with_streaming_response.create(
        model="auto",
        messages=task.messages(),  # type: ignore[arg-type]
        stream=True,
    ) as response:
        assert_route_headers(response.headers, "rlm")
        decision_id = response.headers["x-rlm-router-decision-id"]
        chunks = [chunk for chunk in response.parse() if chunk.choices]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert task.score(text) == 1.0
    # A streamed escalation is billed in full too.
    spent = sim_spend(sim) - ledger_before
    assert billed_by_litellm(spend_log, decision_id, stream=True) == pytest.approx(spent, rel=1e-6)


@pytest.mark.server
def test_context_window_error_on_the_direct_route_falls_back_to_rlm(
    client: openai.OpenAI, sim: SimServer
) -> None:
    task = generate("niah", n_tokens=4_000, seed=5)
    with scheduled_fault(sim, "context_length", model="sim-large", count=1):
        raw = client.chat.completions.with_raw_response.create(
            model="auto",
            messages=task.messages(),  # type: ignore[arg-type]
        )
    assert raw.headers[ROUTE] == "rlm"
    assert raw.headers["x-rlm-router-fallback"] == "llm_to_rlm"
    assert task.score(raw.parse().choices[0].message.content) == 1.0


@pytest.mark.server
def test_other_model_names_pass_through(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="sim-large", messages=[{"role": "user", "content": "Say hello."}]
    )
    assert ROUTE not in raw.headers
    assert raw.parse().choices[0].message.content


@pytest.mark.server
@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        ({"model": "auto"}, {}, "messages"),
        ({"model": "auto", "messages": "hello"}, {}, "messages"),
        ({"model": "auto", "messages": [{"role": "user", "content": 5}]}, {}, "content"),
        (
            {"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
            {"x-latency-budget-ms": "-10"},
            "x-latency-budget-ms",
        ),
        (
            {"model": "auto-nonexistent", "messages": [{"role": "user", "content": "hi"}]},
            {},
            "auto-nonexistent",
        ),
    ],
)
def test_malformed_requests_get_a_4xx_that_says_what_is_wrong(
    proxy: ProxyProcess,
    client: openai.OpenAI,
    body: dict[str, Any],
    headers: dict[str, str],
    message: str,
) -> None:
    response = httpx.post(
        f"{proxy.base_url}/v1/chat/completions",
        json=body,
        headers={**AUTH, **headers},
        timeout=30,
    )
    assert 400 <= response.status_code < 500
    assert message in response.json()["error"]["message"]
    # ... and the proxy keeps serving.
    assert proxy.alive()
    ok = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "What is 2 + 2?"}]
    )
    assert ok.choices[0].message.content


@pytest.mark.server
def test_each_routed_request_leaves_a_request_span_with_its_outcome(
    client: openai.OpenAI, traces_file: Path
) -> None:
    short = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=generate("qa", seed=4).messages(),  # type: ignore[arg-type]
    )
    task = generate("oolong", n_tokens=32_000, seed=1, kind="count")
    long = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=task.messages(),  # type: ignore[arg-type]
    )
    wanted = {
        short.headers["x-rlm-router-decision-id"]: ("llm", short),
        long.headers["x-rlm-router-decision-id"]: ("rlm", long),
    }
    spans = spans_of(
        traces_file,
        lambda span: (
            span.name == "rlm_router.request"
            and span.attributes.get("rlm_router.decision.id") in wanted
        ),
        enough=lambda spans: len({s.attributes["rlm_router.decision.id"] for s in spans}) == 2,
    )
    found = {str(span.attributes["rlm_router.decision.id"]): span for span in spans}
    assert set(found) == set(wanted)
    for decision_id, (route, raw) in wanted.items():
        span = found[decision_id]
        assert span.attributes["rlm_router.route.served"] == route
        billed = float(raw.headers["x-litellm-response-cost"])
        assert span.attributes["rlm_router.outcome.cost_usd"] == pytest.approx(billed)


@pytest.mark.server
def test_rlm_router_serve_starts_the_proxy_from_one_yaml_file(
    sim: SimServer, tmp_path: Path
) -> None:
    config = tmp_path / "router.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "rlm_router": {
                    "virtual_models": ["auto"],
                    "models": {
                        "direct": "sim-large",
                        "rlm_root": "sim-large",
                        "rlm_sub": "sim-mini",
                    },
                },
                "model_list": sim_model_list(sim.base_url),
            }
        )
    )
    port = free_port()
    scratch = tmp_path / "tmp"  # serve's own TMPDIR: its generated config must not outlive it
    scratch.mkdir()
    env = {
        **os.environ,
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "OTEL_SDK_DISABLED": "true",
        "TMPDIR": str(scratch),
    }
    command = [str(Path(sys.executable).parent / "rlm-router"), "serve", "--config", str(config)]
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert process.poll() is None, "rlm-router serve exited"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/health/liveliness", timeout=1).status_code == 200:
                    break
            time.sleep(0.25)
        served = openai.OpenAI(base_url=f"{base}/v1", api_key=MASTER_KEY, max_retries=0)
        task = generate("qa", seed=3)
        raw = served.chat.completions.with_raw_response.create(
            model="auto",
            messages=task.messages(),  # type: ignore[arg-type]
        )
        assert raw.headers[ROUTE] == "llm"
        assert task.score(raw.parse().choices[0].message.content) == 1.0
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    assert not list(scratch.glob("rlm-router-serve-*"))


def _serve(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "rlm-router"), "serve", "--config", str(config)]
    env = {**os.environ, "LITELLM_MASTER_KEY": MASTER_KEY, "OTEL_SDK_DISABLED": "true"}
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=120)


def test_serve_on_a_busy_port_fails_at_once_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "router.yaml"
    config.write_text(yaml.safe_dump({"model_list": sim_model_list("http://127.0.0.1:1/v1")}))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve(config, "--port", str(port))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in lines[0] and "--port" in lines[0]
    assert "LiteLLM proxy on" not in done.stderr  # nothing was started


def test_serve_reports_a_bad_policy_value_before_starting(tmp_path: Path) -> None:
    from rlm_router.policies.loader import DEFAULT_POLICY_PATH

    policy = tmp_path / "policy.yaml"
    policy.write_text(DEFAULT_POLICY_PATH.read_text().replace("threshold: 0.5", "threshold: 2"))
    config = tmp_path / "router.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "rlm_router": {"policy": "policy.yaml"},
                "model_list": sim_model_list("http://127.0.0.1:1/v1"),
            }
        )
    )
    done = _serve(config, "--port", str(free_port()))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(policy) in lines[0] and "threshold" in lines[0]
    assert "LiteLLM proxy on" not in done.stderr


def test_serve_refuses_to_start_without_a_master_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rlm_router.router.cli import main

    config = tmp_path / "router.yaml"
    config.write_text(yaml.safe_dump({"model_list": sim_model_list("http://127.0.0.1:1/v1")}))
    monkeypatch.delenv("LITELLM_MASTER_KEY", raising=False)
    assert main(["serve", "--config", str(config)]) == 2
    assert "LITELLM_MASTER_KEY" in capsys.readouterr().err


def test_serve_prints_the_generated_proxy_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rlm_router.router.cli import main

    config = tmp_path / "router.yaml"
    config.write_text(yaml.safe_dump({"model_list": sim_model_list("http://127.0.0.1:1/v1")}))
    assert main(["serve", "--config", str(config), "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert HOOK_PATH in printed["litellm_settings"]["callbacks"]
    assert "rlm/default" in [m["model_name"] for m in printed["model_list"]]


def sim_spend(sim: SimServer) -> float:
    """What the simulated provider has served so far, priced at its models' prices (USD)."""
    total = 0.0
    for name, model in SIM_MODELS.items():
        total += sim.stats["prompt_tokens"][name] * model.input_cost_per_token
        total += sim.stats["completion_tokens"][name] * model.output_cost_per_token
    return total


def test_sim_model_list_names_both_models() -> None:
    names = [m["model_name"] for m in sim_model_list("http://127.0.0.1:1/v1")]
    assert names == ["sim-large", "sim-mini"]


@pytest.mark.server
def test_a_latency_budget_the_rlm_route_cannot_meet_stays_direct(client: openai.OpenAI) -> None:
    task = generate("oolong", n_tokens=32_000, seed=1, kind="count")
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=task.messages(),  # type: ignore[arg-type]
        extra_headers={"x-latency-budget-ms": "500"},
    )
    assert raw.headers[ROUTE] == "llm"
    assert "latency" in raw.headers["x-rlm-router-reason"]


@pytest.mark.server
def test_provider_errors_on_the_direct_route_are_retried(
    client: openai.OpenAI, sim: SimServer
) -> None:
    task = generate("qa", seed=3)
    with scheduled_fault(sim, "503", model="sim-large", count=2):
        raw = client.chat.completions.with_raw_response.create(
            model="auto",
            messages=task.messages(),  # type: ignore[arg-type]
        )
    assert raw.headers[ROUTE] == "llm"
    assert task.score(raw.parse().choices[0].message.content) == 1.0


@pytest.mark.server
def test_a_failed_request_leaves_a_request_span_with_its_error(
    client: openai.OpenAI, sim: SimServer, traces_file: Path
) -> None:
    with (
        scheduled_fault(sim, "500", model="sim-large", count=20),
        pytest.raises(openai.InternalServerError),
    ):
        client.chat.completions.create(
            model="auto",
            messages=generate("qa", seed=5).messages(),  # type: ignore[arg-type]
        )
    errors = spans_of(
        traces_file,
        lambda span: (
            span.name == "rlm_router.request"
            and bool(span.attributes.get("rlm_router.outcome.error_type"))
        ),
    )
    assert errors, "no request span recorded the failure"
    assert errors[-1].status_code == "ERROR"


def test_group_window_comes_from_model_info_or_litellm() -> None:
    config = ServiceConfig.from_mapping(
        {
            "model_list": [
                {
                    "model_name": "small",
                    "litellm_params": {"model": "openai/x"},
                    "model_info": {"max_input_tokens": 32_000},
                },
                {"model_name": "mini", "litellm_params": {"model": "gpt-4o-mini"}},
                {"model_name": "odd", "litellm_params": {"model": "openai/not-a-model"}},
            ]
        },
        path=None,
    )
    assert config.group_window("small") == 32_000
    assert config.group_window("mini") == 128_000
    assert config.group_window("odd") is None
    assert config.group_window("missing") is None


@pytest.mark.server
def test_feedback_endpoint_records_quality_for_a_decision(
    client: openai.OpenAI, proxy: ProxyProcess, traces_file: Path
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=generate("qa", seed=5).messages(),  # type: ignore[arg-type]
    )
    decision_id = raw.headers["x-rlm-router-decision-id"]
    url = f"{proxy.base_url}/rlm-router/feedback"
    ok = httpx.post(url, json={"decision_id": decision_id, "quality": 0.25}, headers=AUTH)
    assert ok.status_code == 200, ok.text
    bad = httpx.post(url, json={"decision_id": decision_id, "quality": 7}, headers=AUTH)
    assert bad.status_code == 400 and "quality" in bad.json()["error"]["message"]
    # The report is a span in the proxy's traces, joined to the request by decision id.
    spans = spans_of(
        traces_file,
        lambda span: (
            span.name == "rlm_router.feedback"
            and span.attributes.get("rlm_router.decision.id") == decision_id
        ),
    )
    assert spans and spans[0].attributes["rlm_router.outcome.quality"] == 0.25
    (line,) = traces_file.with_name("feedback.jsonl").read_text().splitlines()
    assert json.loads(line)["decision_id"] == decision_id


def test_service_config_errors_name_the_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "router.yaml"
    path.write_text(
        "model_list:\n"
        "  - model_name: gpt-main\n"
        "    litellm_params: {model: openai/gpt-4o}\n"
        "rlm_router:\n"
        "  virtual_models: [auto]\n"
        "  models:\n"
        "    direct: nope\n"
    )
    with pytest.raises(ServiceConfigError) as caught:
        ServiceConfig.load(path)
    assert str(caught.value).startswith(f"{path}:7: 'rlm_router.models.direct' is 'nope'")
