"""The namespace model code runs in: ``context``, the helpers bound into it, execution."""

from __future__ import annotations

import io
import itertools
import math
import mmap
import os
import resource
import sys

from rlm_router.rlm_core.worker import cjson
from rlm_router.rlm_core.worker.framing import Channel, FrameTooBig
from rlm_router.rlm_core.worker.spill import Spill

TYPE_CHECKING = False
if TYPE_CHECKING:  # not typing, json, contextlib or traceback at start-up: see __main__
    from typing import Any

_MAX_VARIABLES = 200  # names listed back to the model after each execution


class _Capture(io.TextIOBase):
    """stdout/stderr replacement that keeps at most ``cap`` characters and counts the rest.

    What is kept is also written through to ``spill``, a file the host opened outside
    scratch, so output printed before a wall-time kill survives the kill.
    """

    def __init__(self, cap: int, spill: Spill | None = None) -> None:
        self.cap = cap
        self.parts: list[str] = []
        self.kept = 0
        self.total = 0
        self.spill = spill

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        size = len(text)
        self.total += size
        if self.kept < self.cap:
            piece = text[: self.cap - self.kept]
            self.parts.append(piece)
            self.kept += len(piece)
            if self.spill is not None:
                self.spill.write(piece)
        return size

    def value(self) -> str:
        return "".join(self.parts)


_RECURSION_LIMIT = sys.getrecursionlimit()
# Python-to-Python calls do not use the C stack (3.11), so a model that raises the limit to
# millions recurses for seconds and gigabytes before it fails; a capped limit fails fast.
_MAX_RECURSION_LIMIT = 20_000
_set_recursion_limit = sys.setrecursionlimit


def _capped_recursion_limit(limit: int) -> None:
    _set_recursion_limit(min(int(limit), _MAX_RECURSION_LIMIT))


class CpuLimitExceeded(BaseException):
    """Raised in model code when the per-execution CPU allowance is used up."""


class SubCallError(RuntimeError):
    """A sub-call the host could not complete (raised in model code)."""


class Repl:
    def __init__(
        self, channel: Channel, context: Any, limits: dict[str, int], spill_fd: int | None = None
    ) -> None:
        self.channel = channel
        self.limits = limits
        self.spill = Spill(spill_fd) if spill_fd is not None else None
        self.main_pid = os.getpid()
        self.final: str | None = None
        self.answer: dict[str, Any] = {"content": "", "ready": False}
        sys.setrecursionlimit = _capped_recursion_limit
        _Source.watch()
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
        try:
            reply = self.channel.call({"op": "llm", "kind": kind, "prompts": prompts, **extra})
        except FrameTooBig as exc:
            raise SubCallError(f"{exc}; send smaller prompts or fewer at a time") from None
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

    def user_variables(self, limit: int | None = None) -> list[str]:
        """Names the model's code created (helpers and dunders left out), the first
        ``limit`` of them (a namespace of millions must not cost each execution a scan)."""
        names = (k for k in self.ns if not k.startswith("_") and k not in self.helpers)
        return list(itertools.islice(names, limit))

    def show_vars(self) -> str:
        listing = {k: type(self.ns[k]).__name__ for k in self.user_variables()}
        if not listing:
            return "No variables created yet. Use ```repl blocks to create variables."
        return f"Available variables: {listing}"

    # host requests
    def _guarded(
        self, work: Any, cpu_s: int, capture: _Capture, used: float | None = None
    ) -> tuple[str | None, str | None]:
        """Run ``work()`` under the per-execution CPU limit with output captured: returns
        (error text, limit hit). Model code may raise anything, SystemExit included. ``used``
        is the CPU used so far when the caller has just read it (one getrusage less)."""
        used = _cpu_used() if used is None else used
        soft = min(math.ceil(used + cpu_s), self.limits["cpu_total_s"])
        resource.setrlimit(resource.RLIMIT_CPU, (soft, self.limits["cpu_total_s"]))
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = capture
        try:
            work()
        except CpuLimitExceeded:
            return (
                f"CpuLimitExceeded: the execution reached its CPU-time limit ({cpu_s} s) and "
                "was stopped; variables set before that are kept.\n"
            ), "cpu"
        except MemoryError as exc:
            return _format_error(exc) + "(the sandbox memory limit was reached)\n", "memory"
        except RecursionError as exc:
            return _format_error(exc, frames=8), None
        except BaseException as exc:
            return _format_error(exc), None
        finally:
            sys.stdout, sys.stderr = saved
            if os.getpid() != self.main_pid:
                os._exit(0)  # a fork made by model code must never talk on the channel
            # The worker's own work (encoding the reply) must not trip the execution's limits.
            total = self.limits["cpu_total_s"]
            resource.setrlimit(resource.RLIMIT_CPU, (total, total))
            _set_recursion_limit(_RECURSION_LIMIT)
        return None, None

    def execute(self, code: str, cpu_s: int) -> dict[str, Any]:
        capture = _Capture(self.limits["output_bytes"], self.spill)
        self.final = None
        started = _cpu_used()
        error, limit = self._guarded(lambda: self._run(code), cpu_s, capture, started)
        # The answer dict's values are model objects too (a __str__ may raise or spin), so
        # they are read under the same limits, and a failure is the model's error to see.
        answer: dict[str, Any] = {"content": "", "ready": False}

        def extract() -> None:
            answer["ready"] = bool(self.answer.get("ready"))
            answer["content"] = str(self.answer.get("content", ""))

        plain = _plain_answer(self.answer) if limit is None else None
        if plain is not None:  # reading it runs no model code: no guard needed
            answer["content"], answer["ready"] = plain
        elif limit is None:
            failed, limit = self._guarded(extract, cpu_s, capture)
            if failed:
                answer.update(content="", ready=False)
                error = (error or "") + "Reading answer['content'] failed:\n" + failed
        if answer["ready"] and self.final is None:
            self.final = answer["content"]
        return {
            "op": "done",
            "stdout": capture.value(),
            "stdout_chars": capture.total,
            "truncated": capture.total > capture.kept,
            "error": error,
            "limit": limit,
            "final": self.final,
            "answer": answer,
            "cpu_s": round(_cpu_used() - started, 4),
            "variables": self.user_variables(_MAX_VARIABLES),
        }

    def _run(self, code: str) -> None:
        # A trailing bare expression is discarded, as in the official engine (0.1.1 and
        # 0.1.3 alike; its prompt says so, and so does ours): only print() output is shown.
        _Source.show(code)
        exec(compile(code, "<repl>", "exec"), self.ns)

    def get(self, name: str, cpu_s: int) -> dict[str, Any]:
        """``str()`` of a variable for FINAL_VAR, under the same limits as an execution."""
        if name not in self.ns:
            return {"op": "value", "found": False, "error": None, "limit": None}
        text: list[str] = []
        capture = _Capture(self.limits["output_bytes"])
        error, limit = self._guarded(lambda: text.append(str(self.ns[name])), cpu_s, capture)
        if error:
            error = f"FINAL_VAR({name}) failed: str() of the variable raised\n{error}"
            return {"op": "value", "found": True, "error": error, "limit": limit}
        return {"op": "value", "found": True, "value": text[0], "error": None, "limit": None}


