"""The Task record every family produces, and the scorers it uses."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Scoring = Literal["exact", "numeric", "substring", "pairs_f1"]

_INT = re.compile(r"-?\d+")
_PAIR = re.compile(r"\(?\s*(\d+)\s*,\s*(\d+)\s*\)?")
_ANSWER_PREFIX = re.compile(r"^\s*(?:final\s+)?answer\s*[:\-]\s*", re.IGNORECASE)


def _normalise(text: str) -> str:
    text = _ANSWER_PREFIX.sub("", text.strip())
    return re.sub(r"\s+", " ", text.strip().strip(".'\"`*").strip()).lower()


def score_exact(prediction: str, answer: str, options: tuple[str, ...] = ()) -> float:
    """1.0 when the prediction is the answer (case/punctuation-insensitive).

    A verbose prediction still counts when it names exactly one of the allowed ``options``
    and that one is the answer, as OOLONG's scorer accepts "the label is X".
    """
    got = _normalise(prediction)
    want = _normalise(answer)
    if got == want:
        return 1.0
    if options:
        # Options compared as normalised, like the answer (a city is "Lyon", not "lyon").
        named = {_normalise(o) for o in options if re.search(rf"\b{re.escape(o.lower())}\b", got)}
        return 1.0 if named == {want} else 0.0
    return 0.0


def score_numeric(prediction: str, answer: str) -> float:
    """OOLONG's numeric score: 0.75 ** |error| on the last integer in the prediction."""
    numbers = _INT.findall(prediction.replace(",", ""))
    if not numbers:
        return 0.0
    return float(0.75 ** abs(int(numbers[-1]) - int(answer)))


def score_substring(prediction: str, answer: str) -> float:
    """S-NIAH's score: 1.0 when the answer occurs in the prediction (case-insensitive)."""
    return 1.0 if _normalise(answer) in prediction.lower() else 0.0


def parse_pairs(text: str) -> set[tuple[str, str]]:
    """All ``(a, b)`` id pairs in ``text``, each ordered so the smaller id comes first."""
    pairs = set()
    for a, b in _PAIR.findall(text):
        if a != b:
            pairs.add((a, b) if int(a) < int(b) else (b, a))
    return pairs


def score_pairs_f1(prediction: str, answer: str) -> float:
    """OOLONG-Pairs' score: F1 of the predicted pair set against the gold pair set."""
    gold = parse_pairs(answer)
    got = parse_pairs(prediction)
    if not gold and not got:
        return 1.0
    hits = len(gold & got)
    if hits == 0:
        return 0.0
    precision = hits / len(got)
    recall = hits / len(gold)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True, kw_only=True)
class Task:
    """One benchmark instance: a context, a question about it, and how to score an answer.

    ``context`` is the bulk the question is about ("" for chat); ``turns`` holds the earlier
    conversation for the chat family. ``n_tokens`` is the context's size in o200k tokens
    (estimated from pre-counted blocks, within about 1% of an exact count).
    """

    family: str
    kind: str
    context: str
    question: str
    answer: str
    n_tokens: int
    seed: int
    scoring: Scoring
    options: tuple[str, ...] = ()
    turns: tuple[Mapping[str, str], ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def messages(self) -> list[dict[str, str]]:
        """The OpenAI chat messages a client would send for this task."""
        if self.turns:
            history = [dict(turn) for turn in self.turns]
            return [*history, {"role": "user", "content": self.question}]
        content = f"{self.context}\n\n{self.question}" if self.context else self.question
        return [{"role": "user", "content": content}]

    def score(self, prediction: str | None) -> float:
        """The prediction's score in [0, 1] under this family's metric."""
        if not prediction:
            return 0.0
        if self.scoring == "numeric":
            return score_numeric(prediction, self.answer)
        if self.scoring == "substring":
            return score_substring(prediction, self.answer)
        if self.scoring == "pairs_f1":
            return score_pairs_f1(prediction, self.answer)
        return score_exact(prediction, self.answer, self.options)


def render_request(
    task: Task, model: str = "sim-large", *, stream: bool = False, **params: Any
) -> dict[str, Any]:
    """The task as an OpenAI ``/v1/chat/completions`` request body."""
    body: dict[str, Any] = {"model": model, "messages": task.messages(), "stream": stream}
    body.update(params)
    return body
