"""A real RLMEngine run observed by RLMTraceObserver: the span tree under the request.

The provider is litellm's own ``mock_response`` path (a stand-in for the provider, not for our
code): the engine, its sandboxed REPL worker, sub-call fan-out and recursion all run for real.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from rlm_router.telemetry import semconv as sc
from tests.telemetry.telemetry_support import SampleDecision, Wired

MODEL = "openai/gpt-4o-mini"  # in litellm's cost map, so costs are real numbers
FENCE = "`" * 3


def _code(body: str) -> str:
    return f"{FENCE}repl\n{body}\n{FENCE}"


async def _provider(**kwargs: Any) -> Any:
    import litellm

    messages = kwargs["messages"]
    turns = sum(1 for m in messages if m["role"] == "assistant")
    if messages[0]["role"] != "system":
        reply = "leaf"  # llm_query sub-call
    elif "child task" in messages[1]["content"]:
        reply = "FINAL(child-done)"
    elif turns == 0:
        reply = _code("r = llm_query_batched(['a', 'b'])\nprint(r)")
    elif turns == 1:
        reply = _code("print(rlm_query('child task', context=context[:10]))")
    else:
        reply = "FINAL(42)"
    return await litellm.acompletion(model=kwargs["model"], messages=messages, mock_response=reply)


def _children(wired: Wired, parent: ReadableSpan) -> list[ReadableSpan]:
    return sorted(
        (s for s in wired.finished() if s.parent and s.parent.span_id == parent.context.span_id),
        key=lambda s: s.start_time or 0,
    )


async def test_engine_run_span_tree(wired: Wired) -> None:
    from rlm_router.rlm_core import Budget, ModelSpec, RLMEngine

    with wired.telemetry.request_span(model="auto") as req:
        req.decision(SampleDecision(route="rlm", score=0.9))
        engine = RLMEngine(
            root=ModelSpec(model=MODEL),
            sub=ModelSpec(model=MODEL),
            budget=Budget(max_depth=2, max_wall_s=60),
            observer=req.rlm_observer(),
            completion=_provider,
        )
        with req.shielded():
            result = await engine.acompletion("What is the answer?", "SECRET-CONTEXT " * 50)
        req.outcome(
            route_served="rlm",
            cost_usd=result.cost_usd,
            stopped_reason=result.stopped_reason.value,
            rlm_iterations=result.iterations,
            rlm_sub_calls=result.sub_calls,
        )
    assert result.ok and result.answer == "42"

    request = wired.one(sc.SPAN_REQUEST)
    runs = wired.by_name(sc.SPAN_RLM_RUN)
    assert len(runs) == 2
    (root_run,) = [r for r in runs if r.parent and r.parent.span_id == request.context.span_id]
    attrs = dict(root_run.attributes or {})
    assert attrs[sc.OUTCOME_STOPPED_REASON] == "final"
    assert attrs[sc.RLM_SUB_CALLS] == result.sub_calls == 3  # two llm_query + one rlm_query
    assert attrs[sc.COST_USD] == result.cost_usd > 0
    iterations = _children(wired, root_run)
    assert [s.name for s in iterations] == [sc.SPAN_RLM_ITERATION] * 3
    first, second, third = (_children(wired, it) for it in iterations)
    assert [s.name for s in first] == [f"chat {MODEL}", sc.SPAN_REPL]
    assert [s.name for s in _children(wired, first[1])] == [f"chat {MODEL}"] * 2
    assert all(dict(s.attributes or {})[sc.INNER] for s in _children(wired, first[1]))
    (child_run,) = [s for s in _children(wired, second[1]) if s.name == sc.SPAN_RLM_RUN]
    assert dict(child_run.attributes or {})[sc.RLM_DEPTH] == 1
    assert [s.name for s in third] == [f"chat {MODEL}"]  # the final answer, no code
    # Every span is in the request's trace and ended; no content was recorded.
    for span in wired.finished():
        assert span.context.trace_id == request.context.trace_id
        assert not any("SECRET" in str(v) for v in (span.attributes or {}).values())
    chats = [s for s in wired.finished() if s.name.startswith("chat ")]
    assert len(chats) == len(result.trajectory.calls)
    total = sum(dict(s.attributes or {})[sc.COST_USD] for s in chats)  # type: ignore[misc]
    assert abs(total - result.cost_usd) < 1e-12
