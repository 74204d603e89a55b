"""The REPL worker: the program that runs inside the sandbox process (standard library only).

Started by ``rlm_core.sandbox`` as ``python -I -S worker.py <config-json>``. It never imports
``rlm_core`` (isolated mode puts nothing but the standard library on ``sys.path``), so the frame
format below is a deliberate copy of the host's (``rlm_core.sandbox``).

Start-up order matters: the worker first locks itself down (network namespace, Landlock,
resource limits, unprivileged uid), then maps and decodes the context once, then serves
``exec`` / ``get`` requests on the pipe that was its stdin/stdout. Model code talks to the
host only through ``llm_query*`` / ``rlm_query`` frames; the host makes the provider calls.
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import io
import json
import linecache
import math
import mmap
import os
import resource
import signal
import struct
import sys
import threading
import time
import traceback
from typing import Any

_HEADER = struct.Struct(">I")

# No capability survives the uid drop (CAP_DAC_READ_SEARCH would allow open_by_handle_at, a
# way around path rules). Where the interpreter's directory is closed to the unprivileged uid
# (e.g. under /root) and /proc is missing, these are imported beforehand; others then fail.
_PRELOAD = (
    "re", "json", "collections", "collections.abc", "math", "itertools", "functools",
    "statistics", "string", "textwrap", "datetime", "heapq", "bisect", "random", "hashlib",
    "base64", "decimal", "fractions", "operator", "copy", "pprint", "dataclasses", "enum",
    "typing", "difflib", "unicodedata", "csv", "html", "calendar", "zlib", "array", "struct",
    "time", "traceback", "io", "ast", "concurrent.futures", "socket", "subprocess",
    "encodings.idna", "encodings.latin_1", "encodings.ascii", "encodings.utf_16",
    "encodings.cp1252",
)  # fmt: skip

# Linux constants (include/uapi).
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_CAP_VERSION_3 = 0x20080522
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1, 2, 4, 8
_FS_WRITE_ALL = sum(1 << bit for bit in (4, 5, 6, 7, 8, 9, 10, 11, 12))  # remove/make_*
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1, 2
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1, 2


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _errno_text() -> str:
    return os.strerror(ctypes.get_errno())


# --- lockdown ---------------------------------------------------------------------------------


def _isolate_network(use_namespace: bool, report: dict[str, Any]) -> None:
    if use_namespace:
        flags = _CLONE_NEWNET if os.geteuid() == 0 else _CLONE_NEWUSER | _CLONE_NEWNET
        if _libc.unshare(flags) == 0:
            report["network"] = "namespace"
            return
        reason = _errno_text()
        report["warnings"].append(f"no network namespace ({reason}); sockets blocked in-process")
    report["network"] = "audit-hook"
    _install_socket_block()


def _install_socket_block() -> None:
    blocked = {"socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo"}
    blocked |= {"subprocess.Popen", "os.exec", "os.posix_spawn", "os.system", "ctypes.dlopen"}

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in blocked:
            if event == "socket.__new__" and args and getattr(args[1], "real", 0) == 1:
                return  # AF_UNIX socketpair inside the process is harmless
            raise PermissionError(f"network and processes are disabled in this sandbox ({event})")

    sys.addaudithook(hook)


def _landlock(scratch: str, report: dict[str, Any]) -> bool:
    abi = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        report["warnings"].append(f"no Landlock ({_errno_text()}); filesystem not confined")
        return False
    write_rights = _FS_WRITE_FILE | _FS_WRITE_ALL | (_FS_REFER if abi >= 2 else 0)
    write_rights |= _FS_TRUNCATE if abi >= 3 else 0
    handled = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR | write_rights
    handled |= _FS_IOCTL_DEV if abi >= 5 else 0
    attr = _RulesetAttr(handled, 0, 0)
    size = 8
    if abi >= 4:
        attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL
        size = 24
    ruleset = _libc.syscall(
        _SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)
    )
    if ruleset < 0:
        report["warnings"].append(f"Landlock ruleset failed ({_errno_text()})")
        return False
    read_only = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
    file_only = _FS_EXECUTE | _FS_READ_FILE | _FS_WRITE_FILE | (_FS_TRUNCATE if abi >= 3 else 0)
    readable = {sys.base_prefix, sys.prefix, os.path.dirname(sys.executable), "/usr", "/lib"}
    readable |= {"/lib64", "/etc/localtime", "/usr/share/zoneinfo", "/dev/urandom"}
    rules = [(path, read_only) for path in sorted(readable)]
    rules += [(scratch, handled), ("/dev/null", file_only & handled)]
    try:
        for path, access in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            if not os.path.isdir(path):
                access &= file_only
            beneath = _PathBeneathAttr(access, fd)
            rc = _libc.syscall(
                _SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(1),
                ctypes.byref(beneath), ctypes.c_uint32(0),
            )  # fmt: skip
            os.close(fd)
            if rc != 0:
                report["warnings"].append(f"Landlock rule for {path} failed ({_errno_text()})")
        if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return False
        if _libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)):
            report["warnings"].append(f"Landlock restrict_self failed ({_errno_text()})")
            return False
    finally:
        os.close(ruleset)
    report["filesystem"] = f"landlock-abi{abi}"
    if abi >= 4:
        report["network_tcp"] = "landlock"
    if abi >= 6:
        report["signals"] = "landlock-scope"
    return True


def _drop_privileges(uid: int, gid: int, report: dict[str, Any]) -> None:
    """Become ``uid``/``gid`` with no capabilities at all (when started as root)."""
    if os.geteuid() != 0:
        report["uid"] = os.geteuid()
        return
    for cap in range(64):
        _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)  # without KEEPCAPS this clears every capability set
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)(_CapData(0, 0, 0), _CapData(0, 0, 0))
    if _libc.capset(ctypes.byref(header), data) != 0:
        report["warnings"].append(f"capset failed ({_errno_text()})")
    report["uid"] = os.getuid()


def _reroute_imports(routes: dict[str, str]) -> None:
    """Point sys.path and the search paths of already imported packages at the new roots."""

    def moved(path: str) -> str:
        for old, new in routes.items():
            if path == old or path.startswith(old + os.sep):
                return new + path[len(old) :]
        return path

    sys.path[:] = [moved(p) for p in sys.path]
    for module in list(sys.modules.values()):
        search = getattr(module, "__path__", None)
        if isinstance(search, list):
            search[:] = [moved(p) for p in search]
    sys.path_importer_cache.clear()


def _readable_by_others(path: str) -> bool:
    """Whether every directory down to ``path`` lets other users through (o+x)."""
    current = os.path.abspath(path)
    while True:
        try:
            if not os.stat(current).st_mode & 0o001:
                return False
        except OSError:
            return False
        parent = os.path.dirname(current)
        if parent == current:
            return True
        current = parent


def _set_limits(limits: dict[str, int]) -> None:
    def cap(kind: int, value: int) -> None:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(kind, (value, value))

    cap(resource.RLIMIT_AS, limits["memory_bytes"])
    cap(resource.RLIMIT_NPROC, limits["max_processes"])
    cap(resource.RLIMIT_FSIZE, limits["max_file_bytes"])
    cap(resource.RLIMIT_NOFILE, limits["max_open_files"])
    cap(resource.RLIMIT_CORE, 0)
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_total_s"], limits["cpu_total_s"]))


def _enter_pid_namespace(host_pid: int, report: dict[str, Any]) -> None:
    """Become PID 1 of a fresh PID namespace, so that killing this process kills everything
    model code started (even processes that left the process group). The original process
    stays behind as a stub that waits and mirrors the exit status."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != host_pid:
        os._exit(0)
    if os.geteuid() != 0 or _libc.unshare(_CLONE_NEWPID) != 0:
        report["pid_namespace"] = False
        report["warnings"].append("no PID namespace; forked processes are killed by group only")
        return
    child = os.fork()
    if child == 0:
        report["pid_namespace"] = True
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):  # only the REPL process keeps the channel open
        os.dup2(devnull, fd)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except ChildProcessError:
            os._exit(1)
        except InterruptedError:
            continue
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def lockdown(config: dict[str, Any]) -> dict[str, Any]:
    """Confine this process; return what held (the host logs what did not)."""
    report: dict[str, Any] = {"warnings": [], "network": "none", "filesystem": "none"}
    _enter_pid_namespace(config["host_pid"], report)
    _isolate_network(bool(config.get("network_namespace", True)), report)
    _set_limits(config["limits"])
    _landlock(config["scratch"], report)
    held: list[int] = []
    if os.geteuid() == 0 and not _readable_by_others(os.path.dirname(os.__file__)):
        if os.path.isdir("/proc/self/fd"):
            # Keep the standard library importable through directory descriptors opened
            # while still root: /proc/self/fd/N reaches the directory without walking the
            # closed path. Landlock still checks what is read beneath it.
            roots = [p for p in sys.path if os.path.isdir(p)]
            held = [os.open(p, os.O_RDONLY | os.O_DIRECTORY) for p in roots]
            report["import_path"] = "fd"
        else:
            report["import_path"] = "preloaded"
            for name in _PRELOAD:
                with contextlib.suppress(ImportError):
                    __import__(name)
    _drop_privileges(config["uid"], config["gid"], report)
    if held:
        _libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)  # the uid change made /proc/self root-only
        _reroute_imports(dict(zip(roots, (f"/proc/self/fd/{fd}" for fd in held), strict=True)))
    if report["filesystem"] == "none" and report.get("uid") == 0:
        report["warnings"].append("worker runs as root without Landlock: files are not protected")
    # Credential changes clear the death signal: arm it again for this process.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if not report["pid_namespace"] and os.getppid() != config["host_pid"]:
        os._exit(0)  # the host died before the death signal was armed
    return report


