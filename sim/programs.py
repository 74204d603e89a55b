"""The REPL programs the simulated root model writes, one shape per task family.

Every solve program has the same structure, as a competent RLM root model would write it:
normalise ``context`` to text; if it is very large, split it into parts and hand each to a
child RLM with ``rlm_query(sub_question, context=part)`` (the child returns a JSON partial);
otherwise split it into chunks on line boundaries and ask the sub-model about every chunk in
one ``llm_query_batched`` call; merge the per-chunk answers in Python; compute the answer;
print it and store it in ``result``. A child (whose query asks for JSON) runs the same map
step and stores the JSON partial instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from rlm_router.sim import prompts
from rlm_router.sim.questions import Question
from rlm_router.sim.tasks.records import LABELS

STEP_MARKER = "# rlm-sim step: "
# Records are ~3.4 characters per token: a chunk is ~7K tokens, the high-recall end of the
# sub-model's curve. Prose (needle search) is ~4.5 characters per token and needs less care.
RECORD_CHUNK_CHARS = 24_000
PROSE_CHUNK_CHARS = 60_000
# Above this a node delegates parts of its context to child RLMs (depth + 1).
PART_CHARS = 2_000_000
# The inspect step prints contexts up to this size in full; the root then reads them itself.
SHORT_CONTEXT_CHARS = 12_000
CONTEXT_BEGIN = "=== CONTEXT ==="
CONTEXT_END = "=== END ==="

PARTIAL_PREFIX = "Return JSON only"

INSPECT = f'''{STEP_MARKER}inspect
if isinstance(context, str):
    preview = context
elif isinstance(context, (list, tuple)):
    preview = "\\n".join(c if isinstance(c, str) else repr(c) for c in context)
else:
    preview = repr(context)
print(type(context).__name__, len(context), "items," if not isinstance(context, str) else "chars,",
      len(preview), "characters of text")
if len(preview) <= {SHORT_CONTEXT_CHARS}:
    print("{CONTEXT_BEGIN}")
    print(preview)
    print("{CONTEXT_END}")
else:
    print(preview[:300])
'''

_PRELUDE = '''import json
import re
from collections import Counter



def as_text(value):
    """Flatten strings, lists and dicts (keys as headings) into lines of text."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\\n".join(f"{key}:\\n{as_text(item)}" for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return "\\n".join(as_text(item) for item in value)
    return json.dumps(value)


text = as_text(context)


def split_text(s, size):
    """Pieces of at most ~size characters, cut after a newline where there is one."""
    pieces, start = [], 0
    while start < len(s):
        end = min(start + size, len(s))
        if end < len(s):
            cut = s.rfind("\\n", start, end)
            if cut > start:
                end = cut + 1
        pieces.append(s[start:end])
        start = end
    return pieces


def parse_json(reply, default):
    match = re.search(r"[\\[{].*[\\]}]", reply or "", re.S)
    try:
        return json.loads(match.group(0)) if match else default
    except ValueError:
        return default


def ask_chunks(s, prompt, size):
    chunks = split_text(s, size)
    print(f"asking the sub-model about {len(chunks)} chunks of ~{size} characters")
    return llm_query_batched([prompt + chunk for chunk in chunks])
'''

_DRIVER = """
if len(text) > PART_CHARS:
    parts = split_text(text, PART_CHARS)
    print(f"{len(text)} characters: delegating {len(parts)} parts to child RLMs")
    partial = empty()
    for part in parts:
        try:
            found = parse_json(rlm_query(SUB_QUESTION, context=part), None)
        except Exception as exc:  # e.g. at the depth limit the part is too big for one call
            print("child failed:", str(exc)[:200])
            found = None
        partial = merge(partial, found if found is not None else map_part(part))
else:
    partial = map_part(text)
print("partial:", json.dumps(partial)[:1500])
"""


@dataclass(frozen=True)
class _Shape:
    """The family-specific pieces of a solve program."""

    setup: str  # constants and map_part/empty/merge
    sub_question: str  # the child RLM's query (asks for the JSON partial)
    reduce: str  # computes ``result`` from ``partial``


def _records_shape(users: tuple[str, ...], chunk_chars: int) -> _Shape:
    named = " or ".join(f"user {u}" for u in users)
    prompt = prompts.RECORDS_PROMPT.format(labels=", ".join(LABELS), users=named)
    setup = f"""
USERS = {list(users)!r}
PROMPT = {prompt!r}


def empty():
    return {{u: {{}} for u in USERS}}


def merge(total, part):
    for user, labels in (part.items() if isinstance(part, dict) else []):
        if user in total and isinstance(labels, dict):
            for label, n in labels.items():
                total[user][label] = total[user].get(label, 0) + int(n)
    return total


def map_part(s):
    counts = empty()
    for reply in ask_chunks(s, PROMPT, {chunk_chars}):
        for line in reply.splitlines():
            m = re.match(r"\\s*(\\d+)\\s*\\|\\s*(.+?)\\s*$", line)
            if m and m.group(1) in counts:
                label = m.group(2).strip("`'\\" .").lower()
                counts[m.group(1)][label] = counts[m.group(1)].get(label, 0) + 1
    return counts
"""
    sub_question = (
        f"For every record from {named} in this context, count the records per label "
        f"({', '.join(LABELS)}). {PARTIAL_PREFIX}: an object mapping each user ID to an object "
        "mapping label to count."
    )
    return _Shape(setup, sub_question, "")


def _label_users_shape(label: str, chunk_chars: int) -> _Shape:
    prompt = prompts.LABEL_USERS_PROMPT.format(labels=", ".join(LABELS), label=label)
    setup = f"""
PROMPT = {prompt!r}


def empty():
    return []


def merge(total, part):
    return sorted(set(total) | {{str(u) for u in (part if isinstance(part, list) else [])}})


def map_part(s):
    users = set()
    for reply in ask_chunks(s, PROMPT, {chunk_chars}):
        users.update(re.findall(r"^\\s*(\\d+)\\s*$", reply, re.M))
    return sorted(users)
"""
    sub_question = (
        f"List the user IDs of all records in this context whose instance has the label "
        f"'{label}' (labels: {', '.join(LABELS)}). {PARTIAL_PREFIX}: a list of user IDs."
    )
    return _Shape(setup, sub_question, "")


def _answers_shape(prompt: str, chunk_chars: int, sub_question: str) -> _Shape:
    setup = f"""
PROMPT = {prompt!r}


def empty():
    return []


def merge(total, part):
    return total + [str(p) for p in (part if isinstance(part, list) else [])]


def map_part(s):
    replies = ask_chunks(s, PROMPT, {chunk_chars})
    return [r.strip() for r in replies if r.strip() and r.strip().upper() != "NONE"]
"""
    return _Shape(setup, sub_question, "")


def _shape(q: Question, chunk_chars: int) -> _Shape:
    if q.kind in ("count", "most_common", "compare", "records"):
        return _records_shape(q.users, chunk_chars)
    if q.kind in ("pairs", "label_users"):
        return _label_users_shape(q.params["label"], chunk_chars)
    if q.kind == "needle":
        key = q.params["key"]
        return _answers_shape(
            prompts.NEEDLE_PROMPT.format(key=key),
            PROSE_CHUNK_CHARS,
            f"Find the special magic number for {key} in this context. {PARTIAL_PREFIX}: a list "
            "of the numbers found (empty if none).",
        )
    return _answers_shape(
        prompts.EXCERPT_PROMPT.format(question=q.text),
        PROSE_CHUNK_CHARS,
        f"Answer this question using only this context: {q.text} {PARTIAL_PREFIX}: a list of "
        "the relevant partial answers found (empty if none).",
    )


def _reduce(q: Question) -> str:
    if q.kind == "count":
        return f"result = str(partial[{q.users[0]!r}].get({q.params['label']!r}, 0))\n"
    if q.kind == "most_common":
        return (
            f"found = partial[{q.users[0]!r}]\n"
            "result = max(sorted(found), key=lambda k: found[k]) if found else 'unknown'\n"
        )
    if q.kind == "compare":
        return (
            f"scores = {{u: partial[u].get({q.params['label']!r}, 0) for u in USERS}}\n"
            "print('per user:', scores)\n"
            "result = max(USERS, key=lambda u: scores[u])\n"
        )
    if q.kind == "pairs":
        return (
            "users = sorted(partial, key=int)\n"
            "pairs = [(a, b) for i, a in enumerate(users) for b in users[i + 1:]]\n"
            "result = '\\n'.join(f'({a}, {b})' for a, b in pairs)\n"
        )
    if q.kind == "needle":
        return (
            "numbers = [n for reply in partial for n in re.findall(r'\\d{4,}', reply)]\n"
            "result = Counter(numbers).most_common(1)[0][0] if numbers else 'not found'\n"
        )
    combine = prompts.COMBINE_PROMPT.format(question=q.text)
    return (
        "if partial:\n"
        f"    result = llm_query({combine!r} + '\\n'.join(partial[:200]))\n"
        "else:\n"
        "    result = 'The context does not contain an answer to the question.'\n"
    )


CHUNK_NOTE = " Use sub-calls of about {chars} characters."


def chunk_note(chars: int) -> str:
    """What a parent tells its child RLMs about chunk size (so the tree fits the budget)."""
    return "" if chars == RECORD_CHUNK_CHARS else CHUNK_NOTE.format(chars=chars)


def _hop_program(q: Question) -> str:
    """Two passes over the text: which organisation the director runs, then its city."""
    first = prompts.EXCERPT_PROMPT.format(
        question=f"Which organisation is directed by {q.params['person']}?"
    )
    return f"""{STEP_MARKER}solve
{_PRELUDE}

def found(replies):
    return [r.strip() for r in replies if r.strip() and r.strip().upper() != "NONE"]


orgs = found(ask_chunks(text, {first!r}, {PROSE_CHUNK_CHARS}))
print("organisations found:", orgs)
if orgs:
    org = Counter(orgs).most_common(1)[0][0]
    prompt = {prompts.EXCERPT_PROMPT!r}.format(question=f"In which city is {{org}} based?")
    cities = found(ask_chunks(text, prompt, {PROSE_CHUNK_CHARS}))
    print("cities found:", cities)
    result = Counter(cities).most_common(1)[0][0] if cities else "unknown"
else:
    result = "unknown"
print("result:", result)
"""


def solve_program(
    q: Question, *, as_child: bool, record_chunk_chars: int = RECORD_CHUNK_CHARS
) -> str:
    """The program for question ``q``; a child stores the JSON partial as ``result``."""
    if q.kind == "hop_city" and not as_child:
        return _hop_program(q)
    shape = _shape(q, record_chunk_chars)
    reduce = "result = json.dumps(partial)\n" if as_child else _reduce(q)
    return (
        f"{STEP_MARKER}solve\n{_PRELUDE}\nPART_CHARS = {PART_CHARS}\n"
        f"SUB_QUESTION = {shape.sub_question + chunk_note(record_chunk_chars)!r}\n"
        f"{shape.setup}{_DRIVER}{reduce}"
        'print("result:", result)\n'
    )


def fallback_program(question: str) -> str:
    """A generic chunk-and-combine program, used when the specific one failed."""
    generic = Question("unknown", question)
    return solve_program(generic, as_child=False).replace(
        f"{STEP_MARKER}solve", f"{STEP_MARKER}fallback", 1
    )


def assign_program(value: str) -> str:
    """Store an answer the root already knows (e.g. multi-line) in ``result``."""
    return f"{STEP_MARKER}assign\nresult = {json.dumps(value)}\nprint(result)\n"


# For engines that end a run only through the REPL's ``answer`` dict (rlms 0.1.3).
SUBMIT_RESULT = f'{STEP_MARKER}submit\nanswer["content"] = str(result)\nanswer["ready"] = True\n'


def submit_program(value: str) -> str:
    """Submit an answer the root already knows through the ``answer`` dict."""
    return f'{STEP_MARKER}submit\nanswer["content"] = {json.dumps(value)}\nanswer["ready"] = True\n'
