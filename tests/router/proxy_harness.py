"""What the tests of the proxy plugin share (tests/router, tests/multi, tests/load).

- ``plugin_proxy``: a real LiteLLM proxy process (``benchmarks.proxy_bench.ProxyProcess``,
  the ``litellm`` CLI on a free loopback port) with the plugin wired to a provider, writing
  its spans to a traces file; ``record_spend`` adds ``tests/router/spend_log.py``'s recorder.
- ``simulator``: a simulated provider in a thread at a modelled latency of its own (the
  session's ``sim_server`` fixture answers at once).
- ``policy_with``: the shipped policy with some sections replaced; ``router_yaml``: a small
  router.yaml for config-loading tests.
- ``post_chat``, ``AUTH``, the ``x-rlm-router-*`` header names; ``scheduled_fault``: a
  provider fault for the length of a block.
- ``wait_until`` and ``spans_of``: polling for state and for spans in a traces file (spans
  reach the file within the exporter's batch delay); ``descendants``: the proxy's process
  tree (its sandbox workers); ``waiting_pool_workers``: those of them waiting in its pool of
  pre-started workers (the shipped policy starts two), which are not a run's.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.proxy_bench import MASTER_KEY, ProxyProcess, plugin_config
from rlm_router.policies.loader import DEFAULT_POLICY_PATH
from rlm_router.sim import SimConfig, SimServer
from rlm_router.telemetry import SpanRecord, read_spans

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
ROUTE = "x-rlm-router-route"
DECISION_ID = "x-rlm-router-decision-id"
REPO = Path(__file__).resolve().parents[2]


def plugin_proxy(
    provider_url: str,
    traces: Path,
    *,
    policy: Path | None = None,
    env: Mapping[str, str] | None = None,
    config: dict[str, Any] | None = None,
) -> ProxyProcess:
    """A proxy (start it with ``with``) routing ``auto`` over the provider at
    ``provider_url``; ``config`` replaces ``plugin_config``'s for tests that edit it."""
    if config is None:
        config = plugin_config(provider_url, policy=None if policy is None else str(policy))
    return ProxyProcess(config, env={"RLM_ROUTER_TRACES_FILE": str(traces), **(env or {})})


def record_spend(config: dict[str, Any], spend_log: Path) -> dict[str, str]:
    """Add the spend recorder to ``config``'s callbacks; returns the environment it needs."""
    config["litellm_settings"]["callbacks"].append("tests.router.spend_log.recorder")
    return {"RLM_ROUTER_TEST_SPEND_LOG": str(spend_log), "PYTHONPATH": str(REPO)}


@contextlib.contextmanager
def simulator(time_scale: float) -> Iterator[SimServer]:
    """A simulated provider (seed 0) at ``time_scale`` times its modelled latency."""
    server = SimServer(SimConfig(seed=0, time_scale=time_scale)).start_in_thread()
    try:
        yield server
    finally:
        server.stop()


def router_yaml(directory: Path, section: str) -> Path:
    """``directory/router.yaml``: one model group (``gpt-main``, ``openai/gpt-4o``) and
    ``section`` as the YAML body of its ``rlm_router`` key (indented by two; its first line
    is line 5 of the file, so tests can name the line of an error)."""
    path = directory / "router.yaml"
    path.write_text(
        "model_list:\n"
        "  - model_name: gpt-main\n"
        "    litellm_params: {model: openai/gpt-4o}\n"
        "rlm_router:\n" + section
    )
    return path


def policy_with(directory: Path, **sections: str) -> Path:
    """The shipped policy with some sections replaced (YAML text per section)."""
    text = DEFAULT_POLICY_PATH.read_text()
    kept = []
    skipping = False
    for line in text.splitlines():
        top = line and not line[0].isspace() and not line.startswith("#")
        if top:
            skipping = line.split(":", 1)[0] in sections
        if not skipping:
            kept.append(line)
    for name, body in sections.items():
        kept.append(f"{name}:\n{body}")
    path = directory / "policy.yaml"
    path.write_text("\n".join(kept) + "\n")
    return path


def post_chat(
    proxy: ProxyProcess, body: bytes | dict[str, object], *, timeout: float = 120
) -> httpx.Response:
    """POST ``body`` (JSON bytes as they are, or an object) to the proxy's chat endpoint."""
    url = f"{proxy.base_url}/v1/chat/completions"
    if isinstance(body, bytes):
        headers = {**AUTH, "content-type": "application/json"}
        return httpx.post(url, content=body, headers=headers, timeout=timeout)
    return httpx.post(url, json=body, headers=AUTH, timeout=timeout)


@contextlib.contextmanager
def scheduled_fault(sim: SimServer, fault: str, *, model: str, count: int) -> Iterator[None]:
    """The provider answers ``model``'s next ``count`` calls with ``fault`` inside the block;
    every scheduled fault is cleared after it."""
    url = f"{sim.url}/sim/faults"
    httpx.post(url, json={"model": model, "fault": fault, "count": count})
    try:
        yield
    finally:
        httpx.delete(url)


def wait_until(predicate: Callable[[], object], seconds: float, interval: float = 0.05) -> bool:
    """Whether ``predicate()`` became true within ``seconds`` (checked once more at the end)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def spans_of(
    traces: Path,
    match: Callable[[SpanRecord], bool],
    *,
    enough: Callable[[list[SpanRecord]], bool] = bool,
    seconds: float = 10.0,
) -> list[SpanRecord]:
    """The spans of ``traces`` that ``match``, once there are ``enough`` of them (default:
    any) or ``seconds`` have passed."""
    found: list[SpanRecord] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not enough(found):
        time.sleep(0.2)
        if traces.exists():
            found = [span for span in read_spans([traces]) if match(span)]
    return found


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (the sandbox workers of the proxy)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@dataclass
class PoolWorkers:
    """The proxy's pre-started workers waiting for a request (policy sandbox.prestart_workers)."""

    roots: list[int]  # one per waiting worker
    processes: set[int]  # the roots and what they forked (the PID-namespace REPL)
    dirs: set[str]  # their workspaces: scratch and private directory each


def waiting_pool_workers(proxy_pid: int) -> PoolWorkers:
    """Workers started without a context (their config says ``"context_kind": null``) whose
    context file is still empty: taken by a run, a worker gets its context written."""
    configs: dict[int, dict[str, Any]] = {}
    parents: dict[int, int] = {}
    for pid in descendants(proxy_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        if len(argv) > 3 and b"rlm_core/worker" in argv[-3] and b'"context_kind": null' in argv[-2]:
            configs[pid] = json.loads(argv[-2])
    pools = PoolWorkers([], set(), set())
    for pid in sorted(pid for pid in configs if parents.get(pid) not in configs):
        try:  # the private directory, from the context file's descriptor the root holds
            context = Path(os.readlink(f"/proc/{pid}/fd/{configs[pid]['context_fd']}"))
            if context.name != "context" or context.stat().st_size > 0:
                continue  # taken: a run's worker (one without a PID namespace closed it)
        except OSError:
            continue  # gone meanwhile
        pools.roots.append(pid)
        pools.dirs |= {Path(configs[pid]["scratch"]).name, context.parent.name}
        pools.processes |= {pid} | {p for p in configs if parents.get(p) == pid}
    return pools
