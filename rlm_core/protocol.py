"""The conversation with the root model: prompts in, ```repl blocks and final answers out.

Compatible with the paper's protocol (``context``, ``llm_query``, ``llm_query_batched``,
``rlm_query``, ``FINAL(...)`` / ``FINAL_VAR(name)``, as in the official engine up to 0.1.1)
and with the official 0.1.3 REPL (``rlm_query(prompt, model=None)``, ``rlm_query_batched``,
``SHOW_VARS()``, the ``answer`` dict, "Turn k/N" and the variable listing on every turn).
Where we accept more than the official engine (```` ```python ```` fences, decorated FINAL
lines, FINAL/FINAL_VAR mix-ups) the prompt or the turn feedback says so. The first user
message drops the official "Your next action:" cue (see ``QUERY_TEMPLATE``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

OUTPUT_LIMIT_CHARS = 20_000
_MAX_LISTED_CHUNKS = 50

SYSTEM_PROMPT = """\
You answer a query about a context that is too large to read directly. The context is \
loaded as the variable `context` in a persistent Python REPL, and you work on it by writing \
code. Think step by step, plan, and use the REPL as much as you need.

Write code in fenced blocks tagged repl; they run in order, and variables persist between \
turns. A good first block looks at the context and at the lines that mention the query's \
key words:
```repl
print(type(context), len(context))
print(context[:1000])
keywords = {keywords}
lines = {lines_expr}
hits = [line for line in lines if any(k in line.lower() for k in keywords)]
print(len(hits), "lines mention", keywords)
print("\\n".join(hits[:30]))
```

Available in the REPL:
- `context`: the data ({context_type}, {context_chars:,} characters in total; {chunk_info}).
- `llm_query(prompt, model=None) -> str`: one sub-model call (no REPL) about a piece of text. \
It reads up to about {sub_window_chars:,} characters per call; pass it chunks, not the whole \
context.
- `llm_query_batched(prompts, model=None) -> list[str]`: many independent `llm_query` calls, \
run in parallel, answers in the same order; much faster than a loop.
- `rlm_query(prompt, model=None, context=None) -> str`: hand a sub-problem that needs its own \
code and iteration to a child RLM with its own REPL (its `context` is the `context=` value you \
pass, or the prompt itself). At the recursion limit it is a plain `llm_query`.
- `rlm_query_batched(prompts, model=None) -> list[str]`: one child RLM per prompt, in parallel.
- `SHOW_VARS() -> str`: a listing of the variables you have created.
- `FINAL(text)` and `FINAL_VAR(variable_name)`: end the task with the final answer, from code.
- `answer`: a dict; setting `answer["content"] = ...` and `answer["ready"] = True` also ends it.
- `print(...)` to see results; the Python standard library (re, json, collections, math, ...). \
There is no network access and no third-party packages.

How to work well:
- Only `print(...)` output is shown to you; a bare expression on the last line of a block is \
discarded, as in the official RLM engine. Only the first {output_limit:,} characters of a \
turn's REPL output are shown, so print summaries, counts and short slices, not the raw \
context. Every turn tells you its number ("Turn k/N") and lists your REPL variables.
- Slicing and regular expressions are cheap; sub-model calls cost time and money. Give each \
sub-call a full chunk of about {chunk_chars:,} characters (for example about 10 documents), \
not one line or one record: a batch of hundreds of tiny prompts is the mistake to avoid. Run \
many chunks as a few `llm_query_batched` calls of up to about 20 prompts each. Above roughly \
20 full chunks, filter with Python first or make a coarse pass before a targeted one.
- Ask sub-models for short, structured answers you can combine in Python.
{budget_line}- Execute your plan now, in a ```repl block in this reply; do not only say what you \
will do.
- Code in ```python blocks is run too when a reply has no ```repl block, but write ```repl.
- Each turn, take the next step from what the REPL printed; running the same code again \
shows the same output.

