"""Pre-flight budgets against hostile programs: nothing is sent that the budget cannot pay for.

The scripted provider (``ScriptedModel``) records every conversation it receives, so the test
counts what really went out, priced with litellm's cost map for the model.
"""

from __future__ import annotations

from rlm_router.rlm_core import Budget, ModelSpec, RetryPolicy, RLMEngine, SandboxLimits, StopReason
from rlm_router.rlm_core.litellm_api import token_cost
from rlm_router.rlm_core.tokens import count_tokens
from tests.rlm_core.scripted_model import MODEL, ScriptedModel, is_root

LIMITS = SandboxLimits(wall_seconds=20.0, cpu_seconds=10, memory_mb=1024)
BUDGET_USD = 0.001


def run_program(program: str, output_tokens: int = 4096) -> tuple[ScriptedModel, object]:
    replies = [f"```repl\n{program}\n```", "FINAL(done)"]
    model = ScriptedModel(replies)
    engine = RLMEngine(
        root=ModelSpec(model=MODEL),
        budget=Budget(
            max_cost_usd=BUDGET_USD, max_iterations=4, max_sub_call_output_tokens=output_tokens
        ),
        limits=LIMITS,
        retry=RetryPolicy(max_attempts=1),
        completion=model,
    )
    return model, engine


def sent_cost(model: ScriptedModel) -> float:
    """What the recorded input would cost (every byte that went to the provider, as tokens)."""
    tokens = sum(count_tokens(m["content"]) + 3 for call in model.calls for m in call)
    return token_cost(MODEL, tokens, 0)


async def test_a_huge_batch_is_refused_whole_before_anything_is_sent() -> None:
    # 100 prompts of 500 KB: each is over the window; 100 of 100 KB: they fit the window but
    # not the budget, so the batch is refused as a whole. Nothing is sent either way.
    model, engine = run_program(
        "r = llm_query_batched(['x ' * 250_000] * 100)\nprint(len(r), r[0][:160])\n"
        "s = llm_query_batched(['x ' * 50_000] * 100)"
    )
    result = await engine.acompletion("q", "ctx")  # type: ignore[attr-defined]
    assert [call for call in model.calls if not is_root(call)] == []
    shown = model.calls[1][-1]["content"]
    assert "100 Error: the prompt is ~" in shown and "input window" in shown
    assert "refused before sending" in shown and "100 prompts" in shown and "$" in shown
    assert result.answer == "done" and result.stopped_reason is StopReason.FINAL
    assert sent_cost(model) <= BUDGET_USD


async def test_one_huge_query_is_refused_and_the_run_goes_on() -> None:
    model, engine = run_program("print(llm_query('y ' * 25_000_000))")
    result = await engine.acompletion("q", "ctx")  # type: ignore[attr-defined]
    assert [call for call in model.calls if not is_root(call)] == []
    shown = model.calls[1][-1]["content"]
    assert "SubCallError" in shown and "nothing was sent" in shown.lower()
    assert result.answer == "done"
    assert sent_cost(model) <= BUDGET_USD


async def test_many_small_calls_stop_within_one_reservation_of_the_budget() -> None:
    model, engine = run_program(
        "out = []\n"
        "for i in range(2000):\n"
        "    try:\n"
        "        out.append(llm_query('z ' * 2000))\n"
        "    except Exception as exc:\n"
        "        print('stopped after', i, str(exc)[:200]); break\n",
        output_tokens=100,
    )
    result = await engine.acompletion("q", "ctx")  # type: ignore[attr-defined]
    subs = [call for call in model.calls if not is_root(call)]
    assert 0 < len(subs) < 2000
    one_reservation = token_cost(MODEL, 2000 + 10, 100)
    # litellm's mock bills what it bills; the byte-exact check against an honest provider is
    # the CLI suite's (test_cli.py).
    assert result.cost_usd <= BUDGET_USD + one_reservation
