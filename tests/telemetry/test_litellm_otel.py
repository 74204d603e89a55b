"""With LiteLLM's own ``otel`` callback enabled, its attributes never land on our spans.

LiteLLM writes onto the *current* span when one exists (unless USE_OTEL_LITELLM_REQUEST_SPAN
is set). Ours are never current: the direct call hands LiteLLM an explicit parent (its span
nests under our ``chat`` span), and code we cannot annotate (the RLM engine) runs
``shielded()``, where the current span is a non-recording stand-in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace

from rlm_router.sim import SimServer
from rlm_router.telemetry import semconv as sc
from tests.telemetry.telemetry_support import SampleDecision, Wired

MESSAGES = [{"role": "user", "content": "hello"}]
# Every attribute key our request and chat spans may carry.
OURS = {v for k, v in vars(sc).items() if k.isupper() and isinstance(v, str) and "." in v}


class _Logged:
    """Set when LiteLLM's success callbacks (registered before this one) have run."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def wait(self) -> None:
        await asyncio.wait_for(self.event.wait(), timeout=10)


@pytest.fixture
def litellm_otel(wired: Wired, sim_server: SimServer) -> Iterator[tuple[Any, _Logged]]:
    import litellm
    from litellm.integrations.custom_logger import CustomLogger
    from litellm.integrations.opentelemetry import OpenTelemetry

    logged = _Logged()

    class Sentinel(CustomLogger):  # type: ignore[misc]
        async def async_log_success_event(self, *args: Any, **kwargs: Any) -> None:
            logged.event.set()

    saved = list(litellm.callbacks)
    ours = [OpenTelemetry(tracer_provider=wired.telemetry.tracer_provider), Sentinel()]
    litellm.callbacks = [*saved, *ours]
    # Calls go over loopback to the simulated provider: LiteLLM's real request path.
    litellm.api_base, saved_base = sim_server.base_url, litellm.api_base
    litellm.api_key, saved_key = "sk-sim", litellm.api_key
    yield litellm, logged
    litellm.api_base, litellm.api_key = saved_base, saved_key
    # litellm copies callbacks into its internal lists on first use: remove them everywhere.
    for callback in ours:
        litellm.logging_callback_manager.remove_callback_from_all_lists(callback)
    litellm.callbacks = saved


def _foreign_keys(wired: Wired, name: str) -> set[str]:
    keys = {key for span in wired.by_name(name) for key in (span.attributes or {})}
    return {key for key in keys if key not in OURS and not key.startswith(sc.FEATURE_PREFIX)}


async def test_direct_call_nests_litellm_span_under_ours(
    litellm_otel: tuple[Any, _Logged], wired: Wired
) -> None:
    litellm, logged = litellm_otel
    with wired.telemetry.request_span(model="auto") as req:
        req.decision(SampleDecision())
        with req.chat(model="openai/sim-large") as call:
            await litellm.acompletion(
                model="openai/sim-large",
                messages=MESSAGES,
                metadata=call.litellm_metadata(),
            )
        req.outcome(route_served="llm")
    await logged.wait()
    (theirs,) = wired.by_name("litellm_request")
    ours = wired.one("chat openai/sim-large")
    assert theirs.parent is not None and theirs.parent.span_id == ours.context.span_id
    assert "llm.request.type" in (theirs.attributes or {})
    for name in (sc.SPAN_REQUEST, sc.SPAN_DECIDE, "chat openai/sim-large"):
        assert _foreign_keys(wired, name) == set(), name


async def test_shielded_calls_cannot_write_onto_our_spans(
    litellm_otel: tuple[Any, _Logged], wired: Wired
) -> None:
    litellm, logged = litellm_otel
    with wired.telemetry.request_span(model="auto") as req:
        with req.shielded():  # as the dispatcher runs the RLM engine
            await litellm.acompletion(model="openai/sim-mini", messages=MESSAGES)
        req.outcome(route_served="rlm")
    await logged.wait()
    assert _foreign_keys(wired, sc.SPAN_REQUEST) == set()
    request = wired.one(sc.SPAN_REQUEST)
    for span in wired.finished():  # whatever LiteLLM made stays in our trace
        assert span.context.trace_id == request.context.trace_id


async def test_control_a_current_span_would_receive_litellm_attributes(
    litellm_otel: tuple[Any, _Logged], wired: Wired
) -> None:
    litellm, logged = litellm_otel
    # What the design avoids: had our request span been current, LiteLLM writes onto it.
    with wired.telemetry.request_span(model="auto") as req:
        with trace.use_span(req.span, end_on_exit=False):
            await litellm.acompletion(model="openai/sim-mini", messages=MESSAGES)
        await logged.wait()
        req.outcome(route_served="llm")
    assert "llm.request.type" in _foreign_keys(wired, sc.SPAN_REQUEST)