def _plain_answer(answer: dict[str, Any]) -> tuple[str, bool] | None:
    """(content, ready) when reading them runs no model code, else None (read under the
    limits). Read from a copy, which model threads cannot change between check and use; its
    keys must be exact ``str`` (a key object's ``__eq__`` would run inside ``get``) and the
    values an exact ``str`` and ``bool``."""
    snapshot = answer.copy()  # copying a dict runs no Python code
    if not all(type(key) is str for key in snapshot):
        return None
    content, ready = snapshot.get("content", ""), snapshot.get("ready", False)
    if type(content) is not str or type(ready) is not bool:
        return None
    return content, ready


class _Source:
    """The code of the latest execution: the lines tracebacks show for "<repl>" frames.

    They live in ``linecache``, imported on first use: by the first traceback formatted here,
    or by model code (``traceback``, ``warnings``). Importing it and ``traceback`` at start-up
    (with tokenize, re, enum, textwrap, collections) cost every worker start ~8 ms of CPU
    (2-core VM, load ~1.5). A finder first on ``sys.meta_path`` sees linecache's import and
    hands it the code as soon as it has run, so no traceback is missing its lines.
    """

    code = ""

    @classmethod
    def show(cls, code: str) -> None:
        cls.code = code
        cls.publish()

    @classmethod
    def publish(cls) -> None:
        linecache = sys.modules.get("linecache")
        if linecache is not None:
            lines = cls.code.splitlines(True)
            linecache.cache["<repl>"] = (len(cls.code), None, lines, "<repl>")

    @classmethod
    def watch(cls) -> None:
        if "linecache" not in sys.modules and _LinecacheImport not in sys.meta_path:
            sys.meta_path.insert(0, _LinecacheImport)


class _LinecacheImport:
    """Meta path finder: finds ``linecache`` with the other finders, and publishes the
    latest execution's code (``_Source``) right after the module has run; then leaves."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> Any:
        if name != "linecache":
            return None
        sys.meta_path.remove(_LinecacheImport)
        for finder in sys.meta_path:
            spec: Any = (
                finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            )
            if spec is not None and spec.loader is not None:
                spec.loader = _Publishing(spec.loader)
                return spec
        return None


class _Publishing:
    """A loader that runs ``loader``, then publishes the code into the new module."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)  # in sys.modules already while it runs
        _Source.publish()


def _format_error(exc: BaseException, frames: int | None = None) -> str:
    """The traceback from the model's own code on, without the worker's frames (only the
    last ``frames`` entries when given: a RecursionError's thousands of frames say nothing,
    and formatting a million of them would outlast the wall limit)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != "<repl>":
        tb = tb.tb_next
    try:
        import traceback  # the first error of the worker's life pays its import (_Source)

        if frames is None:
            return "".join(traceback.format_exception(type(exc), exc, tb))
        tail: list[Any] = []
        skipped = 0
        while tb is not None:
            tail.append(tb)
            if len(tail) > frames:
                tail.pop(0)
                skipped += 1
            tb = tb.tb_next
        summary = traceback.StackSummary.extract((t.tb_frame, t.tb_lineno) for t in tail)
        head = "Traceback (most recent call last):\n"
        if skipped:
            head += f"  ... {skipped:,} earlier frames ...\n"
        body = "".join(summary.format())
        return head + body + "".join(traceback.format_exception_only(type(exc), exc))
    except BaseException:  # a hostile exception whose formatting fails or spins
        return f"{type(exc).__name__} (its traceback could not be formatted)\n"


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def on_xcpu(signum: int, frame: Any) -> None:
    raise CpuLimitExceeded


def load_context(fd: int, kind: str) -> Any:
    """Map the context file (a read-only descriptor the host opened outside scratch, closed
    here) and decode it once, with no intermediate bytes copy."""
    with open(fd, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return "" if kind == "text" else None
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                text = str(view, "utf-8")
            finally:
                view.release()
    return text if kind == "text" else cjson.loads(text)