# --- framing ----------------------------------------------------------------------------------


class Channel:
    """Length-prefixed JSON frames over the pipe pair inherited as stdin/stdout."""

    def __init__(self) -> None:
        self._rfd = os.dup(0)
        self._wfd = os.dup(1)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # model code writing to fd 1/2 must not corrupt the channel
            os.dup2(devnull, fd)
        os.close(devnull)
        self._lock = threading.Lock()

    def _read_exact(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = os.read(self._rfd, min(n, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def recv(self) -> dict[str, Any]:
        (size,) = _HEADER.unpack(self._read_exact(_HEADER.size))
        message: dict[str, Any] = json.loads(self._read_exact(size))
        return message

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message, default=str).encode("utf-8", "surrogatepass")
        data = memoryview(_HEADER.pack(len(body)) + body)
        while data:
            data = data[os.write(self._wfd, data) :]

    def call(self, message: dict[str, Any]) -> dict[str, Any]:
        """One request/reply round trip; serialised so model threads cannot interleave."""
        with self._lock:
            self.send(message)
            return self.recv()


# --- the REPL ---------------------------------------------------------------------------------


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


def _on_xcpu(signum: int, frame: Any) -> None:
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


def main() -> None:
    started = time.perf_counter()
    config: dict[str, Any] = json.loads(sys.argv[1])
    os.chdir(config["scratch"])
    report = lockdown(config)
    channel = Channel()
    signal.signal(signal.SIGXCPU, _on_xcpu)
    loaded = time.perf_counter()
    context = load_context(config["context_path"], config["context_kind"])
    report["context_load_s"] = round(time.perf_counter() - loaded, 6)
    report["startup_s"] = round(time.perf_counter() - started, 6)
    repl = Repl(channel, context, config["limits"])
    channel.send({"op": "ready", "pid": os.getpid(), "sandbox": report})
    while True:
        try:
            request = channel.recv()
        except EOFError:
            return
        if request["op"] == "exec":
            channel.send(repl.execute(request["code"], int(request["cpu_s"])))
        elif request["op"] == "get":
            channel.send(repl.get(request["name"]))
        else:
            return


if __name__ == "__main__":
    main()
