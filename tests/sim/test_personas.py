"""Root personas: the behaviours each persona shows, through the real engine and litellm."""

from __future__ import annotations

from rlm_router.rlm_core import ModelSpec, RLMEngine
from rlm_router.sim import SimServer
from rlm_router.sim.personas import PERSONAS, chance, misread
from rlm_router.sim.questions import Question
from rlm_router.sim.tasks import generate


def _engine(server: SimServer, root: str) -> RLMEngine:
    def spec(name: str) -> ModelSpec:
        return ModelSpec(model=f"openai/{name}", api_base=server.base_url, api_key="sk-sim")

    return RLMEngine(root=spec(root), sub=spec("sim-mini"))


async def test_coder_makes_many_small_sub_calls_and_verifies(sim_server: SimServer) -> None:
    task = generate("oolong", n_tokens=32_000, seed=3)
    coder = await _engine(sim_server, "sim-coder").acompletion(task.question, task.context)
    competent = await _engine(sim_server, "sim-large").acompletion(task.question, task.context)
    assert competent.sub_calls <= 6
    assert coder.sub_calls >= 10 * competent.sub_calls  # tiny chunks, then a re-run
    steps = [i.response for i in coder.trajectory.iterations]
    assert any("verify the result" in s for s in steps)


def test_behaviour_draws_are_per_request_and_near_their_rates() -> None:
    rates = {name: p.misunderstand for name, p in PERSONAS.items()}
    draws = [chance(0, "sim-frontier", f"request {i}", "misread") for i in range(2000)]
    share = sum(d < rates["frontier"] for d in draws) / len(draws)
    assert abs(share - rates["frontier"]) < 0.04
    assert rates["competent"] == 0.0


def test_misreading_changes_the_label_or_user() -> None:
    q = Question("count", "How many ...", {"user": "12", "label": "location"})
    assert misread(q, 0.5).params["label"] != "location"
    most = Question("most_common", "Which label ...", {"user": "12"})
    assert misread(most, 0.1).params["user"] != "12"


def test_a_verification_that_fails_hands_in_the_first_result() -> None:
    # At 10M tokens the coder's re-run is refused by the cost budget partway; its first
    # result is still in the REPL, and that is what it answers (it used to answer "I could
    # not determine the answer." and score 0).
    from rlm_router.sim import SIM_MODELS
    from rlm_router.sim.programs import STEP_MARKER
    from rlm_router.sim.reader import Reading
    from rlm_router.sim.root import respond_as_root

    query = generate("oolong", n_tokens=2_000, seed=1, kind="count").question
    system = "Write code in ```repl blocks. You can call llm_query(prompt) and llm_query_batched."
    refused = (
        'Traceback (most recent call last):\n  File "<repl>", line 88, in <module>\n'
        "rlm_router.rlm_core.worker.repl.SubCallError: refused before sending: ... $5 budget."
    )
    messages = [
        ("system", system),
        ("user", f"<query>\n{query}\n</query>\n\nContext: str"),
        ("assistant", f"```repl\n{STEP_MARKER}inspect\n```"),
        ("user", "REPL output:\nstr 900000 chars,"),
        ("assistant", f"```repl\n{STEP_MARKER}solve\n```"),
        ("user", "REPL output:\nresult: 7"),
        ("assistant", f"```repl\n{STEP_MARKER}verify\n```"),
        ("user", f"REPL output:\n{refused}"),
    ]
    reply = respond_as_root(Reading(SIM_MODELS["sim-coder"], 0, 2_000), messages)
    assert "could not determine" not in reply
    assert reply.rstrip().endswith(("FINAL_VAR(result)", "FINAL(result)"))
