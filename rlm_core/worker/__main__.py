"""Entry point of the worker process: lock down, load the context, serve the host's requests.

Run as ``python -I -S -B <rlm_core/worker/__main__.py> <config-json>``. Python puts this
directory first on ``sys.path``; it is replaced by bare ``rlm_router`` and
``rlm_router.rlm_core`` package objects, the second pointing at the parent directory, so the
worker's modules import under their real names (the host imports
``rlm_router.rlm_core.worker.framing`` too) without running the packages' ``__init__`` (which
needs litellm).
"""

from __future__ import annotations

# Not ``signal``, ``json``, ``typing`` or ``contextlib`` here and in the modules below, nor
# ``traceback``/``linecache`` before they are needed (repl._Source): signal builds enums,
# json compiles regular expressions, and with re, enum, tokenize and collections, which
# they import, they cost every worker start ~25 ms of CPU (2-core VM, load ~2). ``_signal``
# is the C module that ``signal`` wraps in enums; ``cjson`` is json's own C scanner and
# encoder.
import _signal  # type: ignore[import-not-found]  # (no stubs)
import os
import resource
import sys
import time
import types

if __package__ in (None, ""):  # started from its directory, not imported
    # Bare package objects, so the worker's modules import under their real names without
    # running rlm_router/__init__ or rlm_core/__init__ (which would need litellm).
    _top = types.ModuleType("rlm_router")
    _top.__path__ = []
    _core = types.ModuleType("rlm_router.rlm_core")
    _core.__path__ = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    _top.rlm_core = _core  # type: ignore[attr-defined]
    sys.modules.setdefault("rlm_router", _top)
    sys.modules.setdefault("rlm_router.rlm_core", _core)
    del sys.path[0]
    _code_fd = os.environ.pop("RLM_WORKER_CODE_FD", None)
    if _code_fd is not None:
        # The host's compiled copy of the modules below (rlm_core.launch.compiled_worker_fd):
        # executed as those modules instead of compiling their source at every start.
        import marshal

        import rlm_router.rlm_core.worker as _package

        _fd = int(_code_fd)  # shared with every worker: read at offset 0, not the file's
        _compiled = marshal.loads(os.pread(_fd, os.fstat(_fd).st_size, 0))
        os.close(_fd)
        for _name, _path, _code in _compiled:
            _module = types.ModuleType(f"{_package.__name__}.{_name}")
            _module.__file__ = _path
            _module.__package__ = _package.__name__
            sys.modules[_module.__name__] = _module
            setattr(_package, _name, _module)
            exec(_code, _module.__dict__)

from rlm_router.rlm_core.worker import cjson
from rlm_router.rlm_core.worker.framing import Channel, FrameTooBig
from rlm_router.rlm_core.worker.lockdown import lockdown
from rlm_router.rlm_core.worker.repl import Repl, load_context, on_xcpu

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def main() -> None:
    started = time.perf_counter()
    config: dict[str, Any] = cjson.loads(sys.argv[1])  # type: ignore[assignment]
    os.chdir(config["scratch"])
    report = lockdown(config)
    limits = config["limits"]
    channel = Channel(limits["max_frame_bytes"])
    _signal.signal(_signal.SIGXCPU, on_xcpu)
    kind = config["context_kind"]
    if kind is None:
        # Pre-started (rlm_core.pool): locked down before the context exists. Say so, then
        # wait for the host to write the context into the file behind context_fd and name
        # its kind and the memory limit that fits it. No model code has run yet, so the
        # process may still set its own address-space limit here.
        report["startup_s"] = round(time.perf_counter() - started, 6)
        channel.send({"op": "ready", "pid": os.getpid(), "sandbox": report})
        try:
            assign = channel.recv()
        except EOFError:
            return
        if assign.get("op") != "context":
            return
        kind = assign["kind"]
        memory = int(assign["memory_bytes"])
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    loaded = time.perf_counter()
    context = load_context(config["context_fd"], kind)
    report["context_load_s"] = round(time.perf_counter() - loaded, 6)
    report["startup_s"] = report.get("startup_s", round(time.perf_counter() - started, 6))
    spill_fd = config["spill_fd"]
    os.set_inheritable(spill_fd, False)
    repl = Repl(channel, context, limits, spill_fd)
    channel.send({"op": "ready", "pid": os.getpid(), "sandbox": report})
    while True:
        try:
            request = channel.recv()
        except EOFError:
            return
        if request["op"] == "exec":
            reply = repl.execute(request["code"], int(request["cpu_s"]))
        elif request["op"] == "get":
            reply = repl.get(request["name"], int(request["cpu_s"]))
        elif request["op"] == "reply":
            continue  # the answer to a request that model code forged on the pipe
        else:
            return
        if report["pid_namespace"]:
            _kill_leftovers()
        try:
            channel.send(reply)
        except FrameTooBig as exc:
            # A final answer or value above the frame limit: say so instead of sending it.
            channel.send(_too_big(reply, str(exc)))
        if repl.spill is not None:
            repl.spill.clear()


def _kill_leftovers() -> None:
    """Kill every process model code started during the execution, and reap them. This
    process is PID 1 of the sandbox's PID namespace: kill(-1) reaches every other process
    in it and nothing outside it. Every process in the namespace descends from this one (an
    orphan is re-parented to it), so no child means nothing to kill."""
    try:
        os.waitpid(-1, os.WNOHANG)  # reaps one that exited already; the loop below the rest
    except ChildProcessError:
        return
    try:  # noqa: SIM105 (no contextlib, for the start-up time: see the imports)
        os.kill(-1, _signal.SIGKILL)
    except ProcessLookupError:  # they exited meanwhile: the loop below reaps them
        pass
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return
        except InterruptedError:
            continue


def _too_big(reply: dict[str, Any], why: str) -> dict[str, Any]:
    error = f"ResultTooLarge: {why}; the final answer or value was dropped.\n"
    if reply["op"] == "value":
        return {"op": "value", "found": True, "error": error, "limit": None}
    stdout = reply["stdout"][:100_000]
    return {
        **reply, "stdout": stdout, "truncated": True, "final": None, "error": error,
        "answer": {"content": "", "ready": False},
    }  # fmt: skip


if __name__ == "__main__":
    main()
