"""Load, fault and fuzz suite: the real LiteLLM proxy with the plugin, the simulated provider
in its own process, loopback only, bounded in count and time.

- Soak at 50 and then 200 concurrent clients, ``SOAK_S`` seconds each, mixed traffic: 90%
  short chat, 10% long aggregation (OOLONG-style, 32K-128K tokens), 20% of all streamed.
  During each soak the provider gets scheduled faults (429, 500, 503, context overflow,
  truncated and malformed bodies/streams), the proxy's sandbox workers are killed with
  ``kill -9``, and the provider itself is killed and restarted on the same port.
- Fuzz: ``FUZZ_N`` malformed chat requests and 25 malformed feedback bodies.

It prints its counts (and writes them to ``out/load_suite.json``) and fails on any lost request
(no HTTP answer), any 5xx not explained by the provider being down at the time, any streamed
answer without ``[DONE]`` or with an error chunk (except streams the provider cut after their
first content, by a crash or a scheduled stream fault: nothing can be retried then, so they are
counted apart), any 4xx to a well-formed request except the provider's own context-window 400
when a request met the scheduled context_length fault on both routes, any fuzz request not
answered 4xx, and any
leak once the load is gone: sandbox processes or scratch directories left (beyond the
workers waiting in the refilled pool, which must be exactly its size), more than
``FD_SLACK`` extra file descriptors, or proxy memory growth over ``RSS_GROWTH_MB``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.proxy_bench import ProxyProcess, SimProcess
from rlm_router.policies import DEFAULT_POLICY_PATH, load_policy
from rlm_router.sim.tasks import generate
from tests.router.proxy_harness import AUTH, PoolWorkers, descendants, plugin_proxy
from tests.router.proxy_harness import waiting_pool_workers as _pool_workers

pytestmark = [pytest.mark.slow, pytest.mark.server]

SOAK_S = 20.0
FUZZ_N = 230
# Bounds once the load is gone (after a short settle): pooled keep-alive connections to the
# provider may stay open, so some descriptors remain; memory may grow by caches and arenas.
FD_SLACK = 64
RSS_GROWTH_MB = 150.0
# The proxy runs the shipped policy: its pre-started workers are expected, the rest a leak.
POOL_SIZE = load_policy(DEFAULT_POLICY_PATH).sandbox.prestart_workers
SHORT = (
    "What is the capital of France?",
    "Say hello in Spanish.",
    "What is 12 times 7?",
    "Reply with just the word 'ok' in capital letters.",
    "Give me one word that rhymes with cat.",
)
# Values OpenAI's API rejects for each parameter (LiteLLM passes most of them through).
BAD_PARAMS: dict[str, list[Any]] = {
    "temperature": ["hot", -1, 1e9, [], {}, True],
    "top_p": [2, "x", []],
    "n": [0, 1000, 1.5, "2", True],
    "max_tokens": [0, -3, "10", 2.5],
    "stop": [5, [1, 2], ["a"] * 5, {}],
    "stream_options": ["x", 5, []],
    "metadata": ["x", [1], 5, True],
    "tools": ["search", 5, [1]],
    "presence_penalty": [3, "x"],
    "logit_bias": [3, "x", []],
    "seed": ["x", 1.5],
    "stream": ["yes", 1],
}
FAULTS = ("429", "500", "503", "context_length", "truncated_stream", "malformed_stream")


@dataclass
class Tally:
    """What one soak saw, by kind of request."""

    sent: Counter[str] = field(default_factory=Counter)
    status: Counter[str] = field(default_factory=Counter)
    routes: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    our_5xx: list[str] = field(default_factory=list)
    client_4xx: list[str] = field(default_factory=list)  # what a 4xx said, for the report
    provider_down_5xx: int = 0
    # The provider's own 400 from scheduled context_length faults (it says the input is one
    # token over its window): one such fault falls back to the other route, but a request
    # that met one on both routes is rightly answered with the provider's 400.
    provider_context_400: int = 0
    # Streams the provider cut (a crash, or a scheduled stream fault) after their first content.
    provider_broken: list[str] = field(default_factory=list)
    broken_streams: list[str] = field(default_factory=list)
    latency_s: dict[str, list[float]] = field(default_factory=dict)
    faults_scheduled: int = 0
    workers_killed: int = 0
    provider_restarts: int = 0
    t0: float = field(default_factory=time.monotonic)
    events: list[str] = field(default_factory=list)  # chaos, with seconds since t0

    def at(self) -> str:
        return f"{time.monotonic() - self.t0:.1f}s"

    def summary(self) -> dict[str, Any]:
        def pct(kind: str, q: float) -> float | None:
            data = sorted(self.latency_s.get(kind, []))
            return round(data[min(len(data) - 1, int(q * len(data)))], 3) if data else None

        return {
            "sent": dict(self.sent),
            "status": dict(self.status),
            "routes": dict(self.routes),
            "lost": len(self.lost),
            "our_5xx": len(self.our_5xx),
            "client_4xx": self.client_4xx[:5],
            "provider_down_5xx": self.provider_down_5xx,
            "provider_context_400": self.provider_context_400,
            "provider_broken_streams": len(self.provider_broken),
            "broken_streams": len(self.broken_streams),
            "p50_s": {k: pct(k, 0.5) for k in self.latency_s},
            "p99_s": {k: pct(k, 0.99) for k in self.latency_s},
            "faults_scheduled": self.faults_scheduled,
            "workers_killed": self.workers_killed,
            "provider_restarts": self.provider_restarts,
            "events": self.events,
        }


@dataclass
class Outage:
    """When the provider was down (killed until serving again), to tell its 5xx from ours."""

    windows: list[tuple[float, float]] = field(default_factory=list)

    def covers(self, start: float, end: float) -> bool:
        # Retries stretch a request over the outage and its backoff afterwards.
        return any(start <= b + 10.0 and end >= a for a, b in self.windows)


def long_payloads() -> list[dict[str, Any]]:
    sizes = (32_000, 64_000, 128_000)
    return [
        {
            "model": "auto",
            "messages": generate("oolong", n_tokens=n, seed=i, kind="count").messages(),
        }
        for i, n in enumerate(sizes)
    ]


_OVER_WINDOW = re.compile(
    r"maximum context length is (\d+) tokens\. However, your messages resulted in (\d+) tokens"
)


def _scheduled_context_fault(text: str) -> bool:
    """Whether a 400 is the simulator's scheduled context_length fault (window + 1 tokens,
    ``sim/faults.py``), not a real overflow (whose count is the prompt's own)."""
    found = _OVER_WINDOW.search(text)
    return found is not None and int(found[2]) == int(found[1]) + 1


def _content_before_error(lines: list[str]) -> bool:
    """Whether the stream delivered some content before its error chunk."""
    for line in lines:
        if '"error"' in line:
            return False
        with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
            if json.loads(line.removeprefix("data: "))["choices"][0]["delta"].get("content"):
                return True
    return False


def _stream_ok(lines: list[str]) -> bool:
    return bool(lines) and lines[-1] == "data: [DONE]" and not any('"error"' in x for x in lines)


async def _one(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], kind: str, tally: Tally,
    outage: Outage,
) -> None:  # fmt: skip
    tally.sent[kind] += 1
    started = time.monotonic()
    try:
        if body.get("stream"):
            async with client.stream("POST", url, json=body, headers=AUTH) as reply:
                lines = [line async for line in reply.aiter_lines() if line]
                status = reply.status_code
                if status == 200 and not _stream_ok(lines):
                    what = f"{kind} sent at {started - tally.t0:.1f}s: {lines[-2:]}"
                    if outage.covers(started, time.monotonic()) or _content_before_error(lines):
                        # Cut by the provider after content went out: nothing can be retried
                        # (a break before any content is retried and must not show here).
                        tally.provider_broken.append(what)
                    else:
                        tally.broken_streams.append(what)
                route = reply.headers.get("x-rlm-router-route", "-")
        else:
            reply = await client.post(url, json=body, headers=AUTH)
            status = reply.status_code
            route = reply.headers.get("x-rlm-router-route", "-")
            text = reply.text
    except httpx.HTTPError as exc:
        what = f"{kind} sent at {started - tally.t0:.1f}s: {type(exc).__name__} {exc}"
        if body.get("stream") and outage.covers(started, time.monotonic()):
            tally.provider_broken.append(what)  # content already out when it died
        else:
            tally.lost.append(what)
        return
    ended = time.monotonic()
    tally.status[str(status)] += 1
    tally.routes[route] += 1
    tally.latency_s.setdefault(kind, []).append(ended - started)
    if status == 400 and _scheduled_context_fault(text):
        tally.provider_context_400 += 1
    elif 400 <= status < 500:
        tally.client_4xx.append(f"{kind} {status} at {started - tally.t0:.1f}s: {text[:1500]}")
    if status >= 500:
        if outage.covers(started, ended):
            tally.provider_down_5xx += 1
        else:
            detail = "" if body.get("stream") else text[:300]
            tally.our_5xx.append(f"{kind} {status}: {detail}")


