"""The 10M-token context hand-off rows of ``benchmarks.engine_bench``: each engine receives the
context in a fresh interpreter (``python -m benchmarks.engine_bench --probe NAME``), so its
peak memory is not polluted by earlier measurements."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _status_kb(pid: int | str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    """Reset this process's VmHWM to its current RSS (Linux: clear_refs 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def _ten_million_token_context() -> str:
    from rlm_router.sim.tasks import generate

    return generate("niah", n_tokens=10_000_000, seed=0).context


def _probe_handoff_ours() -> dict[str, Any]:
    from rlm_router.rlm_core.sandbox import Sandbox, SandboxLimits, SubCallRequest

    async def handler(request: SubCallRequest) -> list[str]:
        return []

    async def run(context: str) -> dict[str, Any]:
        _reset_peak()
        host_before = _status_kb("self", "VmRSS")
        started = time.perf_counter()
        box = Sandbox(context, limits=SandboxLimits(), handler=handler)
        del context
        await box.start()
        handoff_s = time.perf_counter() - started
        check = await box.execute("print(len(context))")
        host_peak_extra = _status_kb("self", "VmHWM") - host_before
        worker_peak = box.peak_rss_kb() or 0
        await box.close()
        return {
            "handoff_s": handoff_s,
            "host_extra_peak_mb": host_peak_extra / 1024,
            "worker_peak_mb": worker_peak / 1024,
            "len_check": check.stdout.strip(),
            "sandbox": {"network": box.info.network, "filesystem": box.info.filesystem},
        }

    context = _ten_million_token_context()
    size = len(context.encode("utf-8"))
    result = asyncio.run(run(context))
    result["context_mb"] = size / 2**20
    result["peak_total_mb"] = result["host_extra_peak_mb"] + result["worker_peak_mb"]
    return result


def _probe_handoff_official() -> dict[str, Any]:
    from rlm.environments.local_repl import LocalREPL

    context = _ten_million_token_context()
    size = len(context.encode("utf-8"))
    _reset_peak()
    before = _status_kb("self", "VmRSS")
    started = time.perf_counter()
    repl = LocalREPL(context_payload=context)
    handoff_s = time.perf_counter() - started
    peak_extra = _status_kb("self", "VmHWM") - before
    check = repl.execute_code("print(len(context))")
    repl.cleanup()
    return {
        "handoff_s": handoff_s,
        "context_mb": size / 2**20,
        "peak_total_mb": peak_extra / 1024,
        "len_check": check.stdout.strip(),
    }


PROBES: dict[str, Callable[[], dict[str, Any]]] = {
    "handoff-ours": _probe_handoff_ours,
    "handoff-official": _probe_handoff_official,
}


def run_probe(name: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.engine_bench", "--probe", name],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=600,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
