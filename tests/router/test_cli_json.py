"""Every ``--json`` command prints exactly one JSON document on stdout, also for models
litellm does not know (a self-hosted model behind ``openai/…``), whose calls and errors make
litellm print banners ("Provider List: …", "Give Feedback / Get Help") unless silenced."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rlm_router.router.cli import COMMANDS
from rlm_router.sim import SIM_MODELS, SimConfig, SimServer

SCRIPT = Path(sys.executable).with_name("rlm-router")
BANNERS = ("Provider List", "Give Feedback", "Get Help", "LiteLLM.Info")
# The commands below that have --json, each covered by a test in this module.
COVERED = {"route", "rlm"}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    found: set[str] = set()
    for action in parser._actions:
        found.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _options(sub)
    return found


def test_every_json_command_is_covered() -> None:
    with_json = set()
    for name, (module_name, _) in COMMANDS.items():
        parser = argparse.ArgumentParser()
        importlib.import_module(module_name).register(parser.add_subparsers())
        if "--json" in _options(parser):
            with_json.add(name)
    assert with_json == COVERED


def _run(
    *args: str, stdin: str | None = None, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=cwd,
    )


def _one_document(stdout: str) -> dict[str, object]:
    assert not any(banner in stdout for banner in BANNERS), stdout[:500]
    document = json.loads(stdout)  # the whole of stdout, nothing before or after
    assert isinstance(document, dict)
    return document


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_route_json_with_a_model_litellm_does_not_know(tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{_free_port()}/v1"
    model = {"model": "openai/selfhosted-coder-7b", "api_base": base}
    policy = {
        "version": 1,
        "name": "selfhosted",
        "models": dict.fromkeys(("direct", "rlm_root", "rlm_sub"), model),
    }
    (tmp_path / "policy.yaml").write_text(json.dumps(policy))  # JSON is YAML
    body = {"model": "auto", "messages": [{"role": "user", "content": "What is 2 plus 2?"}]}
    done = _run("route", "--json", "--config", "policy.yaml", stdin=json.dumps(body), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    decision = _one_document(done.stdout)
    assert decision["model"] == "openai/selfhosted-coder-7b"


async def test_rlm_json_with_models_litellm_does_not_know(tmp_path: Path) -> None:
    # The simulator under a self-hosted model's name: litellm knows neither name nor price.
    models = {"selfhosted-7b": dataclasses.replace(SIM_MODELS["sim-large"], name="selfhosted-7b")}
    (tmp_path / "context.txt").write_text("Line one.\nThe access code is 4417.\nLine three.\n")
    async with SimServer(SimConfig(time_scale=0.0, models=models)) as sim:
        done = await asyncio.to_thread(
            _run,
            "rlm", "--json", "--model", "openai/selfhosted-7b",
            "--api-base", sim.base_url, "--api-key", "sk-sim",
            "--context-file", "context.txt", "--query", "What is the access code?",
            cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = _one_document(done.stdout)
    assert result["ok"] is True
    assert "4417" in str(result["answer"])


def test_rlm_shows_the_simulated_models_prices(tmp_path: Path, sim_server: SimServer) -> None:
    (tmp_path / "context.txt").write_text("Line one.\nThe access code is 4417.\nLine three.\n")
    done = _run(
        "rlm", "--json", "--model", "openai/sim-large", "--sub-model", "openai/sim-mini",
        "--api-base", sim_server.base_url, "--api-key", "sk-sim",
        "--context-file", "context.txt", "--query", "What is the access code?",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = _one_document(done.stdout)
    assert result["ok"] is True
    assert result["cost_usd"] > 0  # priced as the simulator prices them, not $0


@pytest.mark.slow  # the provider error is retried per the default retry policy first
def test_rlm_json_on_a_provider_error_is_still_one_document(tmp_path: Path) -> None:
    (tmp_path / "context.txt").write_text("The access code is 4417.\n")
    url = f"http://127.0.0.1:{_free_port()}/v1"
    done = _run(
        "rlm", "--json", "--model", "openai/selfhosted-coder-7b",
        "--api-base", url, "--api-key", "sk-none",
        "--context-file", "context.txt", "--query", "What is the access code?",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1
    result = _one_document(done.stdout)
    assert result["stopped_reason"] == "provider_error"
    assert f"openai/selfhosted-coder-7b at {url}" in str(result["error"])  # where it failed


def test_rlm_without_an_api_key_says_so_at_once(tmp_path: Path, sim_server: SimServer) -> None:
    (tmp_path / "context.txt").write_text("The access code is 4417.\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    done = _run(
        "rlm", "--json", "--model", "openai/sim-large", "--api-base", sim_server.base_url,
        "--context-file", "context.txt", "--query", "What is the access code?",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 1
    result = _one_document(done.stdout)
    assert "no API key" in str(result["error"]) and "OPENAI_API_KEY" in str(result["error"])
