"""State several proxy instances share through a real Redis: RLM admission per key and team
(leases that expire when an instance dies), the exploration budget, the config section."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from benchmarks.proxy_bench import free_port
from rlm_router.policies.schema import AdmissionSettings
from rlm_router.router.plugin.admission import Admission, Caller, RedisAdmission
from rlm_router.router.plugin.config import ServiceConfig, ServiceConfigError
from rlm_router.router.plugin.exploration import ExplorationBudget, RedisExplorationBudget
from rlm_router.router.plugin.shared import SharedStateSettings
from tests.multi.redis_server import RedisServer

pytestmark = [pytest.mark.server]

PER_KEY = AdmissionSettings(max_concurrent_rlm=4, max_concurrent_rlm_per_key=2, queue_ms=0)


def _shared(redis: RedisServer, prefix: str, lease_s: float = 30.0) -> SharedStateSettings:
    return SharedStateSettings(redis_url=redis.url, key_prefix=prefix, lease_s=lease_s)


def _instance(shared: SharedStateSettings, settings: AdmissionSettings = PER_KEY) -> RedisAdmission:
    """One proxy instance's admission: its own client, as a separate process would have."""
    return RedisAdmission(settings, shared, client=shared.connect())


async def test_a_per_key_limit_holds_across_instances(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    shared = _shared(redis_server, request.node.name)
    a, b = _instance(shared), _instance(shared)
    assert isinstance(a, Admission)
    alice, bob = Caller(key="sk-alice"), Caller(key="sk-bob")
    try:
        first = await a.acquire(alice, wait_s=0)
        second = await b.acquire(alice, wait_s=0)
        assert first is not None and second is not None
        # Each instance has room (instance limit 4), the key has none left anywhere.
        assert await a.acquire(alice, wait_s=0) is None
        assert await b.acquire(alice, wait_s=0.1) is None
        assert a.in_flight() == 1 and b.in_flight() == 1
        other = await b.acquire(bob, wait_s=0)  # another key is not held back
        assert other is not None
        waiter = asyncio.ensure_future(b.acquire(alice, wait_s=5))
        await asyncio.sleep(0.1)
        assert not waiter.done()
        await first.release()  # released on instance a: the waiter on b gets it
        await first.release()  # idempotent
        third = await asyncio.wait_for(waiter, 5)
        assert third is not None
        for slot in (second, third, other):
            await slot.release()
        assert a.in_flight() == 0 and b.in_flight() == 0
        assert await a.acquire(alice, wait_s=0) is not None
    finally:
        await a.close()
        await b.close()


async def test_the_instance_limit_stays_per_instance(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    shared = _shared(redis_server, request.node.name)
    settings = AdmissionSettings(max_concurrent_rlm=1, max_concurrent_rlm_per_team=5, queue_ms=0)
    a, b = _instance(shared, settings), _instance(shared, settings)
    team = Caller(key="k", team="research")
    try:
        held = await a.acquire(team, wait_s=0)
        assert held is not None
        assert await a.acquire(team, wait_s=0) is None  # this instance's sandboxes are full
        on_b = await b.acquire(team, wait_s=0)  # the other host's are not
        assert on_b is not None
        await held.release()
        await on_b.release()
    finally:
        await a.close()
        await b.close()


async def test_a_team_limit_changes_on_reconfigure(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    shared = _shared(redis_server, request.node.name)
    a, b = _instance(shared), _instance(shared)
    team = Caller(key=None, team="t1")
    try:
        first = await a.acquire(team, wait_s=0)  # no team limit yet
        assert first is not None
        tight = AdmissionSettings(max_concurrent_rlm=4, max_concurrent_rlm_per_team=1, queue_ms=0)
        a.reconfigure(tight)
        b.reconfigure(tight)
        second = await b.acquire(team, wait_s=0)
        assert second is not None  # the slot taken before the limit existed is not counted
        assert await a.acquire(team, wait_s=0) is None
        await first.release()
        await second.release()
    finally:
        await a.close()
        await b.close()


_HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from rlm_router.policies.schema import AdmissionSettings
    from rlm_router.router.plugin.admission import Caller, RedisAdmission
    from rlm_router.router.plugin.shared import SharedStateSettings

    async def main():
        shared = SharedStateSettings(redis_url=sys.argv[1], key_prefix=sys.argv[2], lease_s=1)
        settings = AdmissionSettings(max_concurrent_rlm_per_key=1)
        admission = RedisAdmission(settings, shared, client=shared.connect())
        slot = await admission.acquire(Caller(key="sk-shared"), wait_s=5)
        print("held" if slot else "refused", flush=True)
        await asyncio.sleep(120)

    asyncio.run(main())
    """
)


def _start_holder(url: str, prefix: str) -> subprocess.Popen[bytes]:
    """Another instance, in its own process, that takes the key's one slot and keeps it."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url, prefix], stdout=subprocess.PIPE, cwd=root, env=env
    )


async def test_the_slots_of_a_killed_instance_expire_after_their_lease(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    prefix = request.node.name
    holder = _start_holder(redis_server.url, prefix)
    shared = _shared(redis_server, prefix, lease_s=1)
    here = _instance(shared, AdmissionSettings(max_concurrent_rlm_per_key=1, queue_ms=0))
    caller = Caller(key="sk-shared")
    try:
        assert holder.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(holder.stdout.readline), 60)
        assert line.strip() == b"held"
        # The live holder renews its lease: 2.5 leases later the key is still full.
        await asyncio.sleep(2.5)
        assert await here.acquire(caller, wait_s=0) is None
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        killed = time.monotonic()
        slot = await here.acquire(caller, wait_s=5)
        freed_after = time.monotonic() - killed
        assert slot is not None, "the dead instance's slot never expired"
        assert freed_after <= 1.5  # at most one lease (1 s) plus the polling step
        await slot.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        await here.close()


async def test_without_redis_the_instance_limit_still_admits() -> None:
    dead = SharedStateSettings(redis_url=f"redis://127.0.0.1:{free_port()}/0", lease_s=1)
    admission = _instance(
        dead, AdmissionSettings(max_concurrent_rlm=1, max_concurrent_rlm_per_key=1)
    )
    try:
        slot = await admission.acquire(Caller(key="k"), wait_s=0)
        assert slot is not None  # served, under the instance limit alone
        assert await admission.acquire(Caller(key="k"), wait_s=0) is None
        await slot.release()
    finally:
        await admission.close()


async def test_the_exploration_budget_is_one_for_the_fleet(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    shared = _shared(redis_server, request.node.name)
    a = RedisExplorationBudget(shared, client=shared.connect())
    b = RedisExplorationBudget(shared, client=shared.connect())
    assert isinstance(a, ExplorationBudget)
    for _ in range(2):
        assert await a.has_room(3)
        await a.spend()
    assert await b.has_room(3)
    await b.spend()
    assert not await a.has_room(3) and not await b.has_room(3)
    assert await b.has_room(4)
    dead = SharedStateSettings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    unreachable = RedisExplorationBudget(dead, client=dead.connect())
    assert not await unreachable.has_room(3)  # no counter, no exploring
    await unreachable.spend()  # logged, not raised


@pytest.mark.parametrize(
    ("section", "line", "message"),
    [
        ("shared_state: []\n", 3, "'rlm_router.shared_state' must be a mapping"),
        ("shared_state:\n    key_prefix: x\n", 3, "redis_url' is required"),
        ("shared_state:\n    redis_url: http://x\n", 4, "must start with one of"),
        ("shared_state:\n    redis_url: redis://h\n    lease_s: 0\n", 5, "lease_s' must be"),
        (
            "shared_state:\n    redis_url: redis://h\n    leases: 3\n",
            5,
            "unknown key(s) ['leases']",
        ),
        ("shared_state:\n    redis_url: redis://h\n    key_prefix: '{a}'\n", 5, "key_prefix"),
    ],
)
def test_bad_shared_state_names_file_line_and_key(
    tmp_path: Path, section: str, line: int, message: str
) -> None:
    config = tmp_path / "rlm.yaml"
    config.write_text("model_list: []\nrlm_router:\n  " + section)
    with pytest.raises(ServiceConfigError) as raised:
        ServiceConfig.load(config)
    assert f"{config}:{line}:" in str(raised.value)
    assert message in str(raised.value)


def test_shared_state_round_trips_into_the_generated_proxy_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "rlm.yaml"
    config.write_text(
        "model_list: []\nrlm_router:\n  shared_state:\n    redis_url: os.environ/RLM_TEST_REDIS\n"
    )
    loaded = ServiceConfig.load(config)
    assert loaded.shared == SharedStateSettings(redis_url="os.environ/RLM_TEST_REDIS")
    again = ServiceConfig.from_mapping(loaded.proxy_config())
    assert again.shared == loaded.shared
    monkeypatch.setenv("RLM_TEST_REDIS", "redis://127.0.0.1:1/0")
    assert loaded.shared is not None and loaded.shared.resolved_url() == "redis://127.0.0.1:1/0"
    monkeypatch.delenv("RLM_TEST_REDIS")
    with pytest.raises(Exception, match=r"names \$RLM_TEST_REDIS, which is not set"):
        loaded.shared.resolved_url()
