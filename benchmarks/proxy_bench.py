"""Proxy overhead of the router plugin on the direct route.

Two real LiteLLM proxy processes run side by side against the same simulated provider: one
bare (clients name the direct model), one with the router plugin (clients send ``auto``; the
plugin decides and rewrites to the same direct model). The same bounded load from one
loopback client goes to both, interleaved in rounds so drift on a shared machine hits both
alike:

- latency: sequential requests (one in flight), p50/p95 per proxy; added p50 = plugin - bare;
- throughput: ``--concurrency`` requests in flight, completed requests per second.

Targets (issue 5): added p50 < 1 ms, throughput >= 0.95x the bare proxy.

Usage: ``python -m benchmarks.proxy_bench [--requests 400] [--rounds 4] [--concurrency 8]``
writes a table to stdout and JSON to ``out/proxy_bench.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from rlm_core.env import offline_environ

MASTER_KEY = "sk-rlm-router-bench"
SHORT_PROMPTS = (
    "What is the capital of France?",
    "Say hello in Spanish.",
    "Give me one word that rhymes with cat.",
    "What is 12 times 7?",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sim_model_list(base_url: str) -> list[dict[str, Any]]:
    """model_list entries for the simulated provider's models (group name = sim model name).

    Prices and windows are declared per deployment, so the proxy's spend tracking uses the
    simulator's prices without ``register_sim_models()`` running in the proxy process.
    """
    from sim.models import SIM_MODELS

    return [
        {
            "model_name": name,
            "litellm_params": {
                "model": f"openai/{name}",
                "api_base": base_url,
                "api_key": "sk-sim",
                "input_cost_per_token": model.input_cost_per_token,
                "output_cost_per_token": model.output_cost_per_token,
            },
            "model_info": {
                "max_input_tokens": model.context_window,
                "max_output_tokens": model.max_output_tokens,
            },
        }
        for name, model in SIM_MODELS.items()
        if name in ("sim-large", "sim-mini")
    ]


@dataclass
class ProxyProcess:
    """A real ``litellm`` proxy process on a free loopback port (``with`` or start/stop)."""

    config: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    log_path: Path | None = None
    _process: subprocess.Popen[bytes] | None = None
    _dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 90.0) -> ProxyProcess:
        self._dir = tempfile.TemporaryDirectory(prefix="rlm-router-proxy-")
        config_path = Path(self._dir.name) / "config.yaml"
        config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.port = self.port or free_port()
        self.log_path = Path(self._dir.name) / "proxy.log"
        env = {**offline_environ(os.environ), "LITELLM_MASTER_KEY": MASTER_KEY, **self.env}
        env.setdefault("LITELLM_LOG", "ERROR")
        command = [
            str(Path(sys.executable).parent / "litellm"),
            "--config",
            str(config_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--num_workers",
            "1",
        ]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"{self.base_url}/health/liveliness"
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"LiteLLM proxy exited at startup:\n{self.log_tail()}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"LiteLLM proxy not ready after {timeout_s}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the proxy and its child processes."""
        if self._process is None:
            return 0.0
        return process_tree_cpu_seconds(self._process.pid)

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self._process = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> ProxyProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def process_tree_cpu_seconds(root: int) -> float:
    """utime + stime of ``root`` and its descendants, from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[1] is ppid; utime and stime are fields 14 and 15 of stat (1-based).
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    total, frontier = 0.0, [root]
    while frontier:
        pid = frontier.pop()
        if pid in stats:
            total += stats[pid][1]
        frontier.extend(child for child, (parent, _) in stats.items() if parent == pid)
    return total


def plugin_config(base_url: str, *, policy: str | None = None) -> dict[str, Any]:
    """The proxy config ``rlm-router serve`` would generate for the simulated provider."""
    from router.plugin.config import ServiceConfig

    section: dict[str, Any] = {
        "models": {"direct": "sim-large", "rlm_root": "sim-large", "rlm_sub": "sim-mini"}
    }
    if policy is not None:
        section["policy"] = policy
    data = {"model_list": sim_model_list(base_url), "rlm_router": section}
    return ServiceConfig.from_mapping(data, path=None).proxy_config()


@dataclass
class Measurement:
    latencies_ms: list[float] = field(default_factory=list)
    paired_diffs_ms: list[float] = field(default_factory=list)
    throughput_rps: list[float] = field(default_factory=list)
    errors: int = 0
    served: int = 0  # requests answered during the measurement (both phases)
    cpu_s: float = 0.0  # the proxy's CPU time over the measurement

    def p(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        if not data:
            return float("nan")
        return data[min(len(data) - 1, round(q * (len(data) - 1)))]


async def _one(client: httpx.AsyncClient, url: str, model: str, i: int) -> float | None:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": SHORT_PROMPTS[i % len(SHORT_PROMPTS)]}],
    }
    started = time.perf_counter()
    response = await client.post(url, json=body)
    elapsed = (time.perf_counter() - started) * 1000.0
    return elapsed if response.status_code == 200 else None


@dataclass(frozen=True)
class Target:
    name: str
    url: str  # the proxy's chat-completions URL
    model: str  # what the client sends: the direct model (bare) or "auto" (plugin)


async def _paired_latency(targets: list[Target], n: int, into: dict[str, Measurement]) -> None:
    """Sequential requests cycling through the proxies, so neighbours see the same machine.

    ``paired_diffs_ms`` of each non-bare target is its latency minus the bare request's in
    the same cycle.
    """
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    async with httpx.AsyncClient(headers=headers, timeout=30.0) as client:
        for i in range(n):
            shift = i % len(targets)
            got: dict[str, float] = {}
            for target in targets[shift:] + targets[:shift]:
                result = await _one(client, target.url, target.model, i)
                if result is None:
                    into[target.name].errors += 1
                else:
                    into[target.name].served += 1
                    into[target.name].latencies_ms.append(result)
                    got[target.name] = result
            if "bare" in got:
                for name, value in got.items():
                    if name != "bare":
                        into[name].paired_diffs_ms.append(value - got["bare"])


async def _throughput_round(
    url: str, model: str, n: int, concurrency: int, into: Measurement
) -> None:
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, timeout=30.0, limits=limits) as client:
        queue = iter(range(n))
        ok = 0

        async def worker() -> None:
            nonlocal ok
            for i in queue:
                if await _one(client, url, model, i) is None:
                    into.errors += 1
                else:
                    ok += 1
                    into.served += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        into.throughput_rps.append(ok / (time.perf_counter() - started))


async def measure(
    targets: list[Target], *, requests: int, rounds: int, concurrency: int
) -> dict[str, Measurement]:
    results = {t.name: Measurement() for t in targets}
    per_round = max(1, requests // rounds)
    for r in range(rounds):
        await _paired_latency(targets, per_round, results)
        # Rotate which proxy goes first so none always runs on a warmer machine.
        shift = r % len(targets)
        for target in targets[shift:] + targets[:shift]:
            await _throughput_round(
                target.url, target.model, per_round, concurrency, results[target.name]
            )
    return results


def summarize(results: dict[str, Measurement], *, concurrency: int) -> dict[str, Any]:
    bare = results["bare"]
    rows: dict[str, dict[str, Any]] = {}
    for name, m in results.items():
        rows[name] = {
            "requests": len(m.latencies_ms),
            "errors": m.errors,
            "p50_ms": m.p(0.5),
            "p95_ms": m.p(0.95),
            "throughput_rps": statistics.median(m.throughput_rps) if m.throughput_rps else 0.0,
            "cpu_ms_per_request": 1000.0 * m.cpu_s / m.served if m.served else float("nan"),
        }
        if name == "bare":
            continue
        # Added latency: the median of paired differences (each request against the bare
        # request next to it), robust to load drifting on a shared machine.
        pairs = list(zip(bare.throughput_rps, m.throughput_rps, strict=False))
        ratios = [p / b for b, p in pairs if b]
        added = statistics.median(m.paired_diffs_ms) if m.paired_diffs_ms else float("nan")
        ratio = statistics.median(ratios) if ratios else 0.0
        cpu_bare = rows["bare"]["cpu_ms_per_request"]
        cpu_mine = rows[name]["cpu_ms_per_request"]
        rows[name].update(
            added_cpu_ms_per_request=cpu_mine - cpu_bare,
            # What the throughput ratio is when the proxy, not the machine, is the bottleneck.
            cpu_bound_throughput_ratio=cpu_bare / cpu_mine if cpu_mine else 0.0,
            added_p50_ms=added,
            p50_difference_ms=rows[name]["p50_ms"] - rows["bare"]["p50_ms"],
            throughput_ratio=ratio,
            throughput_ratio_per_round=ratios,
            meets_targets={"added_p50": added < 1.0, "throughput": ratio >= 0.95},
        )
    return {
        "proxies": rows,
        "concurrency": concurrency,
        "targets": {"added_p50_ms_below": 1.0, "throughput_ratio_at_least": 0.95},
    }


def render(summary: dict[str, Any]) -> str:
    header = (
        f"{'proxy':<18} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>8}"
        f" {'added p50 ms':>13} {'thr. ratio':>10} {'CPU ms/req':>10} {'CPU ratio':>9}"
    )
    lines = [header]
    for name, row in summary["proxies"].items():
        added = f"{row['added_p50_ms']:+.2f}" if "added_p50_ms" in row else "-"
        ratio = f"{row['throughput_ratio']:.3f}" if "throughput_ratio" in row else "-"
        cpu_ratio = (
            f"{row['cpu_bound_throughput_ratio']:.3f}"
            if "cpu_bound_throughput_ratio" in row
            else "-"
        )
        lines.append(
            f"{name:<18} {row['requests']:>8} {row['errors']:>6} {row['p50_ms']:>8.2f} "
            f"{row['p95_ms']:>8.2f} {row['throughput_rps']:>8.1f} {added:>13} {ratio:>10} "
            f"{row['cpu_ms_per_request']:>10.2f} {cpu_ratio:>9}"
        )
    lines.append(
        f"added p50 = median paired difference to the bare proxy (target < 1 ms); throughput "
        f"ratio at {summary['concurrency']} in flight (target >= 0.95); CPU ms/req = the "
        f"proxy process's CPU time per answered request, CPU ratio = bare/this (the throughput "
        f"ratio when the proxy is the bottleneck)"
    )
    return "\n".join(lines)


class SimProcess:
    """The simulated provider in its own process (``rlm-router sim``), so the load client and
    the provider do not share an interpreter (and its GIL) in the measurement."""

    def __init__(self, *, time_scale: float = 0.0) -> None:
        self.port = free_port()
        self.time_scale = time_scale
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> SimProcess:
        command = [
            sys.executable,
            "-m",
            "router.cli",
            "sim",
            "--port",
            str(self.port),
            "--time-scale",
            str(self.time_scale),
        ]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("the simulated provider did not start")

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            self._process.wait(timeout=10)
        self._process = None


def run(requests: int, rounds: int, concurrency: int, out: Path) -> dict[str, Any]:
    with SimProcess() as sim:
        bare_config = {"model_list": sim_model_list(sim.base_url)}
        plugin = plugin_config(sim.base_url)
        with (
            ProxyProcess(bare_config) as bare,
            ProxyProcess(plugin, env={"RLM_ROUTER_TRACES_FILE": os.devnull}) as routed,
            ProxyProcess(plugin, env={"OTEL_SDK_DISABLED": "true"}) as quiet,
        ):
            targets = [
                Target("bare", f"{bare.base_url}/v1/chat/completions", "sim-large"),
                Target("plugin", f"{routed.base_url}/v1/chat/completions", "auto"),
                Target("plugin (no OTel)", f"{quiet.base_url}/v1/chat/completions", "auto"),
            ]
            processes = {"bare": bare, "plugin": routed, "plugin (no OTel)": quiet}
            warm_up = {t.name: Measurement() for t in targets}
            asyncio.run(_paired_latency(targets, 20, warm_up))
            cpu_before = {name: p.cpu_seconds() for name, p in processes.items()}
            results = asyncio.run(
                measure(targets, requests=requests, rounds=rounds, concurrency=concurrency)
            )
            for name, process in processes.items():
                results[name].cpu_s = process.cpu_seconds() - cpu_before[name]
    summary = summarize(results, concurrency=concurrency)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=400, help="requests per proxy per phase")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("out/proxy_bench.json"))
    args = parser.parse_args(argv)
    summary = run(args.requests, args.rounds, args.concurrency, args.out)
    print(render(summary))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
