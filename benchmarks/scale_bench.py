"""A 10M-token OOLONG request on the shipped policy, per root persona, through
``Router.acompletion`` and through the real LiteLLM proxy with the plugin
(``python -m benchmarks.scale_bench [--tokens 10000000] [--seeds 1] [--first-seed 0]
[--via router --via proxy] [--json out.json]``).

The shipped policy (``policies/default.yaml``) is used as it is, except that its models point at
the simulated provider and the RLM root is ``sim-<persona>``: in the library through the
policy's ``models`` section, in the proxy through the plugin's ``models`` (model_list groups on
the simulator). The simulator runs in its own process (time scale 0: wall time is our own work
plus the simulator's reading, not provider latency), one per request, so its ``/sim/stats``
count exactly that request's sub-calls and root turns, as a provider would bill them.

CPU time is ours only: the library's process plus its finished children (the sandbox workers),
or the proxy process plus its children; the simulator's process is not counted. Prints one row
per request and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from benchmarks.proxy_bench import MASTER_KEY, ProxyProcess, SimProcess, sim_model_list
from rlm_router.sim import register_sim_models
from rlm_router.sim.tasks import Task, generate

ROOTS = {"competent": "sim-large", "frontier": "sim-frontier", "coder": "sim-coder"}
VIAS = ("router", "proxy")
KEY_ENV = "RLM_SCALE_BENCH_KEY"
_TIMEOUT_S = 1_200.0  # the policy's max_wall_s is 600 s; this only bounds a hung request


def policy_for(root: str, base_url: str, directory: Path) -> Path:
    """The shipped policy with its models at the simulator and ``root`` as the RLM root."""
    from rlm_router.policies.loader import DEFAULT_POLICY_PATH

    policy = yaml.safe_load(Path(DEFAULT_POLICY_PATH).read_text())
    for name in ("direct", "rlm_root", "rlm_sub"):
        policy["models"][name]["api_base"] = base_url
        policy["models"][name]["api_key_env"] = KEY_ENV
    policy["models"]["rlm_root"]["model"] = f"openai/{root}"
    path = directory / f"policy-{root}.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def proxy_config(root: str, base_url: str, policy: Path | None = None) -> dict[str, Any]:
    """The proxy config ``rlm-router serve`` generates, on the shipped policy (or
    ``policy``), with the simulator's models as model_list groups and ``root`` as the RLM
    root."""
    from rlm_router.router.plugin.config import ServiceConfig

    groups = tuple(dict.fromkeys(("sim-large", "sim-mini", root)))
    section: dict[str, Any] = {
        "models": {"direct": "sim-large", "rlm_root": root, "rlm_sub": "sim-mini"}
    }
    if policy is not None:
        section["policy"] = str(policy)
    data = {"model_list": sim_model_list(base_url, groups), "rlm_router": section}
    return ServiceConfig.from_mapping(data, path=None).proxy_config()


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def proxy_cpu_s(pid: int) -> float:
    """utime + stime of the proxy and of its waited-for children (cutime + cstime), plus its
    live children (``proxy_bench.process_tree_cpu_seconds`` counts those)."""
    from benchmarks.proxy_bench import process_tree_cpu_seconds

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    waited = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return process_tree_cpu_seconds(pid) + waited


async def _via_router(task: Task, root: str, sim: SimProcess, directory: Path) -> dict[str, Any]:
    from rlm_router.rlm_core.litellm_api import response_cost
    from rlm_router.router import Router
    from rlm_router.router.responses import route_of

    router = Router.from_config(policy_for(root, sim.base_url, directory))
    cpu = time.process_time() + children_cpu_s()
    started = time.perf_counter()
    response: Any = await asyncio.wait_for(
        router.acompletion(model="auto", messages=task.messages()), timeout=_TIMEOUT_S
    )
    info = route_of(response) or {}
    return {
        "answer": response.choices[0].message.content or "",
        "route": info.get("route"),
        "degraded": info.get("degraded"),
        "fallback": info.get("fallback"),
        "cost_usd": response_cost(response),
        "wall_s": time.perf_counter() - started,
        "cpu_s": time.process_time() + children_cpu_s() - cpu,
    }


def _via_proxy(task: Task, root: str, sim: SimProcess) -> dict[str, Any]:
    config = proxy_config(root, sim.base_url)
    with ProxyProcess(config, env={"RLM_ROUTER_TRACES_FILE": os.devnull}) as proxy:
        body = json.dumps({"model": "auto", "messages": task.messages()}).encode()
        headers = {"Authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"}
        cpu = proxy_cpu_s(proxy.pid)
        started = time.perf_counter()
        reply = httpx.post(
            f"{proxy.base_url}/v1/chat/completions",
            content=body,
            headers=headers,
            timeout=_TIMEOUT_S,
        )
        wall = time.perf_counter() - started
        cpu = proxy_cpu_s(proxy.pid) - cpu
    if reply.status_code != 200:
        raise RuntimeError(f"HTTP {reply.status_code}: {reply.text[:300]}")
    return {
        "answer": reply.json()["choices"][0]["message"]["content"] or "",
        "route": reply.headers.get("x-rlm-router-route"),
        "degraded": reply.headers.get("x-rlm-router-degraded"),
        "fallback": reply.headers.get("x-rlm-router-fallback"),
        "cost_usd": float(reply.headers.get("x-litellm-response-cost") or 0.0),
        "wall_s": wall,
        "cpu_s": cpu,
        "body_bytes": len(body),
    }


async def run(
    tokens: int, personas: Sequence[str], seeds: Sequence[int], vias: Sequence[str]
) -> list[dict[str, Any]]:
    register_sim_models()
    os.environ.setdefault(KEY_ENV, "sk-sim")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            task = generate("oolong", n_tokens=tokens, seed=seed)
            for persona in personas:
                for via in vias:
                    root = ROOTS[persona]
                    row: dict[str, Any] = {"via": via, "persona": persona, "seed": seed,
                                           "tokens": tokens, "question": task.question[:120],
                                           "expected": task.answer}  # fmt: skip
                    with SimProcess(time_scale=0.0) as sim:
                        try:
                            if via == "router":
                                got = await _via_router(task, root, sim, Path(tmp))
                            else:
                                got = await asyncio.to_thread(_via_proxy, task, root, sim)
                        except Exception as exc:  # a failed request is a result, not a crash
                            got = {"error": f"{type(exc).__name__}: {exc}"[:300]}
                        async with httpx.AsyncClient(timeout=10) as client:
                            stats = (await client.get(f"{sim.url}/sim/stats")).json()
                    requests = stats.get("requests", {})
                    row.update(got)
                    row["answer"] = str(got.get("answer", ""))[:80]
                    row["score"] = round(task.score(got.get("answer")), 3)
                    row["sub_calls"] = int(requests.get("sim-mini", 0))
                    row["root_turns"] = int(requests.get(root, 0))
                    for key in ("cost_usd", "wall_s", "cpu_s"):
                        if key in row:
                            row[key] = round(row[key], 3 if key == "cost_usd" else 1)
                    rows.append(row)
                    print(json.dumps(row), flush=True, file=sys.stderr)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10_000_000)
    parser.add_argument("--seeds", type=int, default=1, help="how many seeds")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--persona", action="append", choices=sorted(ROOTS))
    parser.add_argument("--via", action="append", choices=VIAS)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    rows = asyncio.run(
        run(
            args.tokens,
            args.persona or list(ROOTS),
            range(args.first_seed, args.first_seed + args.seeds),
            args.via or list(VIAS),
        )
    )
    columns = ("via", "persona", "seed", "score", "answer", "route", "degraded", "cost_usd",
               "sub_calls", "root_turns", "wall_s", "cpu_s", "error")  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row.get(c, "-")) for c in columns) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
