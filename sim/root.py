"""The simulated model as an RLM root: it drives the REPL one turn at a time.

A conversation is an RLM root conversation when its system message mentions both a
```` ```repl ```` block and ``llm_query`` (the engine's protocol). The model is stateless: each
turn it re-reads the conversation, finds which step it took last (its programs carry a
``# rlm-sim step:`` comment) and what the REPL printed since its last reply, and takes the
next step:

1. ``inspect``: print the context's type, size and a preview (all of it when short);
2. a short context it just saw in full is answered by reading it (``FINAL(...)``);
   otherwise ``solve``: the family's chunk / ``llm_query_batched`` / aggregate program;
3. ``FINAL_VAR(result)`` once the program printed its result, or, if it raised, a generic
   ``fallback`` program; if that fails too, the best answer it has (never an endless loop).

It reads the two engines' conversations it is benchmarked against:

- ours (``rlm_core``): the query between ``<query>`` tags in the first user message;
  FINAL / FINAL_VAR end the run;
- the official ``rlms`` 0.1.3: the query after "Answer the following: " in the first user
  message, a separate "Turn k/N" user message after each REPL output, and a system prompt
  whose only way to end the run is the ``answer`` dict. When the instructions offer no
  FINAL, the model ends with a ```` ```repl ```` block setting ``answer["content"]`` and
  ``answer["ready"] = True`` instead, and answers in plain text when the engine puts a
  request for the final answer in the assistant's mouth (its out-of-iterations fallback).
"""

from __future__ import annotations

import re

from rlm_router.sim import personas, programs
from rlm_router.sim.questions import Question, split_question, understand
from rlm_router.sim.reader import Reading, answer_question

_QUERY = re.compile(r"<query>\s*\n(.*?)\n\s*</query>", re.S)
# rlms 0.1.3: "Answer the following: {root_prompt}\n\nYour context is a str of N total ..."
_ANSWER_THE_FOLLOWING = re.compile(r"\AAnswer the following: (.*?)\n\nYour context is ", re.S)
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
_PLAN_ANSWER = (
    "I will split the context into chunks, ask the sub-model about each chunk in parallel "
    "and combine the answers in Python"
)


def is_root_prompt(messages: list[tuple[str, str]]) -> bool:
    """Whether this conversation is an RLM root conversation (see the module docstring)."""
    return any(
        role in ("system", "developer") and "```repl" in text and "llm_query" in text
        for role, text in messages
    )


def _query(messages: list[tuple[str, str]]) -> str:
    for role, text in messages:
        if role == "user":
            match = _QUERY.search(text) or _ANSWER_THE_FOLLOWING.search(text)
            return match.group(1).strip() if match else split_question(text)[1]
    return ""


def _ends_by_answer_dict(messages: list[tuple[str, str]]) -> bool:
    """Whether the instructions end a run only through the ``answer`` dict (no FINAL)."""
    system = "\n".join(text for role, text in messages if role in ("system", "developer"))
    return 'answer["ready"]' in system and "FINAL" not in system


def _since_last_reply(messages: list[tuple[str, str]]) -> str:
    """What the engine said after the model's last reply (REPL output, turn notes)."""
    tail: list[str] = []
    for role, text in reversed(messages):
        if role == "assistant":
            break
        if role == "user":
            tail.append(text)
    return "\n\n".join(reversed(tail))


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


def _code(step_text: str, program: str, fence: str = "repl") -> str:
    return f"{step_text}\n\n```{fence}\n{program}```"


def _final(answer: str, *, by_dict: bool) -> str:
    if by_dict:
        return _code("Submitting the answer.", programs.submit_program(answer))
    if "\n" in answer or ")" in answer:
        # FINAL(...) is one line and ends at its parenthesis: store it and name the variable.
        return _code("Storing the answer.", programs.assign_program(answer))
    return f"I have the answer.\n\nFINAL({answer})"


_SUB_CALLS_LEFT = re.compile(r"This run allows ([\d,]+) more sub-calls")
_CONTEXT_CHARS = re.compile(r"^Context: .*?, ([\d,]+) characters;", re.M)
_PARENT_CHUNK = re.compile(r"Use sub-calls of about (\d+) characters\.")


