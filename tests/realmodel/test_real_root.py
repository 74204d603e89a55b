"""The engine and the router against a real 1.5B model (Qwen2.5-Coder-1.5B-Instruct, greedy).

What a user would notice is asserted, not the model's words: a direct lookup answers; an
engine run on a 3K-token context runs the model's code and ends for a stated reason; every
turn the engine could not parse was answered with feedback that reached the model; the router
sends a short request direct and an over-window one to the engine, which answers with the
planted fact (the model finds it with the prompt's first example and, re-sending that block,
is stopped as stuck and asked for its answer: 3 turns and one request; right on 4 of 4 runs
on 2026-12-01, 1 and 2 threads, load 1-7). The tier's summary prints turns parsed and answers.
Each test is bounded by its budget and a pytest timeout sized for a loaded 2-core machine
(the model then reads ~3-10 prompt tokens/s); on an idle one the tier takes a few minutes.
"""

from __future__ import annotations

import itertools
import random
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from rlm_router.rlm_core import (
    Budget,
    ModelSpec,
    RetryPolicy,
    RLMEngine,
    SandboxLimits,
    StopReason,
    protocol,
)
from rlm_router.sim.local_model import MODEL_NAME
from tests.realmodel.harness import RUNS, Relay, RunRecord, replies_parsed, root_conversation

FACT = "The access code for the blue vault is 48213."
QUESTION = "What is the access code for the blue vault?"
# One model call may take minutes on a loaded machine; the engine's own wall budget ends a
# run that goes nowhere, so a retry would only spend the tier's time.
PATIENT = RetryPolicy(max_attempts=1, timeout_s=1500)


