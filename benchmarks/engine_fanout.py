"""The batched fan-out rows of ``benchmarks.engine_bench``: one ``llm_query_batched`` of many
prompts against a provider with a fixed latency, our engine vs the official ``rlms`` vs bare
litellm calls under the same in-flight cap (wall time vs the ideal, client CPU per sub-call).
"""

from __future__ import annotations

import asyncio
import inspect
import math
import os
import time
from typing import Any

from benchmarks.engine_common import ROOT_MODEL, SUB_MODEL, collect_official_clients, median


def default_caps() -> dict[str, int]:
    """The in-flight caps the two engines use unless told otherwise (from their signatures)."""
    from rlm.core.lm_handler import LMHandler

    from rlm_router.rlm_core import RLMEngine

    ours = inspect.signature(RLMEngine).parameters["concurrency"].default
    official = inspect.signature(LMHandler).parameters["batch_max_concurrent"].default
    return {"ours": int(ours), "official": int(official)}


def _cpu_s() -> float:
    """CPU time of this process plus its reaped children (our sandbox workers, which exit at
    the end of each run; the simulator is reaped only after the measurements)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _batch_code(n: int) -> str:
    return f"r = llm_query_batched(['batch item ' + str(i) for i in range({n})])\nprint(len(r))"


async def _ours_fanout(base_url: str, n: int, cap: int) -> tuple[float, float]:
    """Our engine, concurrency ``cap``: wall time of the ``n``-prompt block as the REPL saw it,
    and CPU ms per sub-call, host and worker (a run with 4 prompts subtracted: same fixed
    costs)."""
    import litellm

    from rlm_router.rlm_core import Budget, ModelSpec, RLMEngine, litellm_api

    block = {"code": _batch_code(4)}

    async def completion(**kwargs: Any) -> Any:
        if kwargs["messages"][0]["role"] == "system":  # the root turn: run the block once
            done = any(m["role"] == "assistant" for m in kwargs["messages"])
            reply = "FINAL(done)" if done else f"```repl\n{block['code']}\n```"
            return await litellm.acompletion(
                model=kwargs["model"], messages=kwargs["messages"], mock_response=reply
            )
        return await litellm_api.engine_acompletion(**kwargs)  # the engine's own sub-call path

    engine = RLMEngine(
        root=ModelSpec(model=f"openai/{ROOT_MODEL}", api_base=base_url, api_key="sim"),
        sub=ModelSpec(model=f"openai/{SUB_MODEL}", api_base=base_url, api_key="sim"),
        budget=Budget(max_iterations=3, max_depth=1),
        concurrency=cap,
        completion=completion,
    )
    await engine.acompletion("warm up", "")  # same event loop: litellm's clients are reused
    cpu = _cpu_s()
    await engine.acompletion("small batch", "")
    small_cpu = _cpu_s() - cpu
    block["code"] = _batch_code(n)
    cpu = _cpu_s()
    result = await engine.acompletion("batch", "")
    cpu = _cpu_s() - cpu
    executions = [e for i in result.trajectory.iterations for e in i.executions]
    return executions[0].duration_s, 1000 * (cpu - small_cpu) / (n - 4)


def _official_fanout(base_url: str, n: int, cap: int) -> tuple[float, float]:
    """rlms's REPL and LM handler, wired as its RLM.completion wires them, batch cap ``cap``."""
    from rlm.clients.openai import OpenAIClient
    from rlm.core.lm_handler import LMHandler
    from rlm.environments.local_repl import LocalREPL

    client = OpenAIClient(model_name=SUB_MODEL, base_url=base_url, api_key="sim")
    handler = LMHandler(client, batch_max_concurrent=cap)
    handler.start()
    repl = LocalREPL(lm_handler_address=handler.address, context_payload="")
    try:
        repl.execute_code(_batch_code(4))  # warm, as for ours
        cpu = _cpu_s()
        repl.execute_code(_batch_code(4))
        small_cpu = _cpu_s() - cpu
        cpu, started = _cpu_s(), time.perf_counter()
        result = repl.execute_code(_batch_code(n))
        elapsed = time.perf_counter() - started
        cpu = _cpu_s() - cpu
    finally:
        repl.cleanup()
        handler.stop()
        del client, handler, repl
        collect_official_clients()
    if result.stdout.strip() != str(n):
        raise RuntimeError(f"rlms batch failed: {(result.stderr or result.stdout)[-200:]}")
    return elapsed, 1000 * (cpu - small_cpu) / (n - 4)


async def _litellm_fanout(base_url: str, n: int, cap: int) -> tuple[float, float]:
    """The client-side floor: ``n`` bare litellm calls, ``cap`` in flight, no engine."""
    import litellm

    limit = asyncio.Semaphore(cap)

    async def one(i: int) -> Any:
        async with limit:
            return await litellm.acompletion(
                model=f"openai/{SUB_MODEL}", api_base=base_url, api_key="sim",
                messages=[{"role": "user", "content": f"batch item {i}"}], timeout=120.0,
            )  # fmt: skip

    await asyncio.gather(*[one(i) for i in range(4)])
    cpu, started = _cpu_s(), time.perf_counter()
    await asyncio.gather(*[one(i) for i in range(n)])
    elapsed = time.perf_counter() - started
    return elapsed, 1000 * (_cpu_s() - cpu) / n


def bench_batched(base_url: str, n: int, latency_s: float, rounds: int) -> list[dict[str, Any]]:
    """One ``n``-prompt ``llm_query_batched`` per engine, each prompt served in ``latency_s``,
    at the engines' default cap and uncapped; best wall time of ``rounds``, median CPU."""
    caps = default_caps()
    rows = []
    for cap in sorted({caps["ours"], caps["official"], n}):
        runs: dict[str, list[tuple[float, float]]] = {"ours": [], "official": [], "litellm": []}
        for _ in range(rounds):  # interleaved, so the machine's load hits all three alike
            runs["ours"].append(asyncio.run(_ours_fanout(base_url, n, cap)))
            runs["official"].append(_official_fanout(base_url, n, cap))
            runs["litellm"].append(asyncio.run(_litellm_fanout(base_url, n, cap)))
        waves = math.ceil(n / cap)
        row: dict[str, Any] = {
            "prompts": n, "latency_s": latency_s, "cap": cap,
            "ideal_s": waves * latency_s,
            "ideal": f"ceil({n}/{cap}) x latency" if waves > 1 else "latency (all in flight)",
        }  # fmt: skip
        for name, measured in runs.items():
            row[f"{name}_s"] = min(wall for wall, _ in measured)
            row[f"{name}_cpu_ms_per_call"] = median([cpu for _, cpu in measured])
        rows.append(row)
    return rows
