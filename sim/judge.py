"""The simulated models as a judge: a grading prompt is answered with the task's own score.

The router's judge (``router.judge``) sends the graded conversation and the answer between
``<<<rlm-router:ROLE>>>`` / ``<<<rlm-router:end>>>`` markers and asks for one number in
[0, 1]. The simulator reads the conversation with perfect recall (what a careful grader
would: the right answer, computed from the text as the task generator planted it), then
scores the answer with the scorer of the family the question belongs to (OOLONG's 0.75^|err|
for counts, exact labels / ids, F1 over pairs, substring for needles, facts and chat), so a
judge against the simulator grades exactly as ``Task.score`` does, offline.

The patterns are the simulator's own reading of the judge's wording (as ``sim.prompts`` reads
the engine's sub-call templates); ``tests/router/test_judge.py`` sends the real prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rlm_router.sim.questions import split_question, understand
from rlm_router.sim.reader import Reading, answer_direct
from rlm_router.sim.tasks._task import score_exact, score_numeric, score_pairs_f1, score_substring
from rlm_router.sim.tasks.records import LABELS

__all__ = ["is_judge_prompt", "judge_verdict"]

_HEAD = "You are grading an assistant's answer."
_BLOCK = re.compile(r"<<<rlm-router:(?P<role>[\w-]+)>>>\n(?P<text>.*?)\n<<<rlm-router:end>>>", re.S)
_ANSWER_ROLE = "answer-to-grade"


@dataclass(frozen=True)
class _Perfect(Reading):
    """A reading that catches every relevant item (the grader knows the text)."""

    def catches(self, item: str, *, sparse: bool = False) -> bool:
        return True

    def perceived_label(self, line: str, label: str) -> str | None:
        return label


def is_judge_prompt(messages: list[tuple[str, str]]) -> bool:
    """Whether the last user message is the router judge's grading prompt."""
    last = next((text for role, text in reversed(messages) if role == "user"), "")
    return last.startswith(_HEAD) and f"<<<rlm-router:{_ANSWER_ROLE}>>>" in last


def judge_verdict(reading: Reading, messages: list[tuple[str, str]]) -> str:
    """The grade (as text) of the answer in a judge prompt, by the family's scorer."""
    last = next((text for role, text in reversed(messages) if role == "user"), "")
    blocks = [(m.group("role"), m.group("text")) for m in _BLOCK.finditer(last)]
    answers = [text for role, text in blocks if role == _ANSWER_ROLE]
    conversation = [(role, text) for role, text in blocks if role != _ANSWER_ROLE]
    if not answers or not conversation:
        return "0"
    answer = answers[-1]
    perfect = _Perfect(reading.model, reading.seed, 0)
    gold = answer_direct(perfect, conversation)
    question = split_question(conversation[-1][1])[1]
    return f"{_score(question, answer, gold):.4f}"


def _score(question: str, answer: str, gold: str) -> float:
    if not answer.strip():
        return 0.0
    q = understand(question)
    if q.kind in ("count", "arithmetic"):
        return score_numeric(answer, gold) if re.search(r"-?\d+", gold) else 0.0
    if q.kind == "most_common":
        return score_exact(answer, gold, LABELS)
    if q.kind == "compare":
        return score_exact(answer, gold, q.users)
    if q.kind == "pairs":
        return score_pairs_f1(answer, gold)
    return score_substring(answer, gold)
