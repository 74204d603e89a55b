"""The namespace model code runs in: ``context``, the helpers bound into it, execution."""

from __future__ import annotations

import io
import json
import linecache
import math
import mmap
import os
import resource
import sys
import traceback
from typing import Any

from rlm_core.worker.framing import Channel

_MAX_VARIABLES = 200  # names listed back to the model after each execution


class _Capture(io.TextIOBase):
    """stdout/stderr replacement that keeps at most ``cap`` bytes and counts the rest."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[str] = []
        self.kept = 0
        self.total = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        size = len(text)
        self.total += size
        if self.kept < self.cap:
            piece = text[: self.cap - self.kept]
            self.parts.append(piece)
            self.kept += len(piece)
        return size

    def value(self) -> str:
        return "".join(self.parts)


class CpuLimitExceeded(BaseException):
    """Raised in model code when the per-execution CPU allowance is used up."""


class SubCallError(RuntimeError):
    """A sub-call the host could not complete (raised in model code)."""


class Repl:
    def __init__(self, channel: Channel, context: Any, limits: dict[str, int]) -> None:
        self.channel = channel
        self.limits = limits
        self.main_pid = os.getpid()
        self.final: str | None = None
        self.answer: dict[str, Any] = {"content": "", "ready": False}
        self.ns: dict[str, Any] = {
            "__name__": "__main__",
            "__builtins__": __builtins__,
            "context": context,
            "answer": self.answer,
            "llm_query": self.llm_query,
            "llm_query_batched": self.llm_query_batched,
            "rlm_query": self.rlm_query,
            "rlm_query_batched": self.rlm_query_batched,
            "FINAL": self.final_text,
            "FINAL_VAR": self.final_var,
            "SHOW_VARS": self.show_vars,
        }
        self.helpers = frozenset(k for k in self.ns if k not in ("context", "answer"))

    # functions visible to model code
    def _host(self, kind: str, prompts: list[str], **extra: Any) -> list[str]:
        if os.getpid() != self.main_pid:
            raise SubCallError("llm_query is only available in the main REPL process")
        reply = self.channel.call({"op": "llm", "kind": kind, "prompts": prompts, **extra})
        if reply.get("error"):
            raise SubCallError(reply["error"])
        results: list[str] = reply["results"]
        return results

    def llm_query(self, prompt: Any, model: str | None = None) -> str:
        return self._host("query", [str(prompt)], model=model)[0]

    def llm_query_batched(self, prompts: Any, model: str | None = None) -> list[str]:
        items = [str(p) for p in prompts]
        return self._host("batched", items, model=model) if items else []

    def rlm_query(self, prompt: Any, model: str | None = None, context: Any = None) -> str:
        # The official signature is (prompt, model=None); ``context=`` is ours, keyword only
        # in practice: a child's data travels beside its prompt instead of inside it.
        return self._host("rlm", [str(prompt)], model=model, context=context)[0]

    def rlm_query_batched(self, prompts: Any, model: str | None = None) -> list[str]:
        items = [str(p) for p in prompts]
        return self._host("rlm_batched", items, model=model) if items else []

    def final_text(self, text: Any) -> str:
        self.final = str(text)
        return self.final

    def final_var(self, name: Any) -> str:
        key = str(name).strip().strip("'\"")
        if key in self.ns:
            self.final = str(self.ns[key])
        elif key.isidentifier():
            raise NameError(
                f"FINAL_VAR: no variable named {key!r} in the REPL; assign it first "
                f"(your variables: {self.user_variables()[:20]})"
            )
        else:
            self.final = str(name)  # the answer text itself, passed where a name belongs
        return self.final

    def user_variables(self) -> list[str]:
        """Names the model's code created (helpers and dunders left out)."""
        return [k for k in self.ns if not k.startswith("_") and k not in self.helpers]

    def show_vars(self) -> str:
        listing = {k: type(self.ns[k]).__name__ for k in self.user_variables()}
        if not listing:
            return "No variables created yet. Use ```repl blocks to create variables."
        return f"Available variables: {listing}"

    # host requests
    def execute(self, code: str, cpu_s: int) -> dict[str, Any]:
        capture = _Capture(self.limits["output_bytes"])
        self.final = None
        error: str | None = None
        limit: str | None = None
        used = _cpu_used()
        soft = min(math.ceil(used + cpu_s), self.limits["cpu_total_s"])
        resource.setrlimit(resource.RLIMIT_CPU, (soft, self.limits["cpu_total_s"]))
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = capture
        try:
            self._run(code)
        except CpuLimitExceeded:
            limit = "cpu"
            error = (
                f"CpuLimitExceeded: the execution reached its CPU-time limit ({cpu_s} s) and "
                "was stopped; variables set before that are kept.\n"
            )
        except MemoryError as exc:
            limit = "memory"
            error = _format_error(exc) + "(the sandbox memory limit was reached)\n"
        except BaseException as exc:  # model code may raise anything, SystemExit included
            error = _format_error(exc)
        finally:
            sys.stdout, sys.stderr = saved
            if os.getpid() != self.main_pid:
                os._exit(0)  # a fork made by model code must never talk on the channel
        if self.answer.get("ready") and self.final is None:
            self.final = str(self.answer.get("content", ""))
        return {
            "op": "done",
            "stdout": capture.value(),
            "stdout_chars": capture.total,
            "truncated": capture.total > capture.kept,
            "error": error,
            "limit": limit,
            "final": self.final,
            "answer": {
                "content": str(self.answer.get("content", "")),
                "ready": bool(self.answer.get("ready")),
            },
            "cpu_s": round(_cpu_used() - used, 4),
            "variables": self.user_variables()[:_MAX_VARIABLES],
        }

    def _run(self, code: str) -> None:
        # A trailing bare expression is discarded, as in the official engine (0.1.1 and
        # 0.1.3 alike; its prompt says so, and so does ours): only print() output is shown.
        linecache.cache["<repl>"] = (len(code), None, code.splitlines(True), "<repl>")
        exec(compile(code, "<repl>", "exec"), self.ns)

    def get(self, name: str) -> dict[str, Any]:
        if name not in self.ns:
            return {"op": "value", "found": False}
        return {"op": "value", "found": True, "value": str(self.ns[name])}


def _format_error(exc: BaseException) -> str:
    """The traceback from the model's own code on, without the worker's frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != "<repl>":
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def on_xcpu(signum: int, frame: Any) -> None:
    raise CpuLimitExceeded


def load_context(path: str, kind: str) -> Any:
    """Map the context file and decode it once (no intermediate bytes copy)."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return "" if kind == "text" else json.loads("null")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                text = str(view, "utf-8")
            finally:
                view.release()
    return text if kind == "text" else json.loads(text)
