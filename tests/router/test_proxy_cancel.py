"""A client that gives up stops its RLM run: through the real LiteLLM proxy, a disconnect
mid-request leaves no sandbox worker running and no further provider calls.

The simulated provider runs at real-time latency here, so an RLM run takes many seconds and
the client can leave in the middle of it.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from benchmarks.proxy_bench import MASTER_KEY, ProxyProcess
from rlm_router.sim import SimServer
from rlm_router.sim.tasks import generate
from tests.router.proxy_harness import (
    descendants,
    plugin_proxy,
    post_chat,
    simulator,
    wait_until,
    waiting_pool_workers,
)

pytestmark = [pytest.mark.server, pytest.mark.slow]


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[SimServer]:
    with simulator(time_scale=1.0) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(slow_sim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    traces = tmp_path_factory.mktemp("cancel") / "traces.jsonl"
    with plugin_proxy(slow_sim.base_url, traces) as process:
        yield process


def provider_calls(sim: SimServer) -> int:
    return sum(sim.stats["requests"].values())


@pytest.mark.parametrize("stream", [False, True])
def test_a_disconnect_mid_rlm_run_stops_its_workers_and_sub_calls(
    proxy: ProxyProcess, slow_sim: SimServer, stream: bool
) -> None:
    pid = proxy.pid

    def running() -> set[int]:  # the run's workers (not those waiting in the proxy's pool)
        return descendants(pid) - idle - waiting_pool_workers(pid).processes

    idle = descendants(pid) - waiting_pool_workers(pid).processes
    task = generate("oolong", n_tokens=32_000, seed=2, kind="count")
    body = {"model": "auto", "messages": task.messages(), "stream": stream}
    calls_before = provider_calls(slow_sim)
    payload = json.dumps(body).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {MASTER_KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", proxy.port)) as conn:
        conn.sendall(request + payload)
        # The run is under way: its sandbox worker is up and the root model was called.
        assert wait_until(running, 30), proxy.log_tail()
        assert wait_until(lambda: provider_calls(slow_sim) > calls_before, 30)
        # ... and the client leaves without reading the answer.
    gone_at = time.monotonic()
    assert wait_until(lambda: not running(), 5.0), running()
    took = time.monotonic() - gone_at
    time.sleep(0.5)  # a call already on the wire when the run was cancelled may still land
    calls = provider_calls(slow_sim)
    time.sleep(3.0)
    assert provider_calls(slow_sim) == calls, "the cancelled run kept calling the provider"
    print(f"workers gone {took:.2f}s after the disconnect (stream={stream})")
    # The proxy serves on.
    ok = post_chat(
        proxy, {"model": "auto", "messages": [{"role": "user", "content": "Say hi."}]}, timeout=60
    )
    assert ok.status_code == 200
