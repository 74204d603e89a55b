"""The simulated root model in the official ``rlms`` 0.1.3 engine's conversation.

That engine puts the question after "Answer the following: " (no ``<query>`` tags), adds a
"Turn k/N" user message after each REPL output, and ends a run only through the REPL's
``answer`` dict. Its conversations are built here with its own prompt builders, and its
answer dict is checked in its own REPL.
"""

from __future__ import annotations

import pytest

from rlm_router.sim import SIM_MODELS, SimServer
from rlm_router.sim import programs as prog
from rlm_router.sim.reader import Reading
from rlm_router.sim.root import is_root_prompt, respond_as_root
from rlm_router.sim.tasks import generate

rlm_prompts = pytest.importorskip("rlm.utils.prompts")

READING = Reading(SIM_MODELS["sim-large"], 0, 2_000)


def _conversation(question: str, context: str, *turns: str) -> list[tuple[str, str]]:
    """What rlms 0.1.3 sends on the turn after ``turns`` (model reply, REPL output, ...)."""
    from rlm.core.types import QueryMetadata

    setup = rlm_prompts.build_rlm_system_prompt(
        rlm_prompts.RLM_SYSTEM_PROMPT, QueryMetadata(context), root_prompt=question
    )
    messages = [(m["role"], m["content"]) for m in setup]
    messages.append(("user", rlm_prompts.build_user_prompt(question, 0)["content"]))
    for i, text in enumerate(turns):
        if i % 2 == 0:
            messages.append(("assistant", text))
        else:
            messages.append(("user", f"REPL output:\n{text}"))
            turn = rlm_prompts.build_user_prompt(question, i // 2 + 1)["content"]
            messages.append(("user", turn))
    return messages


def test_its_question_is_understood_and_the_answer_dict_ends_the_run() -> None:
    task = generate("oolong", n_tokens=2000, seed=1, kind="count")
    user = task.question.split("user ", 1)[1].split()[0]
    assert is_root_prompt(_conversation(task.question, task.context))
    first = respond_as_root(READING, _conversation(task.question, task.context))
    assert prog.STEP_MARKER + "inspect" in first
    second = respond_as_root(
        READING, _conversation(task.question, task.context, first, "str 900000 chars,")
    )
    assert prog.STEP_MARKER + "solve" in second and "llm_query_batched" in second
    assert repr([user]) in second  # the question's user, not a generic program
    third = respond_as_root(
        READING,
        _conversation(task.question, task.context, first, "...", second, "result: 7"),
    )
    assert 'answer["ready"] = True' in third and "FINAL" not in third


def test_a_short_context_is_answered_through_the_answer_dict() -> None:
    task = generate("qa", n_tokens=300, seed=2, kind="reading")
    first = respond_as_root(READING, _conversation(task.question, task.context))
    output = f"str\n{prog.CONTEXT_BEGIN}\n{task.context}\n{prog.CONTEXT_END}\n"
    second = respond_as_root(READING, _conversation(task.question, task.context, first, output))
    assert f'answer["content"] = "{task.answer}"' in second and "FINAL" not in second


def test_its_out_of_iterations_request_gets_plain_text() -> None:
    question = "How many instances from user 12345 have the label 'entity'?"
    messages = _conversation(question, "x" * 50_000, "```repl\nprint(1)\n```", "result: 4")
    messages.append(
        ("assistant", "Please provide a final answer to the user's question based on the "
         "information provided.")
    )  # fmt: skip
    assert respond_as_root(READING, messages) == "4"


def test_the_submit_blocks_end_a_run_in_its_repl() -> None:
    from rlm.environments.local_repl import LocalREPL

    repl = LocalREPL(context_payload="")
    try:
        repl.execute_code('result = "(1, 2)\\n(3, 4)"')
        assert repl.execute_code(prog.SUBMIT_RESULT).final_answer == "(1, 2)\n(3, 4)"
        assert repl.execute_code(prog.submit_program("it's 7")).final_answer == "it's 7"
    finally:
        repl.cleanup()


@pytest.mark.slow
@pytest.mark.usefixtures("sim_models")
def test_rlms_solves_a_task_against_the_simulator(sim_server: SimServer) -> None:
    from rlm import RLM

    task = generate("oolong_pairs", n_tokens=32_000, seed=1)
    engine = RLM(
        backend="openai",
        backend_kwargs={"model_name": "sim-large", "base_url": sim_server.base_url,
                        "api_key": "sk-sim"},
        other_backends=["openai"],
        other_backend_kwargs=[{"model_name": "sim-mini", "base_url": sim_server.base_url,
                               "api_key": "sk-sim"}],
        max_depth=1,
        max_iterations=10,
    )  # fmt: skip
    completion = engine.completion(task.context, root_prompt=task.question)
    assert task.score(str(completion.response)) >= 0.7
    assert completion.usage_summary.model_usage_summaries["sim-large"].total_calls == 3