async def _clients(
    proxy: ProxyProcess, n_clients: int, seconds: float, tally: Tally, outage: Outage,
    longs: list[dict[str, Any]], seed: int,
) -> None:  # fmt: skip
    url = f"{proxy.base_url}/v1/chat/completions"
    stop_at = time.monotonic() + seconds
    # Idle connections are dropped before uvicorn's 5 s keep-alive timeout would close them
    # under a request just being sent (a race of the client, not of the proxy).
    limits = httpx.Limits(
        max_connections=n_clients, max_keepalive_connections=n_clients, keepalive_expiry=2.0
    )
    timeout = httpx.Timeout(180.0, connect=30.0)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:

        async def worker(i: int) -> None:
            rng = random.Random(seed * 1000 + i)
            while time.monotonic() < stop_at:
                stream = rng.random() < 0.2
                if rng.random() < 0.1:
                    body, kind = dict(rng.choice(longs)), "long"
                else:
                    prompt = rng.choice(SHORT)
                    body = {"model": "auto", "messages": [{"role": "user", "content": prompt}]}
                    kind = "short"
                if stream:
                    body["stream"] = True
                    kind += "+stream"
                await _one(client, url, body, kind, tally, outage)

        await asyncio.gather(*(worker(i) for i in range(n_clients)))


