"""``rlm-router serve``: the proxy started from one YAML file (a real server on loopback),
and the one-line errors it gives before starting anything."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from benchmarks.proxy_bench import MASTER_KEY, free_port, sim_model_list
from rlm_router.router.plugin.config import HOOK_PATH
from rlm_router.sim import SimServer
from rlm_router.sim.tasks import generate
from tests.router.proxy_harness import ROUTE


@pytest.fixture(scope="module")
def sim(sim_server: SimServer) -> SimServer:
    return sim_server


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
