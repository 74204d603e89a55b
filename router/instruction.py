"""Where the instruction is: the split between what the caller asks and the data it is about.

Callers put the ask in many places: after the data (the long-context convention), before it,
between XML-ish tags (``<instructions>…</instructions>``), before a code fence, in the system
prompt, or as the last turn of a conversation whose document came earlier; and sometimes with
no blank line anywhere (man-page source, logs pasted as is). Candidates are read from bounded
windows only (``WINDOW`` characters at each end of the last user message, the system prompt
when it is short, tags inside those windows), so the cost is flat in the input size:

- a *block* candidate is the last (or first) paragraph of its window; without a blank line in
  the window it is the run of prose-like lines at that end (at most ``MAX_LINES`` lines);
- each candidate is scored by how prose-like its lines are (data lines: roff requests, record
  and ``key: value`` lines, indented code, JSON, tables, fences), a question mark, being
  tagged as the instruction, and its position (after the data, before it, system prompt);
- candidates with mostly data-like lines are rejected; with none left, the tail block is the
  instruction (the old convention).
"""

from __future__ import annotations

import re
from typing import NamedTuple

WINDOW = 2000
MAX_LINES = 12
MAX_CHARS = 4000  # the longest instruction kept
SHORT_CHARS = 1000
MIN_CHARS = 16  # a shorter final paragraph ("Answer:") takes the paragraph before it too
SYSTEM_MAX_CHARS = 4000  # a system prompt up to this long is a candidate as a whole
_TAG = re.compile(
    r"<(instructions?|question|query|task|prompt|ask)>\s*(.*?)\s*</\1>", re.DOTALL | re.IGNORECASE
)
_KEY_VALUE = re.compile(r"[\w.\-/]{1,40}\s?[:=]\s\S+(\s\S+){0,4}$")  # short values only
# Code-looking lines: indentation, assignments, calls, definitions (see ``code_line``).
_CODE_START = re.compile(r"\s{2,}\S|(def|class|import|from|return|if|for|while)\b")
_CALL = re.compile(r"\w\(")
_ASSIGN = re.compile(r"\w = ")
_CODE = re.compile(r"\w=\S|\(\d|\w\(|::|->|=>|\)\s*:$|;$|\{$")
_DATA_START = frozenset(".#/<>{}[]|`=\\'\"+*")
# A quoted word and then text ("'with' topic: ...", "\"Run Module\" calls ..."): an ask that
# names something, not a data line; a quoted key (JSON's "name": ...) or a quoted line is not.
_QUOTED_WORD = re.compile(r"""(['"])[^'"\n]{1,40}\1[ \u3000]?[^\s:,;=\])}'"+|]""")
_QUESTION_MARKS = ("?", "？")
_NOT_LETTER = bytes(b for b in range(128) if not (chr(b).isalpha() or b == 32))
_SEPARATORS = ("|", "\t", ": ", "; ", " = ")  # two of them make a line a record
# Position bonuses: after the data is the convention; before it is common; the system prompt
# holds standing instructions more often than the task.
_BONUS = {"tail": 0.3, "tag": 0.6, "head": 0.2, "system": 0.1}


class Found(NamedTuple):
    """The instruction ``text[start:end]`` of message ``message``, and where it was found."""

    message: int
    start: int
    end: int
    source: str  # tail | head | tag | system


def code_line(line: str) -> bool:
    """Whether ``line`` looks like code: indented, a definition or statement keyword first,
    a call (``name(...)``) or an assignment. Substring checks guard each regex: one
    unanchored alternation cost ~3 us per line (it is run on every sampled line)."""
    if _CODE_START.match(line):
        return True
    if "(" in line:
        call = _CALL.search(line)
        if call is not None and ")" in line[call.end() :]:
            return True
    return " = " in line and _ASSIGN.search(line) is not None


