"""Root personas: how a simulated RLM root fails, calibrated to published RLM runs.

The competent persona always understands the question and writes the right program. Real
roots do not (the paper's error analysis, published trajectories): they misread the
question, hand in their plan as the answer, split the context into too many or too few
pieces, re-verify and change a right answer into a wrong one, tag code ```python, and mix up
FINAL and FINAL_VAR. Each persona draws these behaviours per query, deterministically (a hash
of the simulator seed, the model and the query), at the rates below; CALIBRATION.md shows the
scores and sub-call counts they produce next to the published figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlm_router.sim.questions import Question
from rlm_router.sim.recall import draw
from rlm_router.sim.tasks.records import LABELS


@dataclass(frozen=True, kw_only=True)
class Persona:
    """Behaviour rates of one root persona (probabilities per query)."""

    name: str
    record_chunk_chars: int  # how much of the dataset one sub-call gets
    misunderstand: float = 0.0  # solves a neighbouring question (another label or user)
    plan_as_answer: float = 0.0  # answers FINAL(<its plan>) instead of running it
    verify: bool = False  # re-runs its program before answering (twice the sub-calls)
    verify_flips: float = 0.0  # ...and then "corrects" the right result into a wrong one
    python_fence: float = 0.0  # tags its code ```python instead of ```repl
    final_confusion: float = 0.0  # writes FINAL(result) where FINAL_VAR(result) was meant
    pair_slip: float = 0.0  # lists the qualifying users instead of their pairs


PERSONAS: dict[str, Persona] = {
    # Today's simulated root: the upper bound no real deployment sees.
    "competent": Persona(name="competent", record_chunk_chars=24_000),
    # RLM(GPT-5): few, large sub-calls (~10 per query in the paper); misses come from
    # misreading the task and from the sub-model's recall on big chunks.
    "frontier": Persona(
        name="frontier",
        record_chunk_chars=48_000,
        misunderstand=0.32,
        plan_as_answer=0.04,
        pair_slip=0.0,
    ),
    # RLM(Qwen3-Coder): many tiny sub-calls (hundreds per query), verification loops that
    # end in a wrong answer, protocol slips.
    "coder": Persona(
        name="coder",
        record_chunk_chars=2_400,
        misunderstand=0.33,
        plan_as_answer=0.08,
        pair_slip=0.45,
        verify=True,
        verify_flips=0.25,
        python_fence=0.15,
        final_confusion=0.16,
    ),
}


def persona_of(name: str) -> Persona:
    return PERSONAS.get(name, PERSONAS["competent"])


def chance(seed: int, model: str, query: str, behaviour: str) -> float:
    """The per-query draw deciding one behaviour (uniform in [0, 1))."""
    return draw(seed, model, query, 0, f"persona:{behaviour}")


def misread(question: Question, u: float) -> Question:
    """A neighbouring question: another label, or another user, chosen by ``u``."""
    params = dict(question.params)
    if "label" in params:
        others = [label for label in LABELS if label != params["label"]]
        params["label"] = others[int(u * len(others)) % len(others)]
    elif "user" in params:
        params["user"] = str(int(params["user"]) + 1 + int(u * 7))
    else:
        return question
    return Question(question.kind, question.text, params)


# The quadratic step skipped: the qualifying users are listed (each as a degenerate pair)
# instead of their pairs, the list-valued answer seen in real runs.
ALL_PAIRS = "pairs = [(a, b) for i, a in enumerate(users) for b in users[i + 1:]]"
NEIGHBOUR_PAIRS = "pairs = [(a, a) for a in users]  # the qualifying users"

# Appended to a verification re-run that talks itself out of a right answer.
FLIP_RESULT = """
# Double-checking the edge cases: adjust the result.
if str(result).strip().isdigit():
    result = str(int(str(result).strip()) + 1)
elif "\\n" in str(result):
    result = "\\n".join(str(result).splitlines()[::2])
print("result:", result)
"""
