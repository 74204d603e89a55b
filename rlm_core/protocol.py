"""The conversation with the root model: prompts in, ```repl blocks and final answers out.

Compatible with the paper's protocol (``context``, ``llm_query``, ``llm_query_batched``,
``rlm_query``, ``FINAL(...)`` / ``FINAL_VAR(name)``) and the newer ``answer`` dict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

OUTPUT_LIMIT_CHARS = 20_000
_MAX_LISTED_CHUNKS = 50

SYSTEM_PROMPT = """\
You answer a query about a context that is too large to read directly. The context is \
loaded as the variable `context` in a persistent Python REPL, and you work on it by writing \
code. Think step by step, plan, and use the REPL as much as you need.

Write code in fenced blocks tagged repl; they run in order, and variables persist between turns:
```repl
print(type(context), len(context))
print(context[:2000])
```

Available in the REPL:
- `context`: the data ({context_type}, {context_chars:,} characters in total; {chunk_info}).
- `llm_query(prompt, model=None) -> str`: ask a language model about a piece of text. It can \
read roughly {sub_window_chars:,} characters per call, so pass it chunks, not the whole context.
- `llm_query_batched(prompts, model=None) -> list[str]`: many independent `llm_query` calls, \
run in parallel; much faster than a loop. Use it for map-style work over chunks.
- `rlm_query(prompt, context=None) -> str`: hand a sub-problem to a child RLM with its own REPL \
(its `context` is the value you pass, or the prompt itself); at the recursion limit it is a \
plain `llm_query`.
- `FINAL(text)` and `FINAL_VAR(variable_name)`: end the task with the final answer, from code.
- `answer`: a dict; setting `answer["content"] = ...` and `answer["ready"] = True` also ends it.
- `print(...)` to see results; the Python standard library (re, json, collections, math, ...). \
There is no network access and no third-party packages.

Only the first {output_limit:,} characters of a turn's REPL output are shown to you, so print \
summaries, counts and short slices, not the raw context. Slicing and regular expressions are \
cheap; sub-model calls cost time and money, so batch them and keep each chunk large.

When you are done, give the answer either from code (FINAL / FINAL_VAR / answer), or on its \
own line outside any code block as FINAL(your answer) or FINAL_VAR(variable_name). Do not \
answer before you have looked at the context. Do not write FINAL before your code has run.
"""

QUERY_TEMPLATE = """\
<query>
{query}
</query>

Context: {context_type}, {context_chars:,} characters; {chunk_info}.
Start by examining the context in the REPL; you have not seen it yet. Your next action:"""

NEXT_TURN_NUDGE = (
    "Continue: use the REPL to make progress on the query, or give your final answer with "
    "FINAL(...) / FINAL_VAR(...) when you have it."
)

FINAL_REQUEST = (
    "{reason} Based on everything above, reply now with your best final answer on one line "
    "as FINAL(your answer). Do not write code."
)
STOP_EXPLANATIONS = {
    "max_iterations": "You have no iterations left.",
    "max_sub_calls": "The sub-call budget is used up: no more llm_query or rlm_query calls.",
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


def initial_messages(
    query: str, info: ContextInfo, *, sub_window_chars: int
) -> list[dict[str, str]]:
    """The system message (the protocol) and the first user message (the query)."""
    fields = {
        "context_type": info.type_name,
        "context_chars": info.total_chars,
        "chunk_info": info.chunk_text(),
        "sub_window_chars": sub_window_chars,
        "output_limit": OUTPUT_LIMIT_CHARS,
    }
    return [
        {"role": "system", "content": SYSTEM_PROMPT.format(**fields)},
        {"role": "user", "content": QUERY_TEMPLATE.format(query=query, **fields)},
    ]


# --- parsing ---------------------------------------------------------------------------------

_CODE_BLOCK = re.compile(r"```repl[^\S\n]*\n(.*?)```", re.DOTALL)
_ANY_FENCE = re.compile(r"```[^\n]*\n.*?```", re.DOTALL)
_FINAL_VAR = re.compile(r"^\s*FINAL_VAR\(\s*['\"]?([A-Za-z_]\w*)['\"]?\s*\)\s*$", re.MULTILINE)
_FINAL_START = re.compile(r"^\s*FINAL\(", re.MULTILINE)


@dataclass(frozen=True)
class Final:
    """A final answer written in the model's text: literal text or a variable name."""

    text: str | None = None
    variable: str | None = None


@dataclass(frozen=True)
class ParsedReply:
    code_blocks: list[str]
    final: Final | None
    problem: str | None  # feedback for malformed output, None when fine


def _balanced_final(text: str, start: int) -> str | None:
    """The argument of FINAL( starting at ``start`` (just after the paren), if balanced."""
    depth = 1
    for index in range(start, len(text)):
        char = text[index]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return text[start:index]
    return None


def parse_reply(text: str) -> ParsedReply:
    """Find repl code blocks and a final answer outside of code in a model reply."""
    blocks = [block for block in _CODE_BLOCK.findall(text) if block.strip()]
    prose = _ANY_FENCE.sub("", text)
    final: Final | None = None
    problem: str | None = None
    var = _FINAL_VAR.search(prose)
    start = _FINAL_START.search(prose)
    if var and (start is None or var.start() <= start.start()):
        final = Final(variable=var.group(1))
    elif start is not None:
        argument = _balanced_final(prose, start.end())
        if argument is None:
            problem = (
                "Your FINAL( has no matching closing parenthesis, so no answer was taken. "
                "Write the whole answer as FINAL(answer) on one line, or use FINAL_VAR(name)."
            )
        else:
            final = Final(text=_unquote(argument.strip()))
    elif "FINAL_VAR(" in prose:
        problem = "FINAL_VAR needs a plain variable name, e.g. FINAL_VAR(result)."
    if not blocks and final is None and problem is None:
        problem = (
            "No ```repl code block and no final answer were found in your reply. Write code in "
            "a ```repl block to work on the context, or answer with FINAL(...)."
        )
    return ParsedReply(code_blocks=blocks, final=final, problem=problem)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


# --- REPL output back to the model -----------------------------------------------------------


def truncate(text: str, limit: int = OUTPUT_LIMIT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... [output truncated: {len(text) - limit:,} more characters]"


def execution_message(outputs: list[str], feedback: str | None) -> str:
    """The user turn after an iteration: each block's output, truncated as a whole."""
    if not outputs:
        body = ""
    elif len(outputs) == 1:
        body = f"REPL output:\n{outputs[0] or '(no output)'}"
    else:
        body = "\n\n".join(
            f"REPL output of block {i}:\n{out or '(no output)'}" for i, out in enumerate(outputs, 1)
        )
    parts = [truncate(body)] if body else []
    if feedback:
        parts.append(feedback)
    parts.append(NEXT_TURN_NUDGE)
    return "\n\n".join(parts)