async def _chaos(
    proxy: ProxyProcess, sim: SimProcess, seconds: float, tally: Tally, outage: Outage, seed: int
) -> None:
    """Faults every 0.5 s; kill -9 of the sandbox workers at 1/3; a provider crash at 2/3."""
    rng = random.Random(seed)
    pid = proxy.pid
    started = time.monotonic()
    killed = restarted = False
    async with httpx.AsyncClient(timeout=10) as control:
        while (elapsed := time.monotonic() - started) < seconds - 1.0:
            await asyncio.sleep(0.5)
            fault = {"fault": rng.choice(FAULTS), "count": 1}
            fault["model"] = rng.choice(("sim-large", "sim-mini"))
            try:
                await control.post(f"{sim.url}/sim/faults", json=fault)
                tally.faults_scheduled += 1
            except httpx.HTTPError:
                pass  # the provider is down right now
            if not killed and elapsed > seconds / 3:
                workers = descendants(pid)
                for worker in workers:
                    try:
                        os.kill(worker, signal.SIGKILL)
                        tally.workers_killed += 1
                    except ProcessLookupError:
                        pass
                killed = bool(workers)  # none running right now: try again in 0.5 s
                if workers:
                    tally.events.append(f"{tally.at()} kill -9 of {len(workers)} sandbox processes")
            if not restarted and elapsed > 2 * seconds / 3:
                restarted = True
                down = time.monotonic()
                tally.events.append(f"{tally.at()} provider killed")
                sim.kill()
                await asyncio.to_thread(sim.start)
                outage.windows.append((down, time.monotonic()))
                tally.events.append(f"{tally.at()} provider serving again")
                tally.provider_restarts += 1


def _fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _fd_kinds(pid: int) -> dict[str, int]:
    """Open descriptors by kind (socket, pipe, anon_inode, file), for the failure message."""
    kinds: dict[str, int] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kind = target.split(":", 1)[0] if ":" in target else "file"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def _fds_settled(pid: int, limit: int, seconds: float = 30.0) -> int:
    """The proxy's descriptor count once it is at most ``limit`` or ``seconds`` passed: a
    leak stays, while the sockets of 200 clients that just hung up close as the loaded proxy
    gets to them."""
    deadline = time.monotonic() + seconds
    count = _fd_count(pid)
    while count > limit and time.monotonic() < deadline:
        time.sleep(0.5)
        count = _fd_count(pid)
    return count


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def _scratch_dirs(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith(("rlm-scratch-", "rlm-host-")))


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    with SimProcess(time_scale=0.0) as process:
        yield process


@pytest.fixture(scope="module")
def proxy_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("load-proxy-tmp")


