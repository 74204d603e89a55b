"""Proxy overhead of the router plugin on the direct route, from 1 to 200 concurrent clients.

Two real LiteLLM proxy processes run side by side against the same simulated provider (its own
process, no modelled latency): one bare (clients name the direct model), one with the router
plugin (clients send ``auto``; the plugin decides, rewrites to the same direct model, and
writes its spans as OTLP-JSON lines). At each concurrency level the same short-chat load goes
to both, alternating in rounds so drift on a shared machine hits both alike, and each round
reads the proxy process's CPU time before and after:

- throughput: answered requests per second of the round (median over rounds);
- p50 / p99: latency of every answered request, pooled over rounds;
- CPU per request: the proxy's CPU time over its rounds / requests it answered.

Targets (issue 13) at 50 and 200 clients: CPU per request <= 1.15x the bare proxy's, p99 <=
1.5x, throughput >= 0.9x.

Usage: ``python -m benchmarks.proxy_bench [--levels 1,8,50,200] [--rounds 3] [--requests 400]
[--baseline DIR ...]`` prints a table and writes JSON to ``out/proxy_bench.json``. Each
``--baseline`` adds a proxy running the plugin from another source tree (``PYTHONPATH=DIR``, e.g.
a git worktree of an earlier commit), in the same rounds: before and after a change in one run.
The first is named ``baseline``, further ones ``baseline2``, ``baseline3``, ... Each tree's
proxy config comes from that tree's own ``benchmarks.proxy_bench.plugin_config``, so a tree from
before the ``rlm_router`` package (top-level ``router``, its own config keys) runs as it was.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
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

from rlm_router.rlm_core.env import offline_environ

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


def sim_model_list(
    base_url: str, names: tuple[str, ...] = ("sim-large", "sim-mini")
) -> list[dict[str, Any]]:
    """model_list entries for the simulated provider's ``names`` (group name = model name).

    Prices and windows are declared per deployment, so the proxy's spend tracking uses the
    simulator's prices without ``register_sim_models()`` running in the proxy process.
    """
    from rlm_router.sim.models import SIM_MODELS

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
        if name in names
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

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the proxy is not running")
        return self._process.pid

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
    from rlm_router.router.plugin.config import ServiceConfig

    section: dict[str, Any] = {
        "models": {
            "direct": {"model": "sim-large"},
            "rlm_root": {"model": "sim-large"},
            "rlm_sub": {"model": "sim-mini"},
        }
    }
    if policy is not None:
        section["policy"] = policy
    data = {"model_list": sim_model_list(base_url), "rlm_router": section}
    return ServiceConfig.from_mapping(data, path=None).proxy_config()


def tree_plugin_config(tree: Path, base_url: str) -> dict[str, Any]:
    """``plugin_config(base_url)`` as the source tree ``tree`` writes it, from its own code."""
    script = (
        "import json, sys\n"
        "from benchmarks.proxy_bench import plugin_config\n"
        "print(json.dumps(plugin_config(sys.argv[1])))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, base_url],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    config: dict[str, Any] = json.loads(out)
    return config


def baseline_names(count: int) -> list[str]:
    """``baseline``, ``baseline2``, ``baseline3``, ... for ``count`` baseline trees."""
    return ["baseline" if i == 0 else f"baseline{i + 1}" for i in range(count)]


def _is_baseline(name: str) -> bool:
    return name.startswith("baseline")


@dataclass
class Measurement:
    """One proxy at one concurrency level, over all its rounds."""

    latencies_ms: list[float] = field(default_factory=list)
    throughput_rps: list[float] = field(default_factory=list)
    errors: int = 0
    served: int = 0
    cpu_s: float = 0.0  # the proxy's CPU time over its rounds

    def p(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        if not data:
            return float("nan")
        return data[min(len(data) - 1, round(q * (len(data) - 1)))]

    def row(self) -> dict[str, Any]:
        return {
            "requests": self.served,
            "errors": self.errors,
            "throughput_rps": statistics.median(self.throughput_rps)
            if self.throughput_rps
            else 0.0,
            "p50_ms": self.p(0.5),
            "p99_ms": self.p(0.99),
            "cpu_ms_per_request": 1000.0 * self.cpu_s / self.served if self.served else math.nan,
        }


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
    process: ProxyProcess


async def _round(target: Target, n: int, concurrency: int, into: Measurement) -> None:
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, timeout=60.0, limits=limits) as client:
        queue = iter(range(n))
        ok = 0

        async def worker() -> None:
            nonlocal ok
            for i in queue:
                try:
                    result = await _one(client, target.url, target.model, i)
                except httpx.HTTPError:
                    result = None
                if result is None:
                    into.errors += 1
                else:
                    ok += 1
                    into.latencies_ms.append(result)

        cpu = target.process.cpu_seconds()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        into.cpu_s += target.process.cpu_seconds() - cpu
        into.served += ok
        into.throughput_rps.append(ok / elapsed)


async def measure(
    targets: list[Target], *, levels: list[int], requests: int, rounds: int
) -> dict[int, dict[str, Measurement]]:
    results: dict[int, dict[str, Measurement]] = {}
    for level in levels:
        results[level] = {t.name: Measurement() for t in targets}
        # Enough requests that every client sends several, bounded for a 2-core machine.
        n = max(requests, 5 * level)
        for r in range(rounds):
            shift = r % len(targets)  # rotate who goes first
            for target in targets[shift:] + targets[:shift]:
                await _round(target, n, level, results[level][target.name])
    return results


TARGETS = {"cpu_ratio_at_most": 1.15, "p99_ratio_at_most": 1.5, "throughput_ratio_at_least": 0.9}
_GATED_LEVELS = (50, 200)


def _ratios(mine: dict[str, Any], bare: dict[str, Any]) -> dict[str, float]:
    """A plugin proxy's figures against the bare proxy's."""
    return {
        "cpu_ratio": mine["cpu_ms_per_request"] / bare["cpu_ms_per_request"],
        "p99_ratio": mine["p99_ms"] / bare["p99_ms"],
        "throughput_ratio": (
            mine["throughput_rps"] / bare["throughput_rps"] if bare["throughput_rps"] else 0.0
        ),
        "added_cpu_ms_per_request": mine["cpu_ms_per_request"] - bare["cpu_ms_per_request"],
        "added_p50_ms": mine["p50_ms"] - bare["p50_ms"],
    }


def summarize(results: dict[int, dict[str, Measurement]]) -> dict[str, Any]:
    levels: dict[str, Any] = {}
    for level, by_proxy in results.items():
        rows = {name: m.row() for name, m in by_proxy.items()}
        ratios = _ratios(rows["plugin"], rows["bare"])
        meets = {
            "cpu": ratios["cpu_ratio"] <= TARGETS["cpu_ratio_at_most"],
            "p99": ratios["p99_ratio"] <= TARGETS["p99_ratio_at_most"],
            "throughput": ratios["throughput_ratio"] >= TARGETS["throughput_ratio_at_least"],
        }
        levels[str(level)] = {
            "proxies": rows,
            **ratios,
            "meets_targets": meets if level in _GATED_LEVELS else None,
        }
        for name in filter(_is_baseline, rows):
            levels[str(level)][name] = _ratios(rows[name], rows["bare"])
    return {"levels": levels, "targets": TARGETS, "gated_levels": list(_GATED_LEVELS)}


def render(summary: dict[str, Any]) -> str:
    header = (
        f"{'clients':>7} {'proxy':<9} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'CPU ms/req':>10}   {'thr. x':>6} {'p99 x':>6} {'CPU x':>6} {'targets':>8}"
    )
    lines = [header]
    for level, data in summary["levels"].items():
        for name, row in data["proxies"].items():
            ratios = ("", "", "", "")
            if name != "bare":
                of = data if name == "plugin" else data[name]
                meets = data["meets_targets"] if name == "plugin" else None
                verdict = "-" if meets is None else ("met" if all(meets.values()) else "MISSED")
                ratios = (
                    f"{of['throughput_ratio']:.2f}",
                    f"{of['p99_ratio']:.2f}",
                    f"{of['cpu_ratio']:.2f}",
                    verdict,
                )
            lines.append(
                f"{level:>7} {name:<9} {row['requests']:>8} {row['errors']:>6} "
                f"{row['throughput_rps']:>8.1f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
                f"{row['cpu_ms_per_request']:>10.2f}   {ratios[0]:>6} {ratios[1]:>6} "
                f"{ratios[2]:>6} {ratios[3]:>8}"
            )
    t = summary["targets"]
    lines.append(
        f"x = plugin / bare. Targets at {', '.join(map(str, summary['gated_levels']))} clients: "
        f"throughput >= {t['throughput_ratio_at_least']}x, p99 <= {t['p99_ratio_at_most']}x, "
        f"CPU per request <= {t['cpu_ratio_at_most']}x (the proxy process's CPU time per "
        "answered request)."
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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> SimProcess:
        """Start serving on ``self.port`` (again, after ``kill``: a provider restart)."""
        command = [
            sys.executable,
            "-m",
            "rlm_router.router.cli",
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
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("the simulated provider did not start")

    def kill(self) -> None:
        """``kill -9`` the provider (a crash: connections drop, nothing is flushed)."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)
        self._process = None

    def __enter__(self) -> SimProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            self._process.wait(timeout=10)
        self._process = None


