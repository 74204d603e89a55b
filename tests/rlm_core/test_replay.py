"""Replay tier: real root-model replies from published trajectories, replayed through our
engine against a replay provider on loopback (``sim.replay``), with contexts shaped like
the originals.

Each fixture in ``replays/`` names its source (repo, path, commit) and keeps only what the
replay needs: the root replies, how many blocks the official engine ran per turn, what they
printed, and the final answer it took. The assertions: every block the official engine ran
runs here too, the run ends on the same turn with a final answer, and where our engine
deliberately differs (listed below with the reason) it differs in the stated way only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from rlm_router.rlm_core import Budget, ModelSpec, RLMEngine, SandboxLimits, StopReason
from rlm_router.sim.replay import ReplayServer

REPLAYS = Path(__file__).with_name("replays")
LIMITS = SandboxLimits(wall_seconds=10.0, cpu_seconds=5, memory_mb=512, max_processes=16)


def _fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REPLAYS / name).read_text(encoding="utf-8"))
    source = data["provenance"]
    assert {"repo", "path", "commit", "licence"} <= set(source), "provenance is required"
    assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    return data


GPT4O = _fixture("official_gpt4o_trace_log_example.json")
# The recording's environment (a jupyter branch of the official engine) named the context
# `completion_context` / `session_context_0`; the released engines and ours call it `context`.
_RENAMES = {name: "context" for name in GPT4O["provenance"]["context_names"]}

# Where our engine differs on purpose, by (run, turn): what differs and why.
DEVIATIONS = {
    # FINAL(random_number): the official engine answered with the literal word; ours answers
    # with the variable's value because a variable of that name exists (FINAL/FINAL_VAR
    # confusion, 13-16% of trained models' turns).
    (0, 3): "answer",
    # The recorded value came from random.randint in the original REPL.
    (1, 1): "stdout",
    # The original REPL was shared with the previous run (x = 500); ours starts fresh per
    # request, so `print(x)` raises NameError. The run still ends on FINAL(1000) as recorded.
    (5, 1): "stdout",
}


def _renamed(reply: str) -> str:
    for old, new in _RENAMES.items():
        reply = reply.replace(old, new)
    return reply


@pytest.mark.parametrize("index", range(len(GPT4O["runs"])))
async def test_gpt4o_runs_replay_block_for_block(index: int) -> None:
    run = GPT4O["runs"][index]
    turns = run["turns"]
    async with ReplayServer([_renamed(t["reply"]) for t in turns]) as server:
        engine = RLMEngine(
            root=ModelSpec(model="openai/replay-gpt-4o", api_base=server.base_url, api_key="sk-x"),
            budget=Budget(max_iterations=30),
            limits=LIMITS,
        )
        result = await engine.acompletion(run["query"], run["query"])
    # It ends where the real run ended: the same turn, with a final answer.
    assert result.stopped_reason is StopReason.FINAL
    assert result.iterations == len(turns) == server.root_turns
    iterations = result.trajectory.iterations
    assert [len(i.executions) for i in iterations] == [t["official_blocks"] for t in turns]
    for turn, (ours, recorded) in enumerate(zip(iterations, turns, strict=True)):
        if DEVIATIONS.get((index, turn)) == "stdout":
            continue
        shown = [e.output for e in ours.executions]
        assert shown == [out if out else "" for out in recorded["official_stdout"]], turn
    expected = turns[-1]["official_final"]
    if DEVIATIONS.get((index, len(turns) - 1)) == "answer":
        assert result.answer is not None and 1 <= int(result.answer) <= 100
    else:  # FINAL("Blue"): the recording kept the quotes, we take the quoted text
        assert result.answer == expected.strip('"')


def test_the_recording_has_the_shapes_the_issue_cites() -> None:
    replies = [t["reply"] for run in GPT4O["runs"] for t in run["turns"]]
    assert len(replies) == 17
    assert sum("```repl" not in r for r in replies) == 7  # prose-only or answer-only turns