@pytest.fixture(scope="module")
def proxy(sim: SimProcess, proxy_tmp: Path) -> Iterator[ProxyProcess]:
    env = {"TMPDIR": str(proxy_tmp)}  # the sandboxes' scratch dirs, counted for leaks
    with plugin_proxy(sim.base_url, proxy_tmp / "traces.jsonl", env=env) as process:
        yield process


@pytest.fixture(scope="module")
def report() -> Iterator[dict[str, Any]]:
    results: dict[str, Any] = {}
    yield results
    out = Path("out")
    out.mkdir(exist_ok=True)
    (out / "load_suite.json").write_text(json.dumps(results, indent=2) + "\n")


def _settle(proxy: ProxyProcess, idle: set[int], seconds: float = 15.0) -> PoolWorkers:
    """Wait until only the proxy's idle processes and its refilled pool are left."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pool = _pool_workers(proxy.pid)
        if len(pool.roots) == POOL_SIZE and not descendants(proxy.pid) - idle - pool.processes:
            break
        time.sleep(0.2)
    time.sleep(1.0)
    return _pool_workers(proxy.pid)


@pytest.mark.parametrize("n_clients", [50, 200])
async def test_soak_with_faults_loses_nothing_and_leaks_nothing(
    proxy: ProxyProcess, sim: SimProcess, proxy_tmp: Path, report: dict[str, Any],
    n_clients: int,
) -> None:  # fmt: skip
    longs = await asyncio.to_thread(long_payloads)
    pid = proxy.pid
    # Warm-up: both routes once, so the baseline includes what a serving proxy holds.
    warm = Tally()
    await _clients(proxy, 4, 2.0, warm, Outage(), longs, seed=0)
    async with httpx.AsyncClient(timeout=180) as client:
        url = f"{proxy.base_url}/v1/chat/completions"
        await _one(client, url, dict(longs[0]), "long", warm, Outage())
    idle = descendants(pid) - _pool_workers(pid).processes
    pool = _settle(proxy, idle)
    assert len(pool.roots) == POOL_SIZE  # the shipped policy pre-starts workers
    fds, rss = _fd_count(pid), _rss_mb(pid)
    scratch = set(_scratch_dirs(proxy_tmp)) - pool.dirs

    tally, outage = Tally(), Outage()
    tally.t0 = time.monotonic()
    await asyncio.gather(
        _clients(proxy, n_clients, SOAK_S, tally, outage, longs, seed=n_clients),
        _chaos(proxy, sim, SOAK_S, tally, outage, seed=n_clients),
    )
    pool = _settle(proxy, idle)
    leaks: dict[str, Any] = {
        # Workers waiting in the refilled pool are counted apart: at most its size.
        "pool_workers_waiting": len(pool.roots),
        "processes_left": sorted(descendants(pid) - idle - pool.processes),
        "fds_before": fds,
        "fds_after": _fds_settled(pid, fds + FD_SLACK),
        "fd_kinds_after": _fd_kinds(pid),
        "rss_mb_before": round(rss, 1),
        "rss_mb_after": round(_rss_mb(pid), 1),
        "scratch_dirs_left": sorted(set(_scratch_dirs(proxy_tmp)) - scratch - pool.dirs),
    }
    summary = {**tally.summary(), "clients": n_clients, "seconds": SOAK_S, **leaks}
    report[f"soak_{n_clients}"] = summary
    print(f"\nsoak at {n_clients} clients: {json.dumps(summary, indent=1)}")

    assert proxy.alive(), (tally.events, proxy.log_tail(60))
    assert sum(tally.sent.values()) >= n_clients  # every client got through (a loaded CI: ~1)
    assert tally.workers_killed > 0 and tally.provider_restarts == 1
    assert not tally.lost, (tally.lost[:5], tally.events, proxy.log_tail(40))
    assert not tally.our_5xx, tally.our_5xx[:5]
    assert not tally.broken_streams, tally.broken_streams[:5]
    assert set(tally.status) <= {"200"} | ({"400"} if tally.provider_context_400 else set()) | (
        {"502", "503", "500"} if tally.provider_down_5xx else set()
    ), tally.client_4xx[:5]
    assert leaks["pool_workers_waiting"] == POOL_SIZE
    assert not leaks["processes_left"]
    assert not leaks["scratch_dirs_left"]
    assert leaks["fds_after"] <= fds + FD_SLACK, leaks["fd_kinds_after"]
    assert leaks["rss_mb_after"] <= rss + RSS_GROWTH_MB


def fuzz_bodies(n: int, seed: int = 7) -> list[tuple[str, bytes, dict[str, str]]]:
    """``n`` malformed chat requests: (what is wrong, body bytes, extra headers)."""
    rng = random.Random(seed)
    ok = [{"role": "user", "content": "hi"}]

    def chat(**fields: Any) -> bytes:
        return json.dumps({"model": "auto", **fields}).encode()

    user = {"role": "user"}
    makers: list[Any] = [
        lambda: ("invalid json", b'{"model": "auto", "messages": [', {}),
        lambda: ("not an object", json.dumps(rng.choice([[], "s", 3, None])).encode(), {}),
        lambda: ("no messages", chat(), {}),
        lambda: ("messages not a list", chat(messages="hi"), {}),
        lambda: ("empty messages", chat(messages=[]), {}),
        lambda: ("message not an object", chat(messages=[5]), {}),
        lambda: ("bad content", chat(messages=[{**user, "content": rng.choice([5, {}])}]), {}),
        lambda: ("no user message", chat(messages=[{"role": "system", "content": "x"}]), {}),
        lambda: (
            "bad latency header",
            chat(messages=ok),
            {"x-latency-budget-ms": rng.choice(["-5", "soon", "nan", "inf"])},
        ),
        lambda: ("too many messages", chat(messages=ok * 4097), {}),
    ]

    def bad_param() -> tuple[str, bytes, dict[str, str]]:
        name, values = rng.choice(list(BAD_PARAMS.items()))
        body: dict[str, Any] = {"model": "auto", "messages": ok, name: rng.choice(values)}
        if name == "stream_options":
            body["stream"] = True
        return f"bad {name}", json.dumps(body).encode(), {}

    out = []
    for i in range(n):
        out.append(bad_param() if i % 2 else rng.choice(makers)())
    return out


async def test_fuzzed_requests_get_a_clear_4xx_and_the_proxy_serves_on(
    proxy: ProxyProcess, report: dict[str, Any]
) -> None:
    bodies = fuzz_bodies(FUZZ_N)
    url = f"{proxy.base_url}/v1/chat/completions"
    statuses: Counter[int] = Counter()
    wrong: list[str] = []
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=60) as client:

        async def send(what: str, body: bytes, headers: dict[str, str]) -> None:
            started = time.monotonic()
            reply = await client.post(
                url, content=body, headers={**AUTH, "content-type": "application/json", **headers}
            )
            latencies.append(time.monotonic() - started)
            statuses[reply.status_code] += 1
            message = ""
            with contextlib.suppress(ValueError, KeyError, TypeError):
                message = str(reply.json()["error"]["message"])
            if not 400 <= reply.status_code < 500 or not message:
                wrong.append(f"{what}: {reply.status_code} {reply.text[:200]}")

        for start in range(0, len(bodies), 20):
            await asyncio.gather(*(send(*b) for b in bodies[start : start + 20]))

        feedback_url = f"{proxy.base_url}/rlm-router/feedback"
        bad_feedback = [b"", b"[]", b'{"quality": 2}', b'{"decision_id": 5, "quality": 0.5}',
                        b'{"decision_id": "x", "quality": "good"}'] * 5  # fmt: skip
        feedback_status: Counter[int] = Counter()
        for body in bad_feedback:
            reply = await client.post(feedback_url, content=body, headers=AUTH)
            feedback_status[reply.status_code] += 1
        ok = await client.post(
            url,
            json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
            headers=AUTH,
        )
    summary = {
        "malformed_chat_requests": len(bodies),
        "status": {str(k): v for k, v in sorted(statuses.items())},
        "p50_s": round(statistics.median(latencies), 3),
        "max_s": round(max(latencies), 3),
        "malformed_feedback": len(bad_feedback),
        "feedback_status": {str(k): v for k, v in sorted(feedback_status.items())},
        "not_a_clear_4xx": len(wrong),
    }
    report["fuzz"] = summary
    print(f"\nfuzz: {json.dumps(summary, indent=1)}")
    assert not wrong, wrong[:10]
    assert set(feedback_status) == {400}, feedback_status
    assert ok.status_code == 200
    assert proxy.alive()