def prose_line(line: str) -> bool:
    """Whether ``line`` reads like natural-language text rather than data or code."""
    stripped = line.strip()
    if len(stripped) < 2 or line[0] in " \t":
        return False
    if stripped[0] in _DATA_START and not _QUOTED_WORD.match(stripped):
        return False
    c = stripped.count  # the _SEPARATORS, spelled out (a generator over them cost 3x)
    if stripped.startswith("--") or c("|") + c("\t") + c(": ") + c("; ") + c(" = ") >= 2:
        return False
    asks = stripped.endswith(_QUESTION_MARKS)
    if not asks and (_CODE.search(stripped) or _KEY_VALUE.match(stripped)):
        return False
    # Letters and spaces by bytes.translate (C speed; ~7x a per-character loop): a non-ASCII
    # character's bytes all count as letters, which is right for the scripts we read.
    raw = stripped.encode("utf-8", "replace")
    return len(raw.translate(None, _NOT_LETTER)) >= 0.6 * len(raw)


def _prose_share(text: str) -> float:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return 0.0
    total = sum(len(line) for line in lines)
    return sum(len(line) for line in lines if prose_line(line)) / total


def _score(text: str, source: str) -> float:
    share = _prose_share(text)
    if share < 0.5:
        return -1.0
    score = share + _BONUS[source]
    if any(mark in text[-160:] for mark in _QUESTION_MARKS):
        score += 1.0  # the ask usually ends on its question
    if len(text) > 1500:
        score -= 0.5
    return score


def _tail(text: str, start: int, end: int) -> tuple[int, int]:
    """The last block of ``text[start:end]``: the trailing run of prose lines up to a blank
    line (or at most ``MAX_LINES`` lines), at least one line; a block shorter than
    ``MIN_CHARS`` ("Answer:") takes the block before it too."""
    while end > start and text[end - 1].isspace():
        end -= 1
    if end - start <= SHORT_CHARS and "\n\n" not in text[start:end]:
        return start, end  # a short message without a blank line is all instruction
    lo = max(start, end - WINDOW)
    q_start = end
    lines = 0
    while q_start > lo and lines < MAX_LINES:
        line_start = max(lo, text.rfind("\n", lo, q_start - 1) + 1)
        line = text[line_start:q_start]
        if not line.strip():  # a blank line ends the block, unless it is still tiny
            if end - q_start >= MIN_CHARS:
                break
        elif lines and not prose_line(line):
            break
        else:
            lines += 1
        q_start = line_start
        if line_start <= lo:
            break
    while q_start < end and text[q_start] == "\n":  # keep indentation: it marks data
        q_start += 1
    return max(q_start, end - MAX_CHARS), end


def _head(text: str, start: int, end: int) -> tuple[int, int]:
    """The first block of ``text[start:end]`` (the mirror of ``_tail``)."""
    while start < end and text[start].isspace():
        start += 1
    hi = min(end, start + WINDOW)
    q_end = start
    lines = 0
    while q_end < hi and lines < MAX_LINES:
        line_end = text.find("\n", q_end, hi)
        line_end = hi if line_end < 0 else line_end
        line = text[q_end:line_end]
        if not line.strip() or (lines and not prose_line(line)):
            break
        q_end = line_end + 1
        lines += 1
    return start, min(q_end, end)


def locate(texts: list[tuple[str, str]], last_user: int) -> Found:
    """Find the instruction among ``texts`` ((role, text) per message, last part only)."""
    _, text = texts[last_user]
    end = len(text)
    candidates: list[tuple[float, Found]] = []
    t_start, t_end = _tail(text, 0, end)
    candidates.append(
        (_score(text[t_start:t_end], "tail"), Found(last_user, t_start, t_end, "tail"))
    )
    if end > WINDOW // 2:
        h_start, h_end = _head(text, 0, end)
        if h_end > h_start and h_start < t_start:
            candidates.append(
                (_score(text[h_start:h_end], "head"), Found(last_user, h_start, h_end, "head"))
            )
        for lo, hi in ((0, min(end, WINDOW)), (max(0, end - WINDOW), end)):
            match = _TAG.search(text, lo, hi)
            if match:
                found = Found(last_user, match.start(2), match.end(2), "tag")
                candidates.append((_score(match.group(2), "tag"), found))
                break
    for index, (other_role, other) in enumerate(texts):
        if other_role == "system" and 0 < len(other) <= SYSTEM_MAX_CHARS:
            candidates.append((_score(other, "system"), Found(index, 0, len(other), "system")))
    best_score, best = max(candidates, key=lambda item: item[0])
    if best_score < 0:
        return Found(last_user, t_start, t_end, "tail")
    return best
