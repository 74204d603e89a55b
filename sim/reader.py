"""The simulated model as a reader: answers a prompt by reading it, with limited recall.

Every relevant item in the prompt (a record of a user the question is about, a record with
the label asked for, the needle, the fact asked for) is caught with the model's recall at
this prompt's size (``sim.recall``). A relevant record that is not caught is
either skipped or misread as another label, as a reader skimming a long prompt would. The
answer is then computed from what was caught, so errors grow with length exactly as the
curve says, and a short prompt (a sub-call on one chunk) is read almost perfectly.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from rlm_router.sim import prompts
from rlm_router.sim.models import SimModel
from rlm_router.sim.questions import Question, split_question, understand
from rlm_router.sim.recall import caught, draw
from rlm_router.sim.tasks.records import LABELS, RECORD_RE, classify_instance

_NONE = "NONE"
_WORD = re.compile(r"[a-z0-9]{4,}")
# A run of non-terminators and the terminator after it, if any. The terminator is optional so
# that each scan step consumes the whole run: with a required terminator, a run that has none
# (unpunctuated text) is rescanned from every one of its characters, O(n^2) per run.
_SENTENCE_RUN = re.compile(r"[^.!?\n]+[.!?]?")


@dataclass(frozen=True)
class Reading:
    """One reading of one prompt by one model."""

    model: SimModel
    seed: int
    prompt_tokens: int

    def catches(self, item: str, *, sparse: bool = False) -> bool:
        return caught(self.model, self.seed, item, self.prompt_tokens, sparse=sparse)

    def chance(self, item: str, salt: str) -> float:
        return draw(self.seed, self.model.name, item, self.prompt_tokens, salt)

    def perceived_label(self, line: str, label: str) -> str | None:
        """The label this reading gives a relevant record: right, skipped (None) or misread."""
        if self.catches(line):
            return label
        if self.chance(line, "skip") < 0.5:
            return None
        others = [lab for lab in LABELS if lab != label]
        return others[int(self.chance(line, "misread") * len(others))]


def _records(text: str) -> Iterable[tuple[str, str, str]]:
    """(line, user, true label) for every record line in ``text``."""
    for match in RECORD_RE.finditer(text):
        label = classify_instance(match.group(3))
        if label is not None:
            yield match.group(0), match.group(2), label


def _user_labels(reading: Reading, text: str, users: tuple[str, ...]) -> list[tuple[str, str]]:
    """(user, perceived label) for each record of ``users`` the reading catches."""
    wanted = set(users)
    out = []
    for line, user, label in _records(text):
        if user in wanted:
            seen = reading.perceived_label(line, label)
            if seen is not None:
                out.append((user, seen))
    return out


def _users_with_label(reading: Reading, text: str, label: str) -> list[str]:
    users: list[str] = []
    for line, user, true_label in _records(text):
        if true_label == label and reading.catches(line) and user not in users:
            users.append(user)
    return users


def _tie_break(reading: Reading, counts: Counter[str], question: str) -> str:
    return max(counts, key=lambda k: (counts[k], reading.chance(k, question)))


def _aggregate(reading: Reading, text: str, q: Question) -> str:
    if q.kind == "pairs":
        users = sorted(_users_with_label(reading, text, q.params["label"]), key=int)
        pairs = [(a, b) for i, a in enumerate(users) for b in users[i + 1 :]]
        return "\n".join(f"({a}, {b})" for a, b in pairs) or "There are no such pairs."
    seen = _user_labels(reading, text, q.users)
    if q.kind == "count":
        return str(sum(1 for _, lab in seen if lab == q.params["label"]))
    if q.kind == "most_common":
        labels: Counter[str] = Counter(lab for _, lab in seen)
        return _tie_break(reading, labels, q.text) if labels else "unknown"
    per_user: Counter[str] = Counter({user: 0 for user in q.users})
    per_user.update(user for user, lab in seen if lab == q.params["label"])
    return _tie_break(reading, per_user, q.text)


def _needle(reading: Reading, text: str, key: str) -> str | None:
    match = re.search(rf"special magic numbers? for {re.escape(key)} is:? (\d+)", text)
    if match and reading.catches(match.group(0), sparse=True):
        return match.group(1)
    return None


_FACTS = {
    "fact_year": r"{e} was founded in (\d{{3,4}})",
    "fact_city": r"{e} is based in ([A-Z][\w-]+)",
    "fact_count": r"{e} employs (\d+) people",
    "fact_person": r"The director of {e} is ([A-Z][\w-]+(?: [A-Z][\w-]+)*)",
}
_RECALL = {
    "recall_name": r"My name is ([A-Z]\w+)",
    "recall_city": r"moved to ([A-Z]\w+)",
    "recall_colour": r"favou?rite colou?r is (\w+)",
}


def _org_of(reading: Reading, text: str, person: str) -> str | None:
    match = re.search(rf"The director of (the [A-Z][\w ]+?) is {re.escape(person)}\.", text)
    if match and reading.catches(match.group(0), sparse=True):
        return match.group(1)
    return None


def _lookup(reading: Reading, text: str, q: Question) -> str | None:
    """Answers that are one fact in the text (or need no text at all); a multi-hop question
    is two facts, each caught (or not) on its own."""
    if q.kind == "fact_org":
        return _org_of(reading, text, q.params["person"])
    if q.kind == "hop_city":
        org = _org_of(reading, text, q.params["person"])
        if org is None:
            return None
        return _lookup(reading, text, Question("fact_city", q.text, {"entity": org}))
    if q.kind == "arithmetic":
        a, b = int(q.params["a"]), int(q.params["b"])
        op = q.params["op"].lower()
        return str(a + b if op == "plus" else a - b if op == "minus" else a * b)
    if q.kind == "shout":
        return q.params["word"].upper()
    if q.kind == "needle":
        return _needle(reading, text, q.params["key"])
    if q.kind in _FACTS:
        entity = re.escape(q.params["entity"]).replace(r"the\ ", r"(?:the|The)\ ", 1)
        match = re.search(_FACTS[q.kind].format(e=entity), text)
        if match and reading.catches(match.group(0), sparse=True):
            return match.group(1)
        return None
    if q.kind == "recall_pet":
        match = re.search(rf"my {re.escape(q.params['pet'])}, ([A-Z]\w+)", text)
        return match.group(1) if match else None
    if q.kind in _RECALL:
        match = re.search(_RECALL[q.kind], text)
        return match.group(1) if match else None
    return None


_STOPWORDS = frozenset(
    [
        "what",
        "which",
        "when",
        "where",
        "does",
        "that",
        "this",
        "with",
        "from",
        "have",
        "about",
        "text",
        "context",
        "there",
        "their",
        "would",
        "could",
        "should",
        "into",
        "only",
        "answer",
        "question",
    ]
)


def _stems(text: str) -> set[str]:
    return {w[:6] for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def _extract(text: str, question: str) -> str | None:
    """The sentence of ``text`` sharing the most word stems with ``question``.

    At least two shared stems (or all of them when the question has fewer), so a chunk with
    nothing relevant gets no answer rather than a random sentence.
    """
    wanted = _stems(question)
    needed = min(2, len(wanted))
    if needed == 0:
        return None
    best, best_score = None, needed - 1
    for run in _SENTENCE_RUN.finditer(text):
        sentence = run.group()
        if sentence[-1] not in ".!?":
            continue
        score = len(wanted & _stems(sentence))
        if score > best_score:
            best, best_score = sentence.strip(), score
    return best


def answer_question(reading: Reading, text: str, question: str, *, partial: bool) -> str:
    """Answer ``question`` about ``text``; ``partial`` = one chunk of a bigger input."""
    q = understand(question)
    if q.kind in ("count", "most_common", "compare", "pairs"):
        return _aggregate(reading, text, q)
    found = _lookup(reading, text, q)
    if found is not None:
        return found
    if q.kind == "needle" and not partial:
        return f"I could not find a special magic number for {q.params['key']} in the text."
    if q.kind != "unknown":
        # A recognised lookup whose fact this reading did not find (or that is not here).
        return _NONE if partial else "The text does not say."
    extracted = _extract(text, q.text)
    if extracted is not None:
        return extracted
    if partial:
        return _NONE
    if not text.strip():
        return (
            f"This is {reading.model.name}, a simulated model: I can answer the benchmark task "
            "families (chat, qa, niah, oolong, oolong_pairs), and this message is not one of them."
        )
    return "The text does not say."


def _combine(reading: Reading, question: str, partials: list[str]) -> str:
    found = [p.strip() for p in partials if p.strip() and p.strip().upper() != _NONE]
    if not found:
        return "The document does not say."
    if understand(question).kind == "count":
        return str(sum(int(n) for p in found for n in re.findall(r"-?\d+", p)[-1:]))
    counts = Counter(found)
    return max(counts, key=lambda k: (counts[k], -found.index(k)))


def answer_sub_prompt(reading: Reading, content: str) -> str | None:
    """Answer one of the root model's own sub-call templates, or None if it is not one."""
    head = content[:1200]
    match = prompts.RECORDS_RE.search(head)
    if match:
        users = tuple(re.findall(r"\d+", match.group("users")))
        rows = _user_labels(reading, content, users)
        return "\n".join(f"{user} | {label}" for user, label in rows) or _NONE
    match = prompts.LABEL_USERS_RE.search(head)
    if match:
        return "\n".join(_users_with_label(reading, content, match.group("label"))) or _NONE
    match = prompts.NEEDLE_RE.search(head)
    if match:
        return _needle(reading, content, match.group("key")) or _NONE
    if prompts.EXCERPT_RE.search(head):
        question = prompts.QUESTION_RE.search(head)
        excerpt = content.split("\n\nExcerpt:\n", 1)[-1]
        return answer_question(
            reading, excerpt, question.group("question") if question else "", partial=True
        )
    if prompts.COMBINE_RE.search(head):
        question = prompts.QUESTION_RE.search(head)
        partials = content.split("\n\nPartial answers:\n", 1)[-1].splitlines()
        return _combine(reading, question.group("question") if question else "", partials)
    return None


def answer_direct(reading: Reading, messages: list[tuple[str, str]]) -> str:
    """Answer a plain chat request: the question is the last user message's last paragraph."""
    last_user = next((text for role, text in reversed(messages) if role == "user"), "")
    sub = answer_sub_prompt(reading, last_user)
    if sub is not None:
        return sub
    context, question = split_question(last_user)
    history = "\n".join(text for _, text in messages[:-1])
    text = f"{history}\n{context}" if history else context
    return answer_question(reading, text, question, partial=False)
