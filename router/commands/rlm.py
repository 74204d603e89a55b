"""``rlm-router rlm``: answer a query over a context file with the RLM engine."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlm_router.rlm_core import SandboxLimits


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rlm",
        help="answer a query over a context file with the RLM engine",
        description="Run the embedded RLM engine once: the context file becomes the REPL's "
        "`context` variable (parsed JSON for .json files or JSON content, text otherwise).",
    )
    parser.add_argument("--model", required=True, help="root model (litellm model string)")
    parser.add_argument("--sub-model", help="model for llm_query sub-calls (default: --model)")
    parser.add_argument("--api-base", help="OpenAI-compatible base URL for both models")
    parser.add_argument(
        "--api-key", help="API key for both models (default: the provider's usual env variable)"
    )
    parser.add_argument("--context-file", required=True, type=Path)
    parser.add_argument("--query", required=True)
    parser.add_argument("--max-depth", type=int, default=2)
    parser.add_argument("--max-iterations", type=int, default=30)
    parser.add_argument("--max-sub-calls", type=int, default=1000)
    parser.add_argument("--max-cost-usd", type=float)
    parser.add_argument("--timeout", type=float, default=600.0, help="wall-time budget, seconds")
    parser.add_argument("--concurrency", type=int, default=16, help="provider calls in flight")
    parser.add_argument(
        "--policy",
        type=Path,
        help="a policy YAML whose sandbox section (memory_mb, max_processes, cpu_seconds, "
        "wall_seconds, allow_weak_containment) configures the REPL workers",
    )
    parser.add_argument(
        "--allow-weak-sandbox",
        action="store_true",
        help="run model code even where this host lacks a containment layer (network or PID "
        "namespace, Landlock, seccomp, per-sandbox cgroup); the engine says which is missing",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--trajectory", type=Path, help="write the trajectory as JSON lines")
    parser.set_defaults(handler=run)


def load_context(path: Path) -> Any:
    """Text, or parsed JSON when the file is JSON (by suffix, or by content for a JSON value)."""
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    head = text[:1].lstrip() or text.lstrip()[:1]
    if path.suffix.lower() == ".json" or head in ("[", "{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            if path.suffix.lower() == ".json":
                raise
    return text


def run(args: argparse.Namespace) -> int:
    from rlm_router.rlm_core import Budget, ModelSpec, ProviderFailure, RLMEngine, RLMError
    from rlm_router.rlm_core.errors import ConfigError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.context_file.is_file():
        print(f"rlm-router rlm: no such file: {args.context_file}", file=sys.stderr)
        return 2
    try:
        limits = _sandbox_limits(args.policy, args.allow_weak_sandbox)
        budget = Budget(
            max_iterations=args.max_iterations,
            max_depth=args.max_depth,
            max_sub_calls=args.max_sub_calls,
            max_cost_usd=args.max_cost_usd,
            max_wall_s=args.timeout,
        )
        context = load_context(args.context_file)
    except (ValueError, OSError, ConfigError) as exc:
        print(f"rlm-router rlm: {exc}", file=sys.stderr)
        return 2
    _price_simulated_models(args.model, args.sub_model)
    root = ModelSpec(model=args.model, api_base=args.api_base, api_key=args.api_key)
    sub = None
    if args.sub_model:
        sub = ModelSpec(model=args.sub_model, api_base=args.api_base, api_key=args.api_key)
    engine = RLMEngine(
        root=root, sub=sub, budget=budget, limits=limits, concurrency=args.concurrency
    )
    started = time.perf_counter()
    try:
        result = engine.completion(args.query, context)
    except ProviderFailure as exc:
        payload = {
            "answer": exc.partial_answer,
            "stopped_reason": "provider_error",
            "error": str(exc),
            "elapsed_s": time.perf_counter() - started,
        }
        print(json.dumps(payload) if args.json else f"error: {exc}", file=sys.stdout)
        if exc.trajectory is not None and args.trajectory:
            args.trajectory.write_text(exc.trajectory.to_jsonl())
        return 1
    except RLMError as exc:  # the sandbox could not be started: no answer, one clear line
        payload = {
            "answer": None,
            "stopped_reason": "sandbox_failure",
            "error": str(exc),
            "elapsed_s": time.perf_counter() - started,
        }
        print(json.dumps(payload) if args.json else f"error: {exc}", file=sys.stdout)
        return 1
    if args.trajectory:
        args.trajectory.write_text(result.trajectory.to_jsonl())
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(result.answer if result.answer is not None else "(no answer)")
        print(
            f"[{result.stopped_reason.value}] iterations={result.iterations} "
            f"sub_calls={result.sub_calls} tokens={result.input_tokens}+{result.output_tokens} "
            f"cost=${result.cost_usd:.4f} elapsed={result.elapsed_s:.2f}s",
            file=sys.stderr,
        )
    return 0 if result.ok else 3


def _sandbox_limits(policy: Path | None, allow_weak: bool) -> SandboxLimits:
    """The policy's sandbox limits (the defaults without one); ``--allow-weak-sandbox`` opts
    in whatever the policy says. A bad policy raises ``PolicyError`` (file:line: key: ...)."""
    from rlm_router.rlm_core import SandboxLimits

    limits = SandboxLimits()
    if policy is not None:
        from rlm_router.policies import load_policy

        limits = load_policy(policy).sandbox.limits
    return dataclasses.replace(limits, allow_weak_containment=True) if allow_weak else limits


def _price_simulated_models(*models: str | None) -> None:
    """litellm has no price for ``rlm-router sim``'s models, so their calls would cost $0:
    register the simulator's own prices when a model is one of them (``openai/sim-large``)."""
    from rlm_router.sim import SIM_MODELS, register_sim_models

    if any(m and m.removeprefix("openai/") in SIM_MODELS for m in models):
        register_sim_models()
