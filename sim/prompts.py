"""Sub-call prompt templates the simulated root model writes into its REPL programs.

They are ordinary instructions a real root model might write; the simulated sub-model
recognises them by their wording (the patterns below) and answers them by reading the text
that follows, with the recall of a prompt that size.
"""

from __future__ import annotations

import re

RECORDS_PROMPT = (
    "You are reading part of a dataset of user records, one per line, in the form "
    "`Date: ... || User: ... || Instance: ...`. Each instance is a question whose label is the "
    "kind of answer it asks for: {labels}.\n"
    "For every record from {users}, give its label. Reply with one line per record in the form "
    "`<user id> | <label>`, or NONE if there are no such records.\n\nRecords:\n"
)
LABEL_USERS_PROMPT = (
    "You are reading part of a dataset of user records, one per line, in the form "
    "`Date: ... || User: ... || Instance: ...`. Each instance is a question whose label is the "
    "kind of answer it asks for: {labels}.\n"
    "List the user ID of every record whose instance has the label '{label}'. Reply with one "
    "user ID per line, or NONE if there are no such records.\n\nRecords:\n"
)
NEEDLE_PROMPT = (
    "Find the special magic number for {key} in the text below. Reply with the number only, "
    "or NONE if the text does not mention it.\n\nText:\n"
)
EXCERPT_PROMPT = (
    "Answer the question using only the excerpt below. If the excerpt contains nothing "
    "relevant, reply NONE.\n\nQuestion: {question}\n\nExcerpt:\n"
)
COMBINE_PROMPT = (
    "Each partial answer below was found in one part of a long document. Combine them into "
    "one final answer to the question. Reply with the answer only.\n\n"
    "Question: {question}\n\nPartial answers:\n"
)

RECORDS_RE = re.compile(r"For every record from (?P<users>.+?), give its label\.")
LABEL_USERS_RE = re.compile(
    r"List the user ID of every record whose instance has the label '(?P<label>[^']+)'"
)
NEEDLE_RE = re.compile(r"\AFind the special magic number for (?P<key>[\w-]+) in the text below")
EXCERPT_RE = re.compile(r"\AAnswer the question using only the excerpt below\.")
COMBINE_RE = re.compile(r"\AEach partial answer below was found in one part of a long document")
QUESTION_RE = re.compile(r"^Question: (?P<question>.*)$", re.MULTILINE)
