"""The proxy pays LiteLLM's first-request costs at start-up (``router.plugin.warm``) with a
request nobody sees: no provider call, no decision, no span, a $0 entry tagged as the
warm-up in LiteLLM's own logs. (How much faster the first request is: a benchmark,
``benchmarks/warm_start_bench.py``, not a timed assert.)"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from benchmarks.proxy_bench import plugin_config
from rlm_router.router.plugin.warm import WARM_UP_TAG
from tests.router.proxy_harness import (
    ROUTE,
    plugin_proxy,
    post_chat,
    record_spend,
    simulator,
    wait_until,
)


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _spans(path: Path) -> list[str]:
    if not path.exists():
        return []
    names = []
    for line in path.read_text().splitlines():
        for resource in json.loads(line)["resourceSpans"]:
            for scope in resource["scopeSpans"]:
                names += [span["name"] for span in scope["spans"]]
    return names


@pytest.mark.server
@pytest.mark.slow
def test_the_start_up_warm_up_calls_no_provider_and_leaves_no_decision(tmp_path: Path) -> None:
    traces, spend = tmp_path / "traces.jsonl", tmp_path / "spend.jsonl"
    with simulator(time_scale=0.0) as sim:
        config = plugin_config(sim.base_url)
        env = {"OTEL_BSP_SCHEDULE_DELAY": "100", **record_spend(config, spend)}
        with plugin_proxy(sim.base_url, traces, config=config, env=env) as proxy:
            assert wait_until(lambda: _records(spend), 120, interval=0.1)
            (warm_up,) = _records(spend)  # the warm-up, before any client request
            assert warm_up["tags"] == [WARM_UP_TAG] and warm_up["user"] == WARM_UP_TAG
            assert warm_up["model"] == "sim-large" and warm_up["decision_id"] is None
            assert warm_up["response_cost"] == 0
            time.sleep(1.0)  # past the span exporter's 100 ms batch delay
            assert sum(sim.stats["requests"].values()) == 0  # mock_response: no provider call
            assert "rlm_router.request" not in _spans(traces)
            # A client's routed request afterwards is served, decided and traced as usual.
            hello = [{"role": "user", "content": "Say hello."}]
            reply = post_chat(proxy, {"model": "auto", "messages": hello}, timeout=60)
            assert reply.status_code == 200 and reply.headers[ROUTE] == "llm"
            wait_until(lambda: "rlm_router.request" in _spans(traces), 10, interval=0.1)
            assert _spans(traces).count("rlm_router.request") == 1
            assert sum(sim.stats["requests"].values()) == 1
