"""Shared fixtures: one simulated provider for the whole test session.

The simulator runs on its own event loop in a daemon thread, so the same instance serves
synchronous tests and async tests (whatever loop pytest-asyncio gives them).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from rlm_router.rlm_core.env import apply_offline_defaults
from rlm_router.sim import SimConfig, SimServer

# Tests import litellm directly (not only through rlm_core.litellm_api, which applies these
# itself): without them its import fetches the cost map from the network.
apply_offline_defaults()


@pytest.fixture(scope="session")
def sim_server() -> Iterator[SimServer]:
    """A running simulated provider (seed 0, no modelled latency); ``.base_url`` for litellm.

    Tests that schedule faults through ``/sim/faults`` must clear them (see ``sim_faults``).
    """
    server = SimServer(SimConfig(seed=0, time_scale=0.0, timeout_hold_s=5.0)).start_in_thread()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sim_faults(sim_server: SimServer) -> Iterator[str]:
    """The fault-scheduling URL of the session simulator, cleared after the test."""
    url = f"{sim_server.url}/sim/faults"
    httpx.delete(url)
    try:
        yield url
    finally:
        httpx.delete(url)


@pytest.fixture(scope="session")
def sim_models() -> None:
    """Register the simulated models' prices and windows with litellm (imports litellm).

    Also builds litellm's response and stream types once: pydantic warns (UserWarning, about
    ``ReadOnly`` TypedDict items in litellm's own types) the first time, and warnings are
    errors in this suite, so that one-off third-party warning is absorbed here.
    """
    import warnings

    import litellm

    from rlm_router.sim import register_sim_models

    register_sim_models()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for stream in (False, True):
            response = litellm.completion(
                model="openai/sim-large", messages=[{"role": "user", "content": "warm-up"}],
                mock_response="ok", stream=stream,
            )  # fmt: skip
            if stream:
                for _ in response:
                    pass
