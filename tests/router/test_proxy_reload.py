"""Hot policy reload in the running LiteLLM proxy: ``rlm-router train --out`` onto the watched
classifier artifact reaches the proxy without a restart; a broken policy keeps the last good
one (admin endpoint), and ``SIGHUP`` reloads.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks.proxy_bench import MASTER_KEY, ProxyProcess, plugin_config
from rlm_router.policies.loader import DEFAULT_POLICY_PATH
from rlm_router.router.cli import main as cli_main
from rlm_router.sim import SimServer
from rlm_router.telemetry import load_request_records
from tests.policies.test_training import long_aggregation_needs_rlm, policy_yaml, write_traffic

pytestmark = [pytest.mark.server, pytest.mark.slow]
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("reload")
    artifact = directory / "classifier.json"
    artifact.write_bytes(DEFAULT_POLICY_PATH.with_name("default_classifier.json").read_bytes())
    policy_yaml(directory, exploration=0.3, artifact=artifact.name)
    return directory


@pytest.fixture(scope="module")
def proxy(sim_server: SimServer, workdir: Path) -> Iterator[ProxyProcess]:
    config = plugin_config(sim_server.base_url, policy=str(workdir / "policy.yaml"))
    env = {"RLM_ROUTER_TRACES_FILE": str(workdir / "traces.jsonl"), "OTEL_BSP_SCHEDULE_DELAY": "50"}
    with ProxyProcess(config, env=env) as process:
        yield process


def served_version(proxy: ProxyProcess, workdir: Path) -> str:
    """The policy version the proxy decided a fresh request under (from its span)."""
    reply = httpx.post(
        f"{proxy.base_url}/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": "Say hi."}]},
        headers=AUTH,
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    decision_id = reply.headers["x-rlm-router-decision-id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for record in load_request_records([workdir / "traces.jsonl"]):
            if record.decision_id == decision_id and record.policy_version:
                return record.policy_version
        time.sleep(0.1)
    raise AssertionError(f"no span for {decision_id}")


def _until(predicate: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def test_a_retrained_classifier_reaches_the_running_proxy(
    proxy: ProxyProcess, workdir: Path, tmp_path: Path
) -> None:
    shipped = json.loads((workdir / "classifier.json").read_text())["version"]
    assert served_version(proxy, workdir).endswith(f"/{shipped}")
    traces, feedback = write_traffic(
        tmp_path, n=800, exploration=0.3, truth=long_aggregation_needs_rlm
    )
    code = cli_main(
        [
            "train", "--traces", str(traces), "--feedback", str(feedback),
            "--config", str(workdir / "policy.yaml"), "--out", str(workdir / "classifier.json"),
            "--version", "learned-live",
        ]
    )  # fmt: skip
    assert code == 0
    # The file watch picks the new artifact up: no restart, no signal.
    assert _until(lambda: served_version(proxy, workdir).endswith("/learned-live"), 15)
    assert proxy.alive()


def test_a_broken_policy_keeps_the_last_good_one_and_sighup_reloads(
    proxy: ProxyProcess, workdir: Path
) -> None:
    policy = workdir / "policy.yaml"
    good = policy.read_text()
    serving = served_version(proxy, workdir)
    url = f"{proxy.base_url}/rlm-router/reload"
    try:
        policy.write_text(good.replace("threshold: 0.5", "threshold: 7"))
        reply = httpx.post(url, headers=AUTH, timeout=30)
        assert reply.status_code == 422
        body = reply.json()
        assert body["reloaded"] is False
        assert f"{policy}:" in body["error"] and "classifier.threshold" in body["error"]
        assert body["policy_version"] == serving
        assert served_version(proxy, workdir) == serving  # still the last good policy
        assert httpx.post(url, headers={"Authorization": "Bearer sk-wrong"}, timeout=30).is_error
    finally:
        policy.write_text(good.replace("threshold: 0.5", "threshold: 0.6"))
    os.kill(proxy._process.pid, signal.SIGHUP)  # type: ignore[union-attr]
    assert _until(lambda: served_version(proxy, workdir) != serving, 10)
    assert proxy.alive()
    status = httpx.get(url, headers=AUTH, timeout=30).json()
    assert status["policy_version"] == served_version(proxy, workdir)
    assert status["reloads"]["http:failed"] == 1
    assert status["reloads"]["signal:ok"] == 1  # the file watch may have reloaded too
    assert status["reloads"]["file:ok"] >= 1  # the retrained artifact