def _haystack(n_lines: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    words = ["river", "stone", "cloud", "ledger", "lamp", "orchard", "copper", "window"]
    lines = [" ".join(rng.choice(words) for _ in range(12)) + "." for _ in range(n_lines)]
    lines.insert(n_lines // 2, FACT)
    return "\n".join(lines)


def _spec(relay: Relay) -> ModelSpec:
    return ModelSpec(model=f"openai/{MODEL_NAME}", api_base=relay.base_url, api_key="sk-local")


def _assert_feedback_reached_the_model(relay: Relay, first: int) -> list[str]:
    """For every root reply since exchange ``first`` that the engine could not use as it
    stood (no code and no answer, or ```python fences), the next message the model was sent
    says so. Returns that feedback."""
    conversation = root_conversation(relay, first)
    told: list[str] = []
    for said, answer in itertools.pairwise(conversation):
        if said["role"] != "assistant":
            continue
        parsed = protocol.parse_reply(said["content"])
        if parsed.problem is not None and not parsed.code_blocks:
            assert parsed.problem in answer["content"]
            told.append(parsed.problem)
        if parsed.python_fences:
            assert "your reply had no ```repl block" in answer["content"]
            told.append("python fences run as repl")
    return told


def _record(name: str, relay: Relay, first: int, told: list[str], **outcome: Any) -> None:
    turns, parsed = replies_parsed(root_conversation(relay, first))
    RUNS.append(RunRecord(test=name, turns=turns, turns_parsed=parsed, feedback=told, **outcome))


@pytest.mark.timeout(1200)
async def test_a_direct_lookup_through_litellm(relay: Relay) -> None:
    from rlm_router.rlm_core.litellm_api import acompletion

    response = await acompletion(
        model=f"openai/{MODEL_NAME}",
        api_base=relay.base_url,
        api_key="sk-local",
        messages=[
            {
                "role": "user",
                "content": f"{_haystack(40)}\n\n{QUESTION} Reply with the number only.",
            }
        ],
        max_tokens=16,
    )
    assert "48213" in (response.choices[0].message.content or "")


@pytest.mark.timeout(1500)
async def test_the_engine_finds_a_fact_by_writing_code(relay: Relay) -> None:
    """A 3K-token context the model never reads whole: it must look from code."""
    engine = RLMEngine(
        root=_spec(relay),
        budget=Budget(max_iterations=6, max_sub_calls=6, max_wall_s=1200),
        limits=SandboxLimits(wall_seconds=60.0),
        retry=PATIENT,
        concurrency=1,
    )
    first = len(relay.exchanges)
    started = time.perf_counter()
    result = await engine.acompletion(QUESTION, _haystack(200))
    wall = time.perf_counter() - started
    told = _assert_feedback_reached_the_model(relay, first)
    correct = result.answer is not None and "48213" in result.answer
    _record(
        "engine_lookup_3k", relay, first, told, stopped_reason=result.stopped_reason.value,
        answered=result.answer is not None, correct=correct, wall_s=round(wall, 1),
    )  # fmt: skip
    # Every turn was recorded, code ran in the sandbox, the run ended for a stated reason
    # within its budget, and the answer is the planted code.
    assert correct, result.answer
    assert len(result.trajectory.iterations) >= result.iterations - 1
    assert any(it.executions for it in result.trajectory.iterations)
    assert result.stopped_reason in (
        StopReason.FINAL,
        StopReason.MAX_ITERATIONS,
        StopReason.MAX_SUB_CALLS,
        StopReason.TIMEOUT,
        StopReason.STUCK,
    ), result.stopped_reason


def _policy_at(relay: Relay, tmp_path: Path) -> Path:
    from rlm_router.policies.loader import DEFAULT_POLICY_PATH

    policy: dict[str, Any] = yaml.safe_load(Path(DEFAULT_POLICY_PATH).read_text())
    for role in ("direct", "rlm_root", "rlm_sub"):
        policy["models"][role] = {
            "model": f"openai/{MODEL_NAME}",
            "api_base": relay.base_url,
            "api_key_env": "RLM_ROUTER_LOCAL_KEY",
            # The direct window declared small, so a 3K-token input is over it (rules.over_window)
            # while the model itself (20K) still fits every sub-call.
            "context_window": 2048 if role == "direct" else 16384,
        }
    policy["budgets"].update(max_iterations=6, max_sub_calls=6, max_wall_s=1200)
    policy["retry"].update(max_attempts=1, timeout_s=1500)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


@pytest.mark.timeout(1500)
async def test_the_router_serves_real_requests_on_both_routes(
    relay: Relay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rlm_router.router import Router
    from rlm_router.router.responses import route_of

    monkeypatch.setenv("RLM_ROUTER_LOCAL_KEY", "sk-local")
    router = Router.from_config(_policy_at(relay, tmp_path))

    short = [{"role": "user", "content": "What is 12 + 30? Reply with the number only."}]
    response: Any = await router.acompletion(model="auto", messages=short)
    assert route_of(response)["route"] == "llm"  # type: ignore[index]
    assert "42" in (response.choices[0].message.content or "")

    long = [{"role": "user", "content": f"{_haystack(200, seed=1)}\n\n{QUESTION}"}]
    first = len(relay.exchanges)
    started = time.perf_counter()
    response = await router.acompletion(model="auto", messages=long)
    wall = time.perf_counter() - started
    route = route_of(response)
    told = _assert_feedback_reached_the_model(relay, first)
    text = response.choices[0].message.content or ""
    assert route is not None
    _record(
        "router_rlm_3k", relay, first, told, stopped_reason=str(route.get("degraded") or "final"),
        answered=bool(text), correct="48213" in text, wall_s=round(wall, 1),
    )  # fmt: skip
    # Served on the RLM route (no fallback: the input is over the direct window) with the
    # planted code. The run ends stuck, not on FINAL, so the router marks the answer degraded
    # (partial_at_budget); before the prompt's query-worded example (session 4) the model
    # invented "12345" there.
    assert route["route"] == "rlm" and route["fallback"] == "none", route
    assert "48213" in text, (route, text)
