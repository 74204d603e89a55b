"""Fixtures for the engine tests: every test must leave no sandbox worker behind."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


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
