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

from benchmarks.proxy_bench import ProxyProcess
from rlm_router.policies.loader import DEFAULT_POLICY_PATH
from rlm_router.router.cli import main as cli_main
from rlm_router.sim import SimServer
from rlm_router.telemetry import load_request_records
from tests.policies.test_training import long_aggregation_needs_rlm, policy_yaml, write_traffic
from tests.router.proxy_harness import AUTH, DECISION_ID, plugin_proxy, post_chat, wait_until

pytestmark = [pytest.mark.server, pytest.mark.slow]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("reload")
    artifact = directory / "classifier.json"
    artifact.write_bytes(DEFAULT_POLICY_PATH.with_name("default_classifier.json").read_bytes())
    policy_yaml(directory, exploration=0.3, artifact=artifact.name)
    return directory


@pytest.fixture(scope="module")
def proxy(sim_server: SimServer, workdir: Path) -> Iterator[ProxyProcess]:
    env = {"OTEL_BSP_SCHEDULE_DELAY": "50"}
    policy = workdir / "policy.yaml"
    with plugin_proxy(sim_server.base_url, workdir / "traces.jsonl", policy=policy, env=env) as p:
        yield p


def served_version(proxy: ProxyProcess, workdir: Path) -> str:
    """The policy version the proxy decided a fresh request under (from its span)."""
    reply = post_chat(
        proxy, {"model": "auto", "messages": [{"role": "user", "content": "Say hi."}]}, timeout=60
    )
    assert reply.status_code == 200, reply.text
    decision_id = reply.headers[DECISION_ID]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for record in load_request_records([workdir / "traces.jsonl"]):
            if record.decision_id == decision_id and record.policy_version:
                return record.policy_version
        time.sleep(0.1)
    raise AssertionError(f"no span for {decision_id}")


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
    assert wait_until(
        lambda: served_version(proxy, workdir).endswith("/learned-live"), 15, interval=0.2
    )
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
    os.kill(proxy.pid, signal.SIGHUP)
    assert wait_until(lambda: served_version(proxy, workdir) != serving, 10, interval=0.2)
    assert proxy.alive()
    status = httpx.get(url, headers=AUTH, timeout=30).json()
    assert status["policy_version"] == served_version(proxy, workdir)
    assert status["reloads"]["http:failed"] == 1
    assert status["reloads"]["signal:ok"] == 1  # the file watch may have reloaded too
    assert status["reloads"]["file:ok"] >= 1  # the retrained artifact