To read everything (answers spread out, or needing judgement), ask the sub-model about \
each chunk in parallel and print the answers:
```repl
question = {question}
size = {chunk_chars}
chunks = [{chunks_expr}]
prompts = [f"{{question}} Answer briefly from this text, or NONE.\\n\\n{{c}}" for c in chunks]
print(llm_query_batched(prompts))
```
Once the output shows the answer, end the task with the answer itself: for "How tall is \
the tower?" and a line "The tower is 312 metres tall.", reply FINAL(312 metres).

When you are done, give the answer either from code (FINAL / FINAL_VAR / answer), or on its \
own line outside any code block as FINAL(your answer) or FINAL_VAR(variable_name) (the name \
of a variable that exists in the REPL, not the answer text). Do not answer before you have \
looked at the context. Do not write FINAL before your code has run.
"""

QUERY_TEMPLATE = """\
<query>
{query}
</query>

Context: {context_type}, {context_chars:,} characters; {chunk_info}.
Turn 1/{max_turns}: start by examining the context in the REPL; you have not seen it yet."""
# The official engine ends this message with "Your next action:". We do not: a real 1.5B root
# (Qwen2.5-Coder-1.5B-Instruct, greedy) answered that cue by copying the turn line back on
# every turn and never wrote code; without it, it opens with a ```repl block (tests/realmodel).

NEXT_TURN_NUDGE = (
    "Continue: use the REPL to make progress on the query, or give your final answer with "
    "FINAL(...) / FINAL_VAR(...) when you have it."
)
# The official engine's (0.1.3) per-turn line; trained RLMs are conditioned on it.
TURN_LINE = "Turn {turn}/{max_turns}:"
# Sub-call prompt size the guidance asks for (the official prompt's ~100K characters),
# smaller when the sub-model's window is smaller.
TARGET_CHUNK_CHARS = 100_000
_MAX_LISTED_VARIABLES = 60

FINAL_REQUEST = (
    "{reason} Based on everything above, reply now with your best final answer on one line "
    "as FINAL(your answer). Do not write code."
)
STOP_EXPLANATIONS = {
    "max_iterations": "You have no iterations left.",
    "max_sub_calls": "The sub-call budget is used up: no more llm_query or rlm_query calls.",
    "stuck": "You sent the same code again; it prints nothing new.",
}


def final_request(reason: str) -> str:
    """The one extra turn asking for an answer when a run must stop early."""
    return FINAL_REQUEST.format(reason=STOP_EXPLANATIONS.get(reason, "The run must stop now."))


@dataclass(frozen=True)
class ContextInfo:
    """What the prompt says about the context: its type, size and chunk lengths."""

    type_name: str
    total_chars: int
    chunk_lengths: list[int]

    @classmethod
    def describe(cls, context: Any) -> ContextInfo:
        if isinstance(context, str):
            return cls("str", len(context), [len(context)])
        if isinstance(context, list):
            lengths = [len(item) if isinstance(item, str) else len(str(item)) for item in context]
            return cls(f"list of {len(context)} items", sum(lengths), lengths)
        if isinstance(context, dict):
            lengths = [len(str(v)) for v in context.values()]
            return cls(f"dict with {len(context)} keys", sum(lengths), lengths)
        text = str(context)
        return cls(type(context).__name__, len(text), [len(text)])

    def chunk_text(self) -> str:
        if len(self.chunk_lengths) <= 1:
            return "a single chunk"
        shown = ", ".join(str(n) for n in self.chunk_lengths[:_MAX_LISTED_CHUNKS])
        more = len(self.chunk_lengths) - _MAX_LISTED_CHUNKS
        suffix = f", ... ({more} more)" if more > 0 else ""
        return f"{len(self.chunk_lengths)} chunks of lengths [{shown}{suffix}]"


def chunk_chars_for(sub_window_chars: int) -> int:
    """The characters per sub-call the prompt asks for, given the sub-model's window."""
    return max(1_000, min(TARGET_CHUNK_CHARS, sub_window_chars // 2))


def budget_line(sub_calls_left: int | None, context_chars: int) -> str:
    """The sub-call budget as the model should plan with it (empty when unlimited)."""
    if sub_calls_left is None:
        return ""
    reading = -(-context_chars // max(1, sub_calls_left)) if sub_calls_left else context_chars
    return (
        f"- This run allows {sub_calls_left:,} more sub-calls (llm_query prompts and child "
        f"RLMs together). Reading all {context_chars:,} characters within that takes at least "
        f"{reading:,} characters per sub-call: plan the chunk size before the first batch.\n"
    )


_STOPWORD_TEXT = (
    "a an and any are as at be by can did do does for from had has have how i in is it its "
    "many me much my no not of on or our so than that the their them then there these they "
    "this to was we were what when where which who whom whose why will with you your "
    "answer context question query please tell give find list"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_MAX_QUERY_IN_EXAMPLE = 300


def query_keywords(query: str, limit: int = 6) -> list[str]:
    """The query's content words, lower-cased, for the search example in the prompt.

    Words in any script ("révisions" whole, not "visions"), longest first, since only English
    stopwords are known and a longer word is more likely the one the data holds. Text without
    spaces gives its runs of katakana (loanwords) as they are and its runs of ideographs, two
    to four as they are and a longer one (a phrase the data will not hold word for word) as
    its two-character pieces; hiragana are mostly particles and are skipped."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower()):
        if _IDEOGRAPH_RUN.fullmatch(word):
            for piece in [word] if len(word) <= 4 else map("".join, pairwise(word)):
                seen.setdefault(piece)
        elif _KATAKANA_RUN.fullmatch(word) or (len(word) > 2 and word not in _STOPWORDS):
            seen.setdefault(word)
    return sorted(seen, key=len, reverse=True)[:limit]


# Runs of ideographs or of katakana are words; hiragana are skipped (particles).
_IDEOGRAPHS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_KATAKANA = "\u30a0-\u30ff"
_NO_SPACES = f"\u3040-\u30ff{_IDEOGRAPHS}"
_IDEOGRAPH_RUN = re.compile(f"[{_IDEOGRAPHS}]{{2,}}")
_KATAKANA_RUN = re.compile(f"[{_KATAKANA}]{{2,}}")
_WORD = re.compile(
    f"[{_IDEOGRAPHS}]{{2,}}|[{_KATAKANA}]{{2,}}"
    f"|[^\\W_{_NO_SPACES}][^\\W{_NO_SPACES}]*(?:-[^\\W{_NO_SPACES}]+)*"
)


def _example_fields(query: str, context_type: str) -> dict[str, str]:
    """The worked examples' code, filled in with this query and this kind of context: a
    1.5B root copies examples word for word, so examples about another topic send it
    searching for that topic (seen in tests/realmodel)."""
    items = context_type.startswith(("list", "dict"))
    return {
        "keywords": repr(query_keywords(query)),
        "lines_expr": "[str(item) for item in context]" if items else "context.splitlines()",
        "question": repr(query.strip()[:_MAX_QUERY_IN_EXAMPLE]),
        "chunks_expr": (
            '"\\n".join(map(str, context[i:i + 10])) for i in range(0, len(context), 10)'
            if items
            else "context[i:i + size] for i in range(0, len(context), size)"
        ),
    }


def initial_messages(
    query: str,
    info: ContextInfo,
    *,
    sub_window_chars: int,
    max_turns: int = 30,
    sub_calls_left: int | None = None,
) -> list[dict[str, str]]:
    """The system message (the protocol) and the first user message (the query)."""
    fields = {
        "budget_line": budget_line(sub_calls_left, info.total_chars),
        "context_type": info.type_name,
        "context_chars": info.total_chars,
        "chunk_info": info.chunk_text(),
        "sub_window_chars": sub_window_chars,
        "chunk_chars": chunk_chars_for(sub_window_chars),
        "output_limit": OUTPUT_LIMIT_CHARS,
        "max_turns": max_turns,
    }
    examples = _example_fields(query, info.type_name)
    return [
        {"role": "system", "content": SYSTEM_PROMPT.format(**fields, **examples)},
        {"role": "user", "content": QUERY_TEMPLATE.format(query=query, **fields)},
    ]


# --- parsing ---------------------------------------------------------------------------------

_CODE_BLOCK = re.compile(r"```repl[^\S\n]*\n(.*?)```", re.DOTALL)
# Models trained on other harnesses (and qwen3.5 in the official one) tag code ```python.
# Neither official engine runs those; we run them when a reply has no ```repl block at all,
# because a turn spent on "you used the wrong tag" is a turn a small model cannot spare.
_PYTHON_BLOCK = re.compile(r"```(?:python|py|python3)[^\S\n]*\n(.*?)```", re.DOTALL)
_ANY_FENCE = re.compile(r"```[^\n]*\n.*?```", re.DOTALL)
# A final answer starts its line, possibly behind Markdown decoration real models add
# ("**FINAL(42)**", "> FINAL(...)", "- FINAL_VAR(x)", "`FINAL(x)`", "Final answer: FINAL(x)").
_LEAD = r"^[^\S\n]*(?:[-*>#`]+[^\S\n]*|(?i:final answer|answer)[^\S\n]*:[^\S\n]*)*"
_FINAL_VAR = re.compile(_LEAD + r"FINAL_VAR\(", re.MULTILINE)
_FINAL_START = re.compile(_LEAD + r"FINAL\(", re.MULTILINE)
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class Final:
    """A final answer written in the model's text.

    ``variable`` names a REPL variable whose value is the answer; ``text`` is literal text.
    With both set (``FINAL(result)`` where ``result`` may be a variable, the FINAL/FINAL_VAR
    confusion seen in trained models' turns) the variable wins when it exists.
    """

    text: str | None = None
    variable: str | None = None


@dataclass(frozen=True)
class ParsedReply:
    code_blocks: list[str]
    final: Final | None
    problem: str | None  # feedback for malformed output, None when fine
    python_fences: bool = False  # the blocks came from ```python fences (told to the model)


def _balanced_final(text: str, start: int) -> str | None:
    """The argument of FINAL( starting at ``start`` (just after the paren), if balanced.

    Parentheses inside quotes do not count, so FINAL("a (b") closes where the model meant.
    """
    depth = 1
    quote: str | None = None
    for index in range(start, len(text)):
        char = text[index]
        if quote is not None:
            if char == quote and text[index - 1] != "\\":
                quote = None
            continue
        if char in "\"'" and (index == start or text[index - 1] in "( ,"):
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return text[start:index]
    return None


def _final_var(argument: str) -> Final | None:
    name = _unquote(argument.strip())
    if _IDENTIFIER.fullmatch(name):
        return Final(variable=name)
    if name and not _IDENTIFIER.fullmatch(argument.strip()) and argument.strip()[:1] in "\"'":
        # FINAL_VAR("the answer text"): the model put the answer where the name goes.
        return Final(text=name)
    return None


def parse_reply(text: str) -> ParsedReply:
    """Find code blocks and a final answer outside of code in a model reply."""
    blocks = [block for block in _CODE_BLOCK.findall(text) if block.strip()]
    python_fences = False
    if not blocks:
        blocks = [block for block in _PYTHON_BLOCK.findall(text) if block.strip()]
        python_fences = bool(blocks)
    prose = _ANY_FENCE.sub("", text)
    final: Final | None = None
    problem: str | None = None
    var = _FINAL_VAR.search(prose)
    start = _FINAL_START.search(prose)
    if var and (start is None or var.start() <= start.start()):
        argument = _balanced_final(prose, var.end())
        final = _final_var(argument) if argument is not None else None
        if final is None:
            problem = "FINAL_VAR needs a plain variable name, e.g. FINAL_VAR(result)."
    elif start is not None:
        argument = _balanced_final(prose, start.end())
        if argument is None:
            problem = (
                "Your FINAL( has no matching closing parenthesis, so no answer was taken. "
                "Write the whole answer as FINAL(answer) on one line, or use FINAL_VAR(name)."
            )
        else:
            value = argument.strip()
            unquoted = _unquote(value)
            if _IDENTIFIER.fullmatch(value):
                final = Final(text=value, variable=value)
            else:
                final = Final(text=unquoted)
    if not blocks and final is None and problem is None:
        problem = (
            "No ```repl code block and no final answer were found in your reply. Write code in "
            "a ```repl block to work on the context now, or answer with FINAL(...)."
        )
    return ParsedReply(blocks, final, problem, python_fences)


_ANSWER_LEAD = re.compile(
    r"\A[^\S\n]*(?:[-*>#`]+[^\S\n]*)*(?i:final answer|answer)[*_`]*[^\S\n]*:[*_`]*\s*"
)


def plain_answer(text: str) -> str | None:
    """A reply to the final-answer request that has no FINAL(...): the text itself, without
    the "Final answer:" lead small models write (Qwen2.5-Coder-1.5B: "Final answer: The
    access code ... is 12345.")."""
    answer = _ANSWER_LEAD.sub("", text.strip(), count=1).strip()
    return answer or None


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


# --- REPL output back to the model -----------------------------------------------------------


def truncate(text: str, limit: int = OUTPUT_LIMIT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... [output truncated: {len(text) - limit:,} more characters]"


def variables_line(names: list[str] | None) -> str:
    """The list of REPL variables shown after every turn, as the official engine shows it."""
    if names is None:
        return ""
    shown = names[:_MAX_LISTED_VARIABLES]
    more = len(names) - len(shown)
    return f"REPL variables: {shown!r}" + (f" (+{more} more)" if more > 0 else "")


def execution_message(
    outputs: list[str],
    feedback: str | None,
    *,
    turn: int | None = None,
    max_turns: int | None = None,
    variables: list[str] | None = None,
    nudge: str = NEXT_TURN_NUDGE,
) -> str:
    """The user turn after an iteration: each block's output (truncated as a whole), the
    REPL's variables, feedback on the reply, and the next turn's number with ``nudge``."""
    if not outputs:
        body = ""
    elif len(outputs) == 1:
        body = f"REPL output:\n{outputs[0] or '(no output)'}"
    else:
        body = "\n\n".join(
            f"REPL output of block {i}:\n{out or '(no output)'}" for i, out in enumerate(outputs, 1)
        )
    parts = [truncate(body)] if body else []
    listing = variables_line(variables)
    if listing:
        parts.append(listing)
    if feedback:
        parts.append(feedback)
    if turn is not None and max_turns is not None:
        # Past the last turn the engine's request for the final answer follows instead.
        if turn <= max_turns:
            parts.append(f"{TURN_LINE.format(turn=turn, max_turns=max_turns)} {nudge}")
    else:
        parts.append(nudge)
    return "\n\n".join(parts)


def repeated_code_nudge(first_turn: int) -> str:
    """The turn's closing line when a reply re-ran a block unchanged. Small models under
    greedy decoding (Qwen2.5-Coder-1.5B in tests/realmodel) re-send their first block every
    turn even after it printed the answer, and follow the message's last line most; the
    engine's request for a final answer ("no code") is what they answer."""
    return (
        f"You ran exactly this code on turn {first_turn} already, and it printed the same. If "
        "the output answers the query, reply now with FINAL(your answer) on one line and "
        "write no code. Otherwise write different code: the next step, not the same one."
    )
