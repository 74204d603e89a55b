"""The namespace model code runs in: ``context``, the helpers bound into it, execution."""

from __future__ import annotations

import ast
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
            "FINAL": self.final_text,
            "FINAL_VAR": self.final_var,
            "SHOW_VARS": self.show_vars,
        }

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

    def rlm_query(self, prompt: Any, context: Any = None) -> str:
        return self._host("rlm", [str(prompt)], context=context)[0]

    def final_text(self, text: Any) -> str:
        self.final = str(text)
        return self.final

    def final_var(self, name: Any) -> str:
        key = str(name).strip().strip("'\"")
        if key not in self.ns:
            raise NameError(f"FINAL_VAR: no variable named {key!r} in the REPL")
        self.final = str(self.ns[key])
        return self.final

    def show_vars(self) -> dict[str, str]:
        return {k: type(v).__name__ for k, v in self.ns.items() if not k.startswith("__")}

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
        }

    def _run(self, code: str) -> None:
        linecache.cache["<repl>"] = (len(code), None, code.splitlines(True), "<repl>")
        tree = ast.parse(code, "<repl>", "exec")
        last = tree.body[-1] if tree.body else None
        if isinstance(last, ast.Expr):
            # Like an interactive session: show the value of a trailing expression.
            tree.body.pop()
            exec(compile(tree, "<repl>", "exec"), self.ns)
            value = eval(compile(ast.Expression(last.value), "<repl>", "eval"), self.ns)
            if value is not None:
                print(repr(value))
        else:
            exec(compile(tree, "<repl>", "exec"), self.ns)

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
