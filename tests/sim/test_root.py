"""The simulator as an RLM root model: the programs it writes, its turns, and real RLM runs."""

from __future__ import annotations

import pytest

from rlm_router.sim import SIM_MODELS, SimServer
from rlm_router.sim import programs as prog
from rlm_router.sim.questions import Question, understand
from rlm_router.sim.reader import Reading, answer_question
from rlm_router.sim.root import is_root_prompt, respond_as_root
from rlm_router.sim.tasks import FAMILIES, generate

SYSTEM = "Write code in ```repl blocks. You can call llm_query(prompt) and llm_query_batched."
READING = Reading(SIM_MODELS["sim-large"], 0, 2_000)


def _conversation(query: str, *turns: str) -> list[tuple[str, str]]:
    messages = [("system", SYSTEM), ("user", f"<query>\n{query}\n</query>\n\nContext: str")]
    for i, text in enumerate(turns):
        messages.append(("assistant" if i % 2 == 0 else "user", text))
    return messages


def _questions() -> list[Question]:
    out = [
        understand(generate(f, n_tokens=2000, seed=s).question) for f in FAMILIES for s in range(6)
    ]
    out.append(Question("unknown", "Summarise the tone of the text."))
    return out


@pytest.mark.parametrize("question", _questions(), ids=lambda q: q.kind)
def test_every_program_compiles(question: Question) -> None:
    for as_child in (False, True):
        compile(prog.solve_program(question, as_child=as_child), "<solve>", "exec")
    compile(prog.fallback_program(question.text), "<fallback>", "exec")
    compile(prog.INSPECT, "<inspect>", "exec")
    compile(prog.assign_program("(1, 2)\n(3, 4)"), "<assign>", "exec")


def test_root_detection() -> None:
    assert is_root_prompt(_conversation("q"))
    assert not is_root_prompt([("system", "You are helpful."), ("user", "llm_query?")])


def test_turns_inspect_solve_final() -> None:
    query = generate("oolong", n_tokens=2000, seed=1, kind="count").question
    first = respond_as_root(READING, _conversation(query))
    assert "```repl" in first and prog.STEP_MARKER + "inspect" in first
    second = respond_as_root(
        READING, _conversation(query, first, "REPL output:\nstr 900000 chars,")
    )
    assert prog.STEP_MARKER + "solve" in second and "llm_query_batched" in second
    third = respond_as_root(
        READING, _conversation(query, first, "REPL output:\n...", second, "REPL output:\nresult: 7")
    )
    assert third.strip().endswith("FINAL_VAR(result)")


def test_error_leads_to_fallback_then_best_answer() -> None:
    query = "What does the author think about bridges?"
    first = respond_as_root(READING, _conversation(query))
    second = respond_as_root(READING, _conversation(query, first, "str 5000000 chars,"))
    error = "Traceback (most recent call last):\nNameError: name 'x' is not defined"
    third = respond_as_root(READING, _conversation(query, first, "...", second, error))
    assert prog.STEP_MARKER + "fallback" in third
    fourth = respond_as_root(
        READING,
        _conversation(query, first, "...", second, error, third, "result: partial\n" + error),
    )
    assert fourth.startswith("FINAL(partial")


def test_budget_request_gets_an_answer_without_code() -> None:
    query = "How many instances from user 12345 have the label 'entity'?"
    first = respond_as_root(READING, _conversation(query))
    ask = (
        "You have no iterations left. Based on everything above, reply now with your best final "
        "answer on one line as FINAL(your answer). Do not write code."
    )
    reply = respond_as_root(READING, _conversation(query, first, ask))
    assert reply.startswith("FINAL(") and "```" not in reply


def test_short_context_is_read_and_answered_directly() -> None:
    task = generate("qa", n_tokens=300, seed=2, kind="reading")
    first = respond_as_root(READING, _conversation(task.question))
    output = f"REPL output:\nstr\n{prog.CONTEXT_BEGIN}\n{task.context}\n{prog.CONTEXT_END}\n"
    second = respond_as_root(READING, _conversation(task.question, first, output))
    assert second.strip().endswith(f"FINAL({task.answer})")


