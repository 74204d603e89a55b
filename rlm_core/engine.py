"""The public engine: ``RLMEngine.acompletion(query, context)`` → ``RLMResult``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from dataclasses import dataclass, field
from typing import Any

import rlm_router.rlm_core.litellm_api as litellm_api
from rlm_router.rlm_core.budget import Budget, Ledger, StopReason, Usage
from rlm_router.rlm_core.errors import ProviderError, ProviderFailure
from rlm_router.rlm_core.loop import NodeOutcome, TreeAborted, TreeRun
from rlm_router.rlm_core.observer import EngineObserver, Notifier
from rlm_router.rlm_core.pool import WorkerPool
from rlm_router.rlm_core.provider import Completion, ModelClient, ModelSpec, RetryPolicy
from rlm_router.rlm_core.sandbox import SandboxLimits
from rlm_router.rlm_core.trajectory import Trajectory


@dataclass
class RLMResult:
    """The outcome of one query. ``ok`` is True only when the model gave a final answer."""

    answer: str | None
    stopped_reason: StopReason
    usage: Usage
    elapsed_s: float
    trajectory: Trajectory = field(repr=False)

    @property
    def ok(self) -> bool:
        return self.stopped_reason is StopReason.FINAL and self.answer is not None

    @property
    def input_tokens(self) -> int:
        return self.usage.input_tokens

    @property
    def output_tokens(self) -> int:
        return self.usage.output_tokens

    @property
    def cost_usd(self) -> float:
        return self.usage.cost_usd

    @property
    def sub_calls(self) -> int:
        return self.usage.sub_calls

    @property
    def iterations(self) -> int:
        return self.usage.iterations

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "stopped_reason": self.stopped_reason.value,
            "ok": self.ok,
            "iterations": self.iterations,
            "sub_calls": self.sub_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "elapsed_s": self.elapsed_s,
        }


class RLMEngine:
    """A Recursive Language Model: the root model explores the context by writing code.

    ``completion`` is an async callable with ``litellm.acompletion``'s signature (default:
    ``litellm_api.engine_acompletion``: litellm, or its lean path for OpenAI-compatible
    endpoints). ``concurrency`` bounds the provider calls in flight across
    the whole recursion tree of one query. ``pool`` (a started ``WorkerPool`` with the same
    limits, on the loop the queries run on) hands each sandbox a worker started ahead of it.
    """

    def __init__(
        self,
        *,
        root: ModelSpec,
        sub: ModelSpec | None = None,
        budget: Budget | None = None,
        limits: SandboxLimits | None = None,
        retry: RetryPolicy | None = None,
        concurrency: int = 16,
        observer: EngineObserver | None = None,
        completion: Completion | None = None,
        pool: WorkerPool | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.root = root
        self.sub = sub or root
        self.budget = budget or Budget()
        self.limits = limits or SandboxLimits()
        self.retry = retry or RetryPolicy()
        self.concurrency = concurrency
        self.observer = observer
        self._completion = completion
        self.pool = pool

    async def acompletion(
        self, query: str, context: Any, *, deadline: float | None = None
    ) -> RLMResult:
        """Answer ``query`` over ``context`` (str, list of str, or JSON-like data).

        ``deadline`` is a ``time.monotonic()`` value. Budget breaches return a result with
        the best partial answer; a permanent provider failure raises ProviderFailure.
        """
        ledger = Ledger(self.budget, concurrency=self.concurrency, deadline=deadline)
        tree = TreeRun(
            root=self.root, sub=self.sub, budget=self.budget, limits=self.limits,
            ledger=ledger, client=ModelClient(self._completion, self.retry, ledger),
            notify=Notifier(self.observer), pool=self.pool,
        )  # fmt: skip
        started = time.perf_counter()
        remaining = ledger.remaining_s()
        try:
            async with litellm_api.engine_call_scope(), asyncio.timeout(remaining):
                outcome = await tree.run_node(query, context, 0, None)
        except TimeoutError:
            outcome = NodeOutcome(tree.partial, ledger.time_reason())
        except (TreeAborted, ProviderError) as exc:
            failure = exc.failure if isinstance(exc, TreeAborted) else exc
            raise ProviderFailure(
                str(failure),
                trajectory=tree.trajectory,
                partial_answer=tree.partial,
                status_code=failure.status_code,
                error_type=failure.error_type,
            ) from exc
        result = RLMResult(
            answer=outcome.answer,
            stopped_reason=outcome.reason,
            usage=ledger.usage,
            elapsed_s=time.perf_counter() - started,
            trajectory=tree.trajectory,
        )
        root = tree.trajectory.nodes[0]
        root.answer, root.stopped_reason = result.answer, result.stopped_reason.value
        tree.notify("on_run_end", root, result, None)
        return result

    def completion(self, query: str, context: Any, *, deadline: float | None = None) -> RLMResult:
        """Synchronous wrapper of ``acompletion`` (runs its own event loop)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.acompletion(query, context, deadline=deadline))
        # Called from inside an event loop: run on a private loop in a worker thread.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(asyncio.run, self.acompletion(query, context, deadline=deadline))
            return future.result()
