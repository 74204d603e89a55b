"""Fixtures: Telemetry wired to in-memory exporters (see telemetry_support)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.telemetry.telemetry_support import Wired, wired_telemetry


@pytest.fixture
def wired() -> Iterator[Wired]:
    yield from wired_telemetry(capture_content=False)


@pytest.fixture
def wired_capture() -> Iterator[Wired]:
    yield from wired_telemetry(capture_content=True)