def _chunk_chars(persona: personas.Persona, messages: list[tuple[str, str]], query: str) -> int:
    """The persona's chunk size, made larger when the run's sub-call budget (stated by the
    engine) could not cover the whole context with it; a child uses what its parent said."""
    if parent := _PARENT_CHUNK.search(query):
        return int(parent.group(1))
    text = "\n".join(t for _, t in messages[:2])
    left, size = _SUB_CALLS_LEFT.search(text), _CONTEXT_CHARS.search(text)
    if not left or not size:
        return persona.record_chunk_chars
    calls = int(left.group(1).replace(",", ""))
    total = int(size.group(1).replace(",", "")) * (2 if persona.verify else 1)
    # Keep a fifth of the budget for children, retries and the combine step.
    needed = -(-total // max(1, int(calls * 0.8)))
    return max(persona.record_chunk_chars, needed)


def respond_as_root(reading: Reading, messages: list[tuple[str, str]]) -> str:
    """The root model's next turn."""
    query = _query(messages)
    question, as_child = _question(query)
    persona = personas.persona_of(reading.model.persona)

    # Questions repeat across tasks; the first user turn (with the context's size) does not.
    first_user = next((text for role, text in messages if role == "user"), query)

    def chance(behaviour: str) -> float:
        return personas.chance(reading.seed, reading.model.name, first_user, behaviour)

    if not as_child and chance("misread") < persona.misunderstand:
        question = personas.misread(question, chance("which"))
    fence = "python" if chance("fence") < persona.python_fence else "repl"

    def solve(step: str, extra: str = "") -> str:
        chunk = _chunk_chars(persona, messages, query)
        program = programs.solve_program(question, as_child=as_child, record_chunk_chars=chunk)
        if chance("pairs") < persona.pair_slip:
            program = program.replace(personas.ALL_PAIRS, personas.NEIGHBOUR_PAIRS)
        marker = programs.STEP_MARKER
        return program.replace(f"{marker}solve", f"{marker}{step}", 1) + extra

    by_dict = _ends_by_answer_dict(messages)
    replies = [text for role, text in messages if role == "assistant"]
    steps = [m.group(1) for text in replies for m in [_STEP.search(text)] if m]
    last_step = steps[-1] if steps else None
    output = _since_last_reply(messages) if replies else ""
    results = _RESULT_LINE.findall("\n".join(t for r, t in messages if r == "user"))
    best = results[-1].strip() if results else "I could not determine the answer."

    if by_dict and messages[-1][0] == "assistant":
        # rlms asks for the final answer in the model's own voice when its iterations run
        # out, and returns the reply as the answer: plain text, no code.
        return best
    if not replies:
        return _code("Let me look at the context first.", programs.INSPECT)
    if len(replies) >= MAX_TURNS or _MUST_ANSWER.search(output) or last_step == "submit":
        return _final(best, by_dict=by_dict) if by_dict else f"FINAL({best})"
    if last_step == "inspect":
        begin = output.find(programs.CONTEXT_BEGIN)
        end = output.rfind(programs.CONTEXT_END)
        if begin >= 0 and end > begin and not as_child:
            seen = output[begin + len(programs.CONTEXT_BEGIN) : end].strip("\n")
            answer = answer_question(reading, seen, question.text, partial=False)
            return _final(answer, by_dict=by_dict)
        plan = (
            f"The context is large; I will split it into chunks, ask the sub-model about each "
            f"chunk in parallel and combine the answers in Python (question type: "
            f"{question.kind})."
        )
        if not as_child and chance("plan") < persona.plan_as_answer:
            # The plan handed in as the answer: a failure seen in real trajectories.
            return f"{plan}\n\nFINAL({_PLAN_ANSWER})"
        return _code(plan, solve("solve"), fence)
    if last_step == "solve" and persona.verify and not as_child and not _ERROR.search(output):
        flip = personas.FLIP_RESULT if chance("flip") < persona.verify_flips else ""
        return _code("Let me verify the result by recomputing it.", solve("verify", flip), fence)

    def final_var(text: str) -> str:
        """End on the REPL's ``result`` (with the persona's FINAL/FINAL_VAR confusion)."""
        if by_dict:
            return _code(text, programs.SUBMIT_RESULT)
        if chance("final") < persona.final_confusion:
            return f"{text}\n\nFINAL(result)"
        return f"{text}\n\nFINAL_VAR(result)"

    if last_step in ("solve", "fallback", "assign", "verify"):
        if _ERROR.search(output) and last_step == "solve":
            return _code(
                "The program failed; I will use a simpler chunk-and-combine approach.",
                programs.fallback_program(question.text),
            )
        if _ERROR.search(output) and last_step == "verify":
            # The re-run failed (at 10M tokens: the cost budget refused its batches), but the
            # first run's ``result`` is still in the REPL: a coder root hands that in, as the
            # engine's refusal says ("finish with what you have").
            return final_var("The verification could not finish; the first result stands.")
        if _ERROR.search(output):
            found = _RESULT_LINE.findall(output)
            answer = found[-1] if found else "I could not determine the answer."
            return _final(answer, by_dict=by_dict) if by_dict else f"FINAL({answer})"
        return final_var("The program printed the result.")
    return _code("Let me look at the context first.", programs.INSPECT)
