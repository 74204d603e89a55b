"""The worker→host frame protocol, validated at the boundary: every byte from the worker is
untrusted input.

Model code runs in the worker process and can write anything to any descriptor it holds,
the pipe to the host included (``os.write(1, ...)``, or a handle found by ``gc`` or
``ctypes``). No secret kept in that process would stop it: whatever the REPL helpers can
read, model code can read (``ctypes.string_at``, ``/proc/self/mem``). So the guarantee is
built here instead, where the model cannot reach: a frame is taken apart only after its
length was checked against ``max_bytes`` (before anything is read or allocated), its JSON
parsed, and its shape checked against the schema below. A forged frame can then ask for no
more than the helpers can (text prompts, under the same budgets), and anything else becomes
a ``FrameError`` the sandbox answers or counts, never an exception in the host.

    Frame = ReadyFrame | SubCallRequest | DoneFrame | ValueFrame

    FrameError            the frame is unusable (malformed JSON, wrong shape, unknown op)
    └── FrameTooLarge     the length prefix is above the limit; the stream cannot be
                          resynchronised, so the worker must be restarted

Prompts are text only: a content part list (``image_url``, ``file`` with a URL) is rejected,
never handed to the provider client, so no URL chosen by model code is fetched by the host.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import TypeAlias, cast

from rlm_router.rlm_core.worker.framing import HEADER

JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None

MAX_DEPTH = 64  # nesting of an rlm_query context; json itself stops at ~1,000 (RecursionError)
MAX_PROMPTS = 10_000  # per llm_query_batched frame
_MAX_NAME = 256  # model names and similar short strings
SUB_CALL_KINDS = ("query", "batched", "rlm", "rlm_batched")
_LIMITS = ("cpu", "memory", None)


class FrameError(Exception):
    """A frame from the worker that cannot be acted on; the message says why."""

    def __init__(
        self, message: str, *, op: str | None = None, request_id: int | None = None
    ) -> None:
        super().__init__(message)
        self.op = op  # the frame's op when it had a recognisable one (a request to answer)
        self.request_id = request_id


class FrameTooLarge(FrameError):
    """The length prefix exceeds the limit; nothing after it can be trusted."""


@dataclass(frozen=True)
class ReadyFrame:
    """The worker's start-up report: what confinement held."""

    pid: int
    sandbox: dict[str, JSONValue]


@dataclass(frozen=True)
class SubCallRequest:
    """``llm_query`` (query: one prompt), ``llm_query_batched`` (batched: many), ``rlm_query``
    (rlm: one prompt, optional context), ``rlm_query_batched`` (rlm_batched: many)."""

    kind: str
    prompts: list[str]
    model: str | None = None
    context: JSONValue = None
    request_id: int | None = None  # echoed in the reply; the worker matches replies by it


@dataclass(frozen=True)
class DoneFrame:
    """The end of one execution."""

    stdout: str
    stdout_chars: int
    truncated: bool
    error: str | None
    limit: str | None
    final: str | None
    answer_content: str
    answer_ready: bool
    cpu_s: float
    variables: list[str] | None = None  # the model's variable names, listed in the next turn


@dataclass(frozen=True)
class ValueFrame:
    """The ``str()`` of a REPL variable (or why it could not be had)."""

    found: bool
    value: str | None = None
    error: str | None = None
    limit: str | None = None


Frame: TypeAlias = ReadyFrame | SubCallRequest | DoneFrame | ValueFrame


@dataclass
class FrameReader:
    """Reads frames off the worker's stdout with the length bounded before reading."""

    stream: asyncio.StreamReader
    max_bytes: int
    bytes_read: int = field(default=0)

    async def read(self) -> Frame:
        """The next frame, or FrameError. EOF surfaces as asyncio.IncompleteReadError."""
        header = await self.stream.readexactly(HEADER.size)
        (size,) = HEADER.unpack(header)
        if size > self.max_bytes:
            raise FrameTooLarge(
                f"a frame of {size:,} bytes from the REPL exceeds the limit of "
                f"{self.max_bytes:,} bytes"
            )
        body = await self.stream.readexactly(size)
        self.bytes_read += HEADER.size + size
        return parse(body)


