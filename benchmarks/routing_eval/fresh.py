"""A second held-out set that nothing was ever tuned on: ``python -m benchmarks.routing_bench
--set fresh``.

The first set (``cases.py``) has steered the task model's corpus twice (``policies/
TASK_MODEL.md``: which wordings to add was read from its misroutes), so its figures for those
patterns are no longer a generalisation measure. This set is read once and reported, never used
to change the router:

- Each set's 72 questions (``fresh_questions.json``, ``fresh_b_questions.json``: 9 per
  language in en, fr, de, es, pt, it, zh, ja)
  were written by a session that had not read the training corpus, its templates, the first
  set or the router's code, from a brief that named only the task kinds and the data files.
- The data are real files that neither the first set nor the training corpus reads
  (``sources.FRESH_PATHS``): glibc's UTF-8 character map and the compact time-zone database
  (dense records), the Python language reference (pydoc's topics), and IDLE's and tkinter's
  source code; a page of ``/etc/services`` or ``zone1970.tab`` for short questions.
- Labels follow from the kind, the size and the published evidence (``cases.EVIDENCE``), fixed
  here before the router ran on the set: short requests and single lookups that fit the window
  go direct; aggregation over all records (>= 48K tokens), pairwise over records (>= 12K),
  multi-hop and codebase-wide questions over long inputs go to the RLM. Sizes stay clear of
  those bounds; the layouts rotate through the first set's (question first or last, glued to
  the data, XML-ish tags, a code fence, the instruction or the data in the system prompt, the
  document in an earlier turn).
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.routing_eval.cases import EVIDENCE, Case, Route

# Set A, and set B: written later by another such session from the same brief. A's misroutes
# were read in session 8 and one split error they showed was fixed (f8e41d9); B's were read
# only after that change.
QUESTIONS = {
    "fresh": Path(__file__).with_name("fresh_questions.json"),
    "fresh_b": Path(__file__).with_name("fresh_b_questions.json"),
}
# kind -> (category, label, evidence key)
KINDS: dict[str, tuple[str, Route, str]] = {
    "short_chat": ("short", "llm", "short"),
    "short_data": ("short", "llm", "short"),
    "lookup": ("long_lookup", "llm", "lookup"),
    "aggregation": ("long_aggregation", "rlm", "aggregation"),
    "pairwise": ("pairwise", "rlm", "pairwise"),
    "multi_hop": ("multi_hop", "rlm", "multi_hop"),
    "codebase": ("codebase", "rlm", "codebase"),
}
# Tokens of data per kind and source; the n-th case of a kind takes the n-th size in turn.
SIZES: dict[str, dict[str, tuple[int, ...]]] = {
    "short_data": {"services": (900, 1_500), "zonetab": (800, 1_400)},
    "lookup": {
        "charmap": (90_000, 150_000),
        "tzdata": (60_000,),
        "topics": (100_000, 150_000),
        "idlelib": (120_000, 160_000),
        "tkinter": (80_000,),
    },
    "aggregation": {"charmap": (120_000, 200_000), "tzdata": (60_000,)},
    "pairwise": {"charmap": (60_000, 120_000), "tzdata": (40_000, 60_000)},
    "multi_hop": {"topics": (120_000, 150_000), "idlelib": (120_000, 160_000)},
    "codebase": {"idlelib": (120_000, 160_000), "tkinter": (80_000,)},
}
LAYOUTS = ("last", "first", "glued_last", "tags", "fence", "system_q", "system_data", "earlier")
OFFSETS = (0.0, 0.3, 0.6)
# Sources long enough to start a cut part-way in (the others are read from the start: they
# hold 66K-170K tokens, about what a case takes).
LONG_SOURCES = ("charmap",)


def load(which: str = "fresh") -> list[Case]:
    """The cases of set ``which``, in the file's order, each with its label fixed by its kind."""
    raw = json.loads(QUESTIONS[which].read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    cases = []
    for i, item in enumerate(raw):
        kind, src, lang = item["kind"], item["source"], item["lang"]
        category, label, evidence = KINDS[kind]
        n = seen[f"{kind}/{src}"] = seen.get(f"{kind}/{src}", -1) + 1
        tokens = 0
        layout = "last"
        extra: dict[str, object] = {}
        if src is not None:
            sizes = SIZES[kind][src]
            tokens = sizes[n % len(sizes)]
            layout = LAYOUTS[i % len(LAYOUTS)]
            if src in LONG_SOURCES or kind == "short_data":
                extra["offset"] = OFFSETS[i % len(OFFSETS)]
        case_id = f"{which}-{kind}-{lang}-{i}"
        question = item["question"]
        cases.append(
            Case(
                case_id,
                category,
                lang,
                label,
                EVIDENCE[evidence],
                question,
                src,
                tokens,
                layout,
                extra,
            )
        )
    return cases