def test_child_query_returns_a_json_partial() -> None:
    task = generate("oolong", n_tokens=2000, seed=3, kind="compare")
    parent = prog.solve_program(understand(task.question), as_child=False)
    sub_question = next(
        line.split(" = ", 1)[1].strip("'")
        for line in parent.splitlines()
        if line.startswith("SUB_QUESTION")
    )
    first = respond_as_root(READING, _conversation(sub_question))
    child = respond_as_root(READING, _conversation(sub_question, first, "str 2000000 chars,"))
    assert "result = json.dumps(partial)" in child
    for user in task.options:
        assert user in child


def _engine(sim: SimServer):  # type: ignore[no-untyped-def]
    from rlm_router.rlm_core import ModelSpec, RLMEngine

    return RLMEngine(
        root=ModelSpec(model="openai/sim-large", api_base=sim.base_url, api_key="sk-sim"),
        sub=ModelSpec(model="openai/sim-mini", api_base=sim.base_url, api_key="sk-sim"),
        concurrency=32,
    )


@pytest.mark.usefixtures("sim_models")
@pytest.mark.parametrize(
    ("family", "kind"),
    [
        ("oolong", "count"),
        ("oolong", "most_common"),
        ("oolong", "compare"),
        ("oolong_pairs", None),
        ("niah", None),
        ("qa", "reading"),
        ("multihop", None),
    ],
)
async def test_rlm_runs_end_to_end_at_32k(
    sim_server: SimServer, family: str, kind: str | None
) -> None:
    scores = []
    for seed in range(3):
        task = generate(family, n_tokens=32_000, seed=seed, kind=kind)
        result = await _engine(sim_server).acompletion(task.question, task.context)
        assert result.stopped_reason.value == "final"
        scores.append(task.score(result.answer))
    assert sum(scores) / len(scores) >= 0.7


@pytest.mark.slow
@pytest.mark.usefixtures("sim_models")
async def test_rlm_recursion_on_a_million_tokens(sim_server: SimServer) -> None:
    task = generate("oolong", n_tokens=1_000_000, seed=1, kind="count")
    result = await _engine(sim_server).acompletion(task.question, task.context)
    assert result.stopped_reason.value == "final"
    assert task.score(result.answer) >= 0.5
    depths = {node.depth for node in result.trajectory.nodes}
    assert depths == {0, 1}
    assert result.usage.sub_calls > 100


@pytest.mark.usefixtures("sim_models")
async def test_rlm_generic_program_and_structured_contexts(sim_server: SimServer) -> None:
    haystack = generate("niah", n_tokens=32_000, seed=0).context
    generic = await _engine(sim_server).acompletion("What did the orchestra rehearse?", haystack)
    assert generic.answer is not None and "orchestra rehearsed" in generic.answer.lower()
    task = generate("oolong", n_tokens=32_000, seed=2, kind="count")
    lines = task.context.split("\n")
    as_list = ["\n".join(lines[i : i + 300]) for i in range(0, len(lines), 300)]
    for context in (as_list, {"records": lines}):
        result = await _engine(sim_server).acompletion(task.question, context)
        assert task.score(result.answer) >= 0.75


@pytest.mark.usefixtures("sim_models")
async def test_multihop_needs_both_hops_and_the_root_chains_them(sim_server: SimServer) -> None:
    task = generate("multihop", n_tokens=64_000, seed=4)
    result = await _engine(sim_server).acompletion(task.question, task.context)
    assert task.score(result.answer) == 1.0
    code = "\n".join(e.code for i in result.trajectory.iterations for e in i.executions)
    assert "Which organisation is directed by" in code  # the first hop, then the second
    assert "cities found:" in code
    # A reader that finds only the first fact has no answer: the question is two lookups.
    first_hop_only = task.context.replace(" is based in ", " was once visited in ")
    reading = Reading(SIM_MODELS["sim-large"], 0, 2_000)
    assert understand(task.question).kind == "hop_city"
    assert task.score(answer_question(reading, first_hop_only, task.question, partial=False)) == 0
    assert answer_question(reading, task.context, task.question, partial=False) == task.answer