def run(
    levels: list[int],
    requests: int,
    rounds: int,
    out: Path,
    baselines: tuple[Path, ...] = (),
) -> dict[str, Any]:
    with SimProcess() as sim, contextlib.ExitStack() as stack:
        bare_config = {"model_list": sim_model_list(sim.base_url)}
        plugin = plugin_config(sim.base_url)
        traces = {"RLM_ROUTER_TRACES_FILE": os.devnull}
        bare = stack.enter_context(ProxyProcess(bare_config))
        routed = stack.enter_context(ProxyProcess(plugin, env=traces))
        targets = [
            Target("bare", f"{bare.base_url}/v1/chat/completions", "sim-large", bare),
            Target("plugin", f"{routed.base_url}/v1/chat/completions", "auto", routed),
        ]
        for name, tree in zip(baseline_names(len(baselines)), baselines, strict=True):
            tree = tree.resolve()
            env = {**traces, "PYTHONPATH": str(tree)}
            config = tree_plugin_config(tree, sim.base_url)
            before = stack.enter_context(ProxyProcess(config, env=env))
            url = f"{before.base_url}/v1/chat/completions"
            targets.append(Target(name, url, "auto", before))
        asyncio.run(measure(targets, levels=[8], requests=100, rounds=1))  # warm-up
        results = asyncio.run(measure(targets, levels=levels, requests=requests, rounds=rounds))
    summary = summarize(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--levels", default="1,8,50,200", help="concurrent clients, comma-separated"
    )
    parser.add_argument("--requests", type=int, default=400, help="requests per proxy per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("out/proxy_bench.json"))
    parser.add_argument(
        "--baseline",
        type=Path,
        action="append",
        default=[],
        help="also run the plugin from this source tree (PYTHONPATH), e.g. an older worktree;"
        " repeatable",
    )
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    for tree in args.baseline:
        if not ((tree / "rlm_router").is_dir() or (tree / "router" / "plugin").is_dir()):
            parser.error(f"--baseline {tree}: no rlm_router package there (nor router/plugin)")
    summary = run(levels, args.requests, args.rounds, args.out, tuple(args.baseline))
    print(render(summary))
    for name, tree in zip(baseline_names(len(args.baseline)), args.baseline, strict=True):
        print(f"{name}: the plugin from {tree}")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
