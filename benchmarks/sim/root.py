"""The simulated model as an RLM root: it drives the REPL one turn at a time.

A conversation is an RLM root conversation when its system message mentions both a
```` ```repl ```` block and ``llm_query`` (the engine's protocol). The model is stateless: each
turn it re-reads the conversation, finds which step it took last (its programs carry a
``# rlm-sim step:`` comment) and what the REPL printed, and takes the next step:

1. ``inspect``: print the context's type, size and a preview (all of it when short);
2. a short context it just saw in full is answered by reading it (``FINAL(...)``);
   otherwise ``solve``: the family's chunk / ``llm_query_batched`` / aggregate program;
3. ``FINAL_VAR(result)`` once the program printed its result, or, if it raised, a generic
   ``fallback`` program; if that fails too, the best answer it has (never an endless loop).
"""

from __future__ import annotations

import re

from benchmarks.sim import programs
from benchmarks.sim.questions import Question, split_question, understand
from benchmarks.sim.reader import Reading, answer_question

_QUERY = re.compile(r"<query>\s*\n(.*?)\n\s*</query>", re.S)
_STEP = re.compile(re.escape(programs.STEP_MARKER) + r"(\w+)")
_ERROR = re.compile(r"Traceback \(most recent call last\)|^\w*(?:Error|Exception)\b", re.M)
_RESULT_LINE = re.compile(r"^result: (.+)$", re.M)
_CHILD_RECORDS = re.compile(r"For every record from (?P<named>.+?) in this context, count")
_CHILD_LABEL = re.compile(
    r"List the user IDs of all records in this context whose instance has the label "
    r"'(?P<label>[^']+)'"
)
_CHILD_GENERIC = re.compile(
    r"Answer this question using only this context: (?P<q>.*?) Return JSON", re.S
)
# The engine asks for an answer without code when a budget runs out.
_MUST_ANSWER = re.compile(r"reply now with your best final answer|Do not write code", re.I)
MAX_TURNS = 6


def is_root_prompt(messages: list[tuple[str, str]]) -> bool:
    """Whether this conversation is an RLM root conversation (see the module docstring)."""
    return any(
        role in ("system", "developer") and "```repl" in text and "llm_query" in text
        for role, text in messages
    )


def _query(messages: list[tuple[str, str]]) -> str:
    for role, text in messages:
        if role == "user":
            match = _QUERY.search(text)
            return match.group(1).strip() if match else split_question(text)[1]
    return ""


def _question(query: str) -> tuple[Question, bool]:
    """The question and whether it is a parent's request for a JSON partial."""
    if programs.PARTIAL_PREFIX not in query:
        return understand(query), False
    if match := _CHILD_RECORDS.search(query):
        return Question("records", query, {"named": match.group("named")}), True
    if match := _CHILD_LABEL.search(query):
        return Question("label_users", query, {"label": match.group("label")}), True
    if match := _CHILD_GENERIC.search(query):
        return Question("unknown", match.group("q").strip()), True
    return understand(query), True


def _code(step_text: str, program: str) -> str:
    return f"{step_text}\n\n```repl\n{program}```"


def _final(answer: str) -> str:
    if "\n" in answer or ")" in answer:
        # FINAL(...) is one line and ends at its parenthesis: store it and name the variable.
        return _code("Storing the answer.", programs.assign_program(answer))
    return f"I have the answer.\n\nFINAL({answer})"


def respond_as_root(reading: Reading, messages: list[tuple[str, str]]) -> str:
    """The root model's next turn."""
    query = _query(messages)
    question, as_child = _question(query)
    replies = [text for role, text in messages if role == "assistant"]
    steps = [m.group(1) for text in replies for m in [_STEP.search(text)] if m]
    last_step = steps[-1] if steps else None
    output = messages[-1][1] if replies and messages[-1][0] == "user" else ""

    if not replies:
        return _code("Let me look at the context first.", programs.INSPECT)
    if len(replies) >= MAX_TURNS or _MUST_ANSWER.search(output):
        results = _RESULT_LINE.findall("\n".join(t for r, t in messages if r == "user"))
        return f"FINAL({results[-1].strip() if results else 'I could not determine the answer.'})"
    if last_step == "inspect":
        begin = output.find(programs.CONTEXT_BEGIN)
        end = output.rfind(programs.CONTEXT_END)
        if begin >= 0 and end > begin and not as_child:
            seen = output[begin + len(programs.CONTEXT_BEGIN) : end].strip("\n")
            return _final(answer_question(reading, seen, question.text, partial=False))
        plan = (
            f"The context is large; I will split it into chunks, ask the sub-model about each "
            f"chunk in parallel and combine the answers in Python (question type: "
            f"{question.kind})."
        )
        return _code(plan, programs.solve_program(question, as_child=as_child))
    if last_step in ("solve", "fallback", "assign"):
        if _ERROR.search(output) and last_step == "solve":
            return _code(
                "The program failed; I will use a simpler chunk-and-combine approach.",
                programs.fallback_program(question.text),
            )
        if _ERROR.search(output):
            results = _RESULT_LINE.findall(output)
            return f"FINAL({results[-1] if results else 'I could not determine the answer.'})"
        return "The program printed the result.\n\nFINAL_VAR(result)"
    return _code("Let me look at the context first.", programs.INSPECT)
