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
