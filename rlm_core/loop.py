"""The RLM loop of one recursion tree: root turns, REPL executions, sub-calls, child RLMs.

One ``TreeRun`` per query; every node (root and each ``rlm_query`` child) runs ``run_node``
with its own sandboxed worker, while the ledger (budget, deadline, concurrency), the model
client and the trajectory are shared by the whole tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import asdict, dataclass
from typing import Any

import rlm_router.rlm_core.litellm_api as litellm_api
from rlm_router.rlm_core import protocol
from rlm_router.rlm_core.budget import Budget, BudgetRefused, Ledger, Reservation, StopReason
from rlm_router.rlm_core.errors import ContextWindowExceeded, ProviderError, SandboxMisbehaving
from rlm_router.rlm_core.frames import SubCallRequest
from rlm_router.rlm_core.observer import Notifier
from rlm_router.rlm_core.pool import WorkerPool
from rlm_router.rlm_core.preflight import Plan, Preflight
from rlm_router.rlm_core.provider import ModelClient, ModelReply, ModelSpec
from rlm_router.rlm_core.sandbox import Sandbox, SandboxLimits, SubCallRejected
from rlm_router.rlm_core.trajectory import Execution, Iteration, ModelCall, Node, Trajectory

_DEFAULT_SUB_WINDOW_CHARS = 400_000
_FREE = Reservation(0, 0.0)  # checked, nothing to reserve (no token or USD budget)
_CHILDREN_AT_ONCE = 4  # child RLMs of one tree running at once (each has a REPL process)


@dataclass
class NodeOutcome:
    answer: str | None
    reason: StopReason


class TreeAborted(Exception):
    """A permanent provider failure somewhere in the tree (becomes ProviderFailure)."""

    def __init__(self, failure: ProviderError) -> None:
        super().__init__(str(failure))
        self.failure = failure


class TreeRun:
    """State shared by all nodes of one query's recursion tree."""

    def __init__(
        self,
        *,
        root: ModelSpec,
        sub: ModelSpec,
        budget: Budget,
        limits: SandboxLimits,
        ledger: Ledger,
        client: ModelClient,
        notify: Notifier,
        pool: WorkerPool | None = None,
    ) -> None:
        self.pool = pool
        self.root = root
        self.sub = sub
        self.budget = budget
        self.limits = limits
        self.ledger = ledger
        self.client = client
        self.notify = notify
        self.trajectory = Trajectory()
        self.partial: str | None = None  # the root's best answer so far
        self.sub_calls_refused = False
        self._next_id = 0
        self._children = asyncio.Semaphore(_CHILDREN_AT_ONCE)
        self.preflight = Preflight(ledger, max_output_tokens=budget.max_sub_call_output_tokens)

    # --- model calls --------------------------------------------------------------------------

    async def _call(
        self,
        spec: ModelSpec,
        messages: list[dict[str, str]],
        node: Node,
        role: str,
        *,
        max_tokens: int | None = None,
    ) -> ModelReply:
        started, t0 = time.time(), time.perf_counter()
        try:
            reply = await self.client.call(spec, messages, max_tokens=max_tokens)
        except ProviderError as failure:
            call = ModelCall(
                node.node_id, node.depth, role, spec.model, spec.model.split("/", 1)[0],
                0, 0, 0.0, started, time.perf_counter() - t0, error_type=failure.error_type,
            )  # fmt: skip
            self.trajectory.calls.append(call)
            self.notify("on_model_call", call)
            raise
        self.ledger.spend(
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            cost_usd=reply.cost_usd,
        )
        call = ModelCall(
            node.node_id, node.depth, role, spec.model, reply.provider, reply.input_tokens,
            reply.output_tokens, reply.cost_usd, started, time.perf_counter() - t0, reply.attempts,
        )  # fmt: skip
        self.trajectory.calls.append(call)
        self.notify("on_model_call", call)
        return reply

    def _sub_spec(self, model: str | None) -> ModelSpec:
        if model is None:
            return self.sub
        for spec in (self.sub, self.root):
            if model in (spec.model, spec.model.split("/", 1)[-1]):
                return spec
        allowed = sorted({self.sub.model, self.root.model})
        if not isinstance(model, str) or len(model) > 200 or any(c.isspace() for c in model):
            raise SubCallRejected(
                f"model= takes a model name (one of {allowed}); pass data to a child RLM "
                "with rlm_query(prompt, context=data)"
            )
        raise SubCallRejected(f"model {model!r} is not available here; use one of {allowed}")

    async def _sub_call(
        self,
        spec: ModelSpec,
        prompt: str,
        node: Node,
        batched: bool,
        share: Reservation | None = None,
    ) -> str:
        """One plain sub-call; ``share`` is its part of a batch already checked and reserved
        (None: the prompt is checked and reserved here)."""
        if share is None:
            plan = self._plan(spec, [prompt], "this llm_query")
            if plan.refused:
                if batched:
                    return f"Error: {plan.refused[0]}"
                raise SubCallRejected(plan.refused[0])
            share = plan.shares.get(0)
        messages = [{"role": "user", "content": prompt}]
        out = self.budget.max_sub_call_output_tokens
        try:
            return (await self._call(spec, messages, node, "sub", max_tokens=out)).text
        except ProviderError as failure:
            if not isinstance(failure, ContextWindowExceeded):
                raise TreeAborted(failure) from failure
            message = (
                f"the prompt ({len(prompt):,} characters) is larger than {spec.model}'s context "
                "window; split it into smaller chunks"
            )
            if batched:
                return f"Error: {message}"
            raise SubCallRejected(message) from failure
        finally:
            if share is not None:
                self.ledger.release(share)

    def _plan(self, spec: ModelSpec, prompts: list[str], what: str) -> Plan:
        """Pre-flight of sub-calls; a batch over budget is refused whole, with the numbers."""
        try:
            return self.preflight.plan(spec.model, prompts, what)
        except BudgetRefused as refused:
            raise SubCallRejected(
                f"refused before sending: {refused}. Nothing was sent or spent; send fewer or "
                "shorter prompts, or finish with what you have."
            ) from None

    async def serve(self, node: Node, request: SubCallRequest) -> list[str]:
        """Serve one llm_query / llm_query_batched / rlm_query frame from a node's worker."""
        spent = self.ledger.exhausted()
        if spent is not None:
            raise SubCallRejected(f"the run's budget is exhausted ({spent.value}); stop now")
        wanted = len(request.prompts)
        left = self.ledger.sub_calls_left()
        if left is not None and wanted > left:
            # Only a budget with nothing left ends the run; a batch larger than what is left
            # is refused and the model can send a smaller one.
            self.sub_calls_refused = left == 0
            raise SubCallRejected(
                f"sub-call budget: {wanted} requested, {left} left of "
                f"{self.budget.max_sub_calls}. "
                + ("Finish with what you have." if left == 0 else "Send fewer at a time.")
            )
        self.ledger.usage.sub_calls += wanted
        try:
            return await self._dispatch(node, request)
        except SubCallRejected:
            self.ledger.usage.sub_calls -= wanted  # refused before anything was sent
            raise

    async def _dispatch(self, node: Node, request: SubCallRequest) -> list[str]:
        if request.kind in ("rlm", "rlm_batched"):
            spec = self._sub_spec(request.model) if request.model is not None else None
            if request.kind == "rlm":
                return [await self._child(node, request.prompts[0], request.context, spec)]
            tasks = [self._child(node, p, None, spec, batched=True) for p in request.prompts]
            return list(await asyncio.gather(*tasks))
        spec = self._sub_spec(request.model)
        if request.kind == "query":
            return [await self._sub_call(spec, request.prompts[0], node, batched=False)]
        if request.kind != "batched":
            raise SubCallRejected(f"unknown sub-call kind {request.kind!r}")
        plan = self._plan(spec, request.prompts, "this llm_query_batched")
        tasks = [
            self._refused(plan.refused[i])
            if i in plan.refused
            else self._sub_call(spec, p, node, batched=True, share=plan.shares.get(i, _FREE))
            for i, p in enumerate(request.prompts)
        ]
        return list(await asyncio.gather(*tasks))

    @staticmethod
    async def _refused(message: str) -> str:
        return f"Error: {message}"

    async def _child(
        self,
        node: Node,
        prompt: str,
        context: Any,
        spec: ModelSpec | None,
        *,
        batched: bool = False,
    ) -> str:
        """One rlm_query: a child RLM below the depth limit, a plain sub-call at it."""
        if node.depth + 1 >= self.budget.max_depth:
            if context is not None:
                prompt = f"{prompt}\n\nContext:\n{context}"
            return await self._sub_call(spec or self.sub, prompt, node, batched=batched)
        child_context = context if context is not None else prompt
        async with self._children:  # each child is a worker process: few at a time
            outcome = await self.run_node(
                prompt, child_context, node.depth + 1, node.node_id, root=spec
            )
        if outcome.answer is None:
            return f"(the child RLM stopped without an answer: {outcome.reason.value})"
        return outcome.answer

    # --- one node -----------------------------------------------------------------------------

    def _new_node(self, query: str, context: Any, depth: int, parent: int | None) -> Node:
        info = protocol.ContextInfo.describe(context)
        node = Node(self._next_id, parent, depth, query, info.total_chars)
        self._next_id += 1
        self.trajectory.nodes.append(node)
        return node

    async def run_node(
        self,
        query: str,
        context: Any,
        depth: int,
        parent: int | None,
        *,
        root: ModelSpec | None = None,
    ) -> NodeOutcome:
        node = self._new_node(query, context, depth, parent)
        self.notify("on_run_start", node)
        info = protocol.ContextInfo.describe(context)
        messages = protocol.initial_messages(
            query,
            info,
            sub_window_chars=_sub_window_chars(self.sub.model),
            max_turns=self.budget.max_iterations,
            sub_calls_left=self.ledger.sub_calls_left(),
        )

        async def handler(request: SubCallRequest) -> list[str]:
            return await self.serve(node, request)

        sandbox = Sandbox(context, limits=self.limits, handler=handler, pool=self.pool)
        del context  # the sandbox owns the only reference from here on
        # The worker starts while the first root turn is in flight.
        starting = asyncio.create_task(sandbox.start())
        error: BaseException | None = None
        try:
            outcome = await self._loop(node, messages, sandbox, starting, root or self.root)
            node.answer, node.stopped_reason = outcome.answer, outcome.reason.value
            return outcome
        except BaseException as exc:
            error = exc
            node.stopped_reason = _stop_of(exc, self.ledger)
            raise
        finally:
            if not starting.done():
                starting.cancel()
            with contextlib.suppress(BaseException):
                await starting
            await sandbox.close()
            # The root's normal end (or its cut-off at the deadline) is reported by the engine,
            # with the whole run's result.
            if node.depth > 0 or not isinstance(error, asyncio.CancelledError | None):
                self.notify("on_run_end", node, None, error)

    async def _loop(
        self,
        node: Node,
        messages: list[dict[str, str]],
        sandbox: Sandbox,
        starting: asyncio.Task[Any],
        model: ModelSpec,
    ) -> NodeOutcome:
        partial_box: list[str | None] = [None]  # the node's best answer so far, kept by _iterate
        try:
            return await self._iterate(node, messages, sandbox, starting, model, partial_box)
        except SandboxMisbehaving:
            # The worker kept breaking the protocol after restarts: end this node with what
            # it had; the error is the node's stop reason, the tree goes on.
            return NodeOutcome(partial_box[0], StopReason.SANDBOX_FAILURE)

    async def _iterate(
        self,
        node: Node,
        messages: list[dict[str, str]],
        sandbox: Sandbox,
        starting: asyncio.Task[Any],
        model: ModelSpec,
        partial_box: list[str | None],
    ) -> NodeOutcome:
        partial: str | None = None
        variables: list[str] | None = None
        ran: dict[str, int] = {}  # each block run so far -> the turn it first ran on
        resent = 0  # consecutive turns that only re-ran blocks already run
        max_turns = self.budget.max_iterations
        for index in range(max_turns):
            spent = self.ledger.exhausted()
            if spent is not None:
                return NodeOutcome(partial, spent)
            if self.sub_calls_refused:
                return await self._ask_final(
                    node, messages, StopReason.MAX_SUB_CALLS, partial, model
                )
            if not self.ledger.iterations_left():
                return await self._ask_final(
                    node, messages, StopReason.MAX_ITERATIONS, partial, model
                )
            self.ledger.usage.iterations += 1
            self.notify("on_iteration_start", node, index)
            t0 = time.perf_counter()
            try:
                turn = self.preflight.reserve_turn(model.model, messages)
            except BudgetRefused as refused:
                self.ledger.usage.iterations -= 1
                return NodeOutcome(partial, refused.reason)
            try:
                reply = await self._call(model, messages, node, "root")
            finally:
                self.ledger.release(turn or _FREE)
            iteration = Iteration(
                node.node_id, node.depth, index, reply.text,
                input_tokens=reply.input_tokens, output_tokens=reply.output_tokens,
                cost_usd=reply.cost_usd, model_s=time.perf_counter() - t0,
            )  # fmt: skip
            parsed = protocol.parse_reply(reply.text)
            if not starting.done() or node.sandbox == {}:
                await starting
                node.sandbox = asdict(sandbox.info)
            final, outputs, feedback, content, listed = await self._execute(
                node, parsed, sandbox, iteration
            )
            variables = listed if listed is not None else variables
            partial = content or partial
            partial_box[0] = partial
            if final is not None:
                self._finish_iteration(node, iteration, t0)
                if node.depth == 0:
                    self.partial = final
                return NodeOutcome(final, StopReason.FINAL)
            repeats = [ran[b.strip()] for b in parsed.code_blocks if b.strip() in ran]
            for block in parsed.code_blocks:
                ran.setdefault(block.strip(), index + 1)
            nudge = protocol.NEXT_TURN_NUDGE
            resent = resent + 1 if repeats and len(repeats) == len(parsed.code_blocks) else 0
            if resent:
                nudge = protocol.repeated_code_nudge(repeats[0])
            iteration.feedback = feedback
            self._finish_iteration(node, iteration, t0)
            messages.append({"role": "assistant", "content": reply.text})
            text = protocol.execution_message(
                outputs, feedback, turn=index + 2, max_turns=max_turns, variables=variables,
                nudge=nudge,
            )  # fmt: skip
            messages.append({"role": "user", "content": text})
            if resent >= 2:  # told once already; another turn would repeat it again
                return await self._ask_final(node, messages, StopReason.STUCK, partial, model)
        return await self._ask_final(node, messages, StopReason.MAX_ITERATIONS, partial, model)

    async def _execute(
        self, node: Node, parsed: protocol.ParsedReply, sandbox: Sandbox, iteration: Iteration
    ) -> tuple[str | None, list[str], str | None, str | None, list[str] | None]:
        """Run the reply's code blocks: (final answer, outputs, feedback, answer content,
        the REPL's variables afterwards)."""
        outputs: list[str] = []
        content: str | None = None
        variables: list[str] | None = None
        feedback = parsed.problem
        if parsed.python_fences:
            feedback = (
                "Note: your reply had no ```repl block, so its ```python block(s) were run as "
                "REPL code. Tag code ```repl."
            )
        for code in parsed.code_blocks:
            before = self.ledger.usage.sub_calls
            result = await sandbox.execute(code)
            shown = result.stdout
            if result.truncated:
                shown += f"\n[output capped: {result.stdout_chars:,} characters were printed]"
            if result.error:
                shown = f"{shown}\n{result.error}" if shown else result.error
            shown = protocol.truncate(shown)
            execution = Execution(
                code, shown, result.error, result.duration_s, result.subcall_s,
                result.truncated, result.limit, self.ledger.usage.sub_calls - before,
            )  # fmt: skip
            iteration.executions.append(execution)
            iteration.repl_s += result.duration_s
            self.notify("on_repl_execution", node, execution)
            outputs.append(shown)
            variables = result.variables if result.variables is not None else variables
            if result.answer_content:
                content = result.answer_content
                if node.depth == 0:
                    self.partial = content
            if result.final is not None:
                return result.final, outputs, None, content, variables
            if result.state_lost:
                break  # later blocks would run against a fresh REPL; let the model re-plan
        final = parsed.final
        if final is None:
            return None, outputs, feedback, content, variables
        if final.variable is None:
            return final.text, outputs, None, content, variables
        got = await sandbox.get_variable(final.variable)
        if got.error:
            retry = f"{got.error}\nNo answer was taken; fix it and answer again."
            return None, outputs, retry, content, variables
        if got.final is not None:
            return got.final, outputs, None, content, variables
        if final.text is not None:  # FINAL(word): no such variable, so the word is the answer
            return final.text, outputs, None, content, variables
        missing = (
            f"FINAL_VAR({final.variable}) was ignored: there is no variable named "
            f"{final.variable!r} in the REPL. Assign it in a ```repl block first, or answer "
            "with FINAL(your answer)."
        )
        return None, outputs, missing, content, variables

    def _finish_iteration(self, node: Node, iteration: Iteration, t0: float) -> None:
        iteration.duration_s = time.perf_counter() - t0
        self.trajectory.iterations.append(iteration)
        self.notify("on_iteration_end", node, iteration)

    async def _ask_final(
        self,
        node: Node,
        messages: list[dict[str, str]],
        reason: StopReason,
        partial: str | None,
        model: ModelSpec,
    ) -> NodeOutcome:
        """Out of iterations or sub-calls: ask the model once for its answer from its state."""
        if self.ledger.exhausted() is not None:
            return NodeOutcome(partial, reason)
        request = [*messages, {"role": "user", "content": protocol.final_request(reason.value)}]
        try:
            turn = self.preflight.reserve_turn(model.model, request)
        except BudgetRefused as refused:
            return NodeOutcome(partial, refused.reason)
        try:
            reply = await self._call(model, request, node, "root")
        finally:
            self.ledger.release(turn or _FREE)
        parsed = protocol.parse_reply(reply.text)
        answer = parsed.final.text if parsed.final and parsed.final.text else None
        answer = answer or partial or protocol.plain_answer(reply.text)
        if node.depth == 0 and answer:
            self.partial = answer
        return NodeOutcome(answer, reason)


def _stop_of(exc: BaseException, ledger: Ledger) -> str:
    if isinstance(exc, TreeAborted | ProviderError):
        return StopReason.PROVIDER_ERROR.value
    if isinstance(exc, asyncio.CancelledError | TimeoutError):
        return ledger.time_reason().value
    return type(exc).__name__


def _sub_window_chars(model: str) -> int:
    tokens = litellm_api.context_window(model)
    # ~4 characters per token, leaving a quarter of the window for instructions and output.
    return int(tokens * 3) if tokens else _DEFAULT_SUB_WINDOW_CHARS
