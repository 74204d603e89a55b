"""Fixtures of the red-team tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.rlm_core.redteam.harness import Markers, open_markers


@pytest.fixture
def markers() -> Iterator[Markers]:
    with open_markers() as found:
        yield found
