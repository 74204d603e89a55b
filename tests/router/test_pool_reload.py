"""A policy reload that changes the sandbox replaces the pre-started pool: the old pool's
waiting workers are stopped (not left until the loop ends) and the new one fills."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlm_router.rlm_core.pool import close_shared, shared_pool
from rlm_router.router import Router
from tests.rlm_core.test_pool import _left_in, _workers_in

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="full containment needs root here")

DEFAULT = Path(__file__).parents[2] / "policies" / "default.yaml"
SANDBOX = "prestart_workers: 2 "


@pytest.fixture
def own_tmp(tmp_path: Path) -> Iterator[Path]:
    """Workspaces go to a directory of their own (the policy file lives beside it)."""
    workspaces = tmp_path / "workspaces"
    workspaces.mkdir()
    saved, tempfile.tempdir = tempfile.tempdir, str(workspaces)
    try:
        yield workspaces
    finally:
        tempfile.tempdir = saved


def _write(path: Path, sandbox: str, threshold: str = "threshold: 0.5 ") -> None:
    text = DEFAULT.read_text()
    assert SANDBOX in text and "threshold: 0.5 " in text
    path.write_text(text.replace(SANDBOX, sandbox).replace("threshold: 0.5 ", threshold))


async def _settled(condition: object, tries: int = 600) -> None:
    for _ in range(tries):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)


async def test_a_reload_that_changes_the_sandbox_stops_the_old_pool(
    tmp_path: Path, own_tmp: Path
) -> None:
    path = tmp_path / "policy.yaml"
    _write(path, "prestart_workers: 1\n  memory_mb: 512\n")
    router = Router.from_config(path)
    try:
        old = router.dispatcher.settings.pool()
        assert old is not None
        await old.wait_ready()
        first = set(_workers_in(own_tmp))
        assert first

        # Another threshold only: the same pool and the same waiting worker.
        _write(path, "prestart_workers: 1\n  memory_mb: 512\n", "threshold: 0.55 ")
        assert router.reload() is True
        assert router.dispatcher.settings.pool() is old and set(_workers_in(own_tmp)) == first

        # Other limits: the old pool's worker goes, the new pool starts at once.
        _write(path, "prestart_workers: 1\n  memory_mb: 1024\n")
        assert router.reload() is True
        new = shared_pool(router.policy.sandbox.limits, 1)
        assert new is not old and router.dispatcher.settings.pool() is new
        await new.wait_ready()
        await _settled(lambda: not set(_workers_in(own_tmp)) & first)
        now = set(_workers_in(own_tmp))
        assert now and not now & first  # the old worker is gone, the new one waits
        assert old.ready == 0 and new.ready == 1
        await _settled(lambda: len(os.listdir(own_tmp)) == 2)
        assert len(os.listdir(own_tmp)) == 2  # the new worker's scratch and private directory
    finally:
        await close_shared()
    assert _workers_in(own_tmp) == []
    assert await _left_in(own_tmp) == []