def parse(body: bytes) -> Frame:
    """One frame body, checked against the schema."""
    try:
        message = json.loads(body)
    except RecursionError:
        raise FrameError("the frame is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"the frame is not JSON ({exc.__class__.__name__})") from None
    if not isinstance(message, dict):
        raise FrameError(f"a frame must be a JSON object, not {type(message).__name__}")
    op = message.get("op")
    if op == "llm":
        return _sub_call(message)
    if op == "done":
        return _done(message)
    if op == "value":
        return _value(message)
    if op == "ready":
        return _ready(message)
    shown = repr(op)[:40] if op is not None else "none"
    raise FrameError(f"unknown frame op {shown}")


def _sub_call(message: dict[str, object]) -> SubCallRequest:
    request_id = message.get("id")
    if not isinstance(request_id, int) or isinstance(request_id, bool):
        request_id = None

    def bad(why: str) -> FrameError:
        return FrameError(f"invalid sub-call request: {why}", op="llm", request_id=request_id)

    kind = message.get("kind")
    if kind not in SUB_CALL_KINDS:
        raise bad(f"kind must be one of {list(SUB_CALL_KINDS)}")
    prompts = message.get("prompts")
    if not isinstance(prompts, list):
        raise bad("prompts must be a list of strings")
    if not prompts or len(prompts) > MAX_PROMPTS:
        raise bad(f"between 1 and {MAX_PROMPTS:,} prompts are allowed, got {len(prompts):,}")
    if kind in ("query", "rlm") and len(prompts) != 1:
        raise bad(f"{kind} takes exactly one prompt")
    for prompt in prompts:
        if not isinstance(prompt, str):
            # Content parts (image_url, file, ...) would make the host fetch what they name.
            raise bad(f"prompts are text only, got a {type(prompt).__name__}")
    model = message.get("model")
    if model is not None and (not isinstance(model, str) or len(model) > _MAX_NAME):
        raise bad("model must be a model name or None")
    context = message.get("context")
    if context is not None:
        if kind != "rlm":
            raise bad("only rlm_query takes a context")
        if _too_deep(context):
            raise bad(f"the context is nested deeper than {MAX_DEPTH} levels")
    return SubCallRequest(
        kind=str(kind),
        prompts=list(prompts),
        model=model,
        context=cast(JSONValue, context),  # json.loads output: JSON values only
        request_id=request_id,
    )


def _too_deep(value: object) -> bool:
    """Whether a context nests deeper than MAX_DEPTH (iteratively: no recursion to exhaust)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def _text(message: dict[str, object], key: str, *, optional: bool = False) -> str | None:
    value = message.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise FrameError(f"{message.get('op')} frame: {key} must be a string")
    return value


def _done(message: dict[str, object]) -> DoneFrame:
    answer = message.get("answer")
    if not isinstance(answer, dict):
        raise FrameError("done frame: answer must be an object")
    content, ready = answer.get("content", ""), answer.get("ready", False)
    stdout_chars, cpu_s = message.get("stdout_chars"), message.get("cpu_s")
    limit, variables = message.get("limit"), message.get("variables")
    if not isinstance(content, str) or not isinstance(ready, bool):
        raise FrameError("done frame: answer must hold a string content and a bool ready")
    if not isinstance(stdout_chars, int) or isinstance(stdout_chars, bool) or stdout_chars < 0:
        raise FrameError("done frame: stdout_chars must be a count")
    if not isinstance(cpu_s, int | float) or isinstance(cpu_s, bool):
        raise FrameError("done frame: cpu_s must be a number")
    if limit not in _LIMITS:
        raise FrameError("done frame: limit must be cpu, memory or None")
    return DoneFrame(
        stdout=_text(message, "stdout") or "",
        stdout_chars=stdout_chars,
        truncated=bool(message.get("truncated")),
        error=_text(message, "error", optional=True),
        limit=limit,
        final=_text(message, "final", optional=True),
        answer_content=content,
        answer_ready=ready,
        cpu_s=float(cpu_s),
        variables=[str(name) for name in variables] if isinstance(variables, list) else None,
    )


def _value(message: dict[str, object]) -> ValueFrame:
    found = message.get("found")
    limit = message.get("limit")
    if not isinstance(found, bool):
        raise FrameError("value frame: found must be a bool")
    if limit not in _LIMITS:
        raise FrameError("value frame: limit must be cpu, memory or None")
    return ValueFrame(
        found=found,
        value=_text(message, "value", optional=True),
        error=_text(message, "error", optional=True),
        limit=limit,
    )


def _ready(message: dict[str, object]) -> ReadyFrame:
    pid, sandbox = message.get("pid"), message.get("sandbox")
    if not isinstance(pid, int) or not isinstance(sandbox, dict):
        raise FrameError("ready frame: pid must be an int and sandbox an object")
    return ReadyFrame(pid=pid, sandbox=sandbox)
