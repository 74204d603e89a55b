"""Fixtures for the engine tests: every test must leave no sandbox worker behind."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
import uvloop

# The sandbox's own tests run on asyncio's loop and on uvloop, the LiteLLM proxy's loop: their
# pipe transports differ (uvloop closed every worker pipe twice and kept a pipe open at EOF,
# which made every RLM answer through the proxy 2 s late; rlm_core/process.py), and those
# differences hid while the tests ran on asyncio's loop only.
BOTH_LOOPS = ("test_sandbox.py", "test_pool.py", "test_process.py")


def worker_processes() -> list[int]:
    """Live sandbox workers started by this test process (their config names our pid)."""
    marker = f'"host_pid": {os.getpid()}'.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"rlm_core/worker" in cmdline and marker in cmdline:
            found.append(int(entry.name))
    return found


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    if item.path.name in BOTH_LOOPS or item.path.parent.name == "redteam":
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}  # the hook must always name a loop


@pytest.fixture(autouse=True)
def no_worker_left_behind() -> Iterator[None]:
    yield
    assert worker_processes() == [], "a sandbox worker outlived its run"


@pytest.fixture(scope="session", autouse=True)
def litellm_types_built() -> None:
    """Build litellm's response types once, outside the tests.

    pydantic warns (UserWarning, about a ``ReadOnly`` TypedDict item in litellm's own types)
    the first time litellm builds a response; warnings are errors here, so that one-off
    third-party warning is absorbed before any test runs.
    """
    import warnings

    import litellm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        litellm.mock_completion(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": "warm-up"}],
            mock_response="ok",
        )
