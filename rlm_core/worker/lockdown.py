"""Confinement of the worker process, applied once at start-up, before any model code runs.

Order matters (see ``lockdown``): PID namespace first (the host's stub waits outside it),
then the network namespace, resource limits, Landlock, and last the drop to an unprivileged
uid with no capabilities. Returns a report of what held; the host logs what did not.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # not signal: see __main__
import ctypes
import os
import resource
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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


_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2
_SECCOMP_RET_ALLOW, _SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
_EPERM, _AF_UNIX = 1, 1
# (audit arch, socket, execve, execveat, io_uring_setup) per architecture.
_SYSCALLS = {
    "x86_64": (0xC000003E, 41, 59, 322, 425),
    "aarch64": (0xC00000B7, 198, 221, 281, 425),
}
_X32_BIT = 0x40000000


class _SockFilter(ctypes.Structure):
    _fields_ = (
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    )


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter)))


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


def _seccomp(strict: bool, report: dict[str, Any]) -> None:
    """A seccomp filter, inherited by every process model code starts and never removable:
    no AF_UNIX sockets (a pathname socket is reachable through any directory the process can
    see, and neither the network namespace nor Landlock covers connect() on one), no
    io_uring (it creates sockets without the socket syscall), no foreign syscall ABI. With
    ``strict`` (no network namespace) no sockets and no execve at all: the audit hook alone
    does not hold against ctypes or a child process.
    """
    machine = os.uname().machine
    if machine not in _SYSCALLS:
        report["warnings"].append(f"no seccomp filter for {machine}; AF_UNIX sockets are open")
        return
    arch, sys_socket, sys_execve, sys_execveat, sys_io_uring = _SYSCALLS[machine]
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    deny, allow = ("ret", _SECCOMP_RET_ERRNO | _EPERM), ("ret", _SECCOMP_RET_ALLOW)
    denied = [sys_io_uring] + ([sys_socket, sys_execve, sys_execveat] if strict else [])
    # Instructions as (op, k, jump-if-true label, jump-if-false label); labels resolved below.
    program: list[tuple[int, int, str | None, str | None]] = [
        (ld, 4, None, None),  # seccomp_data.arch
        (jeq, arch, None, "deny"),
        (ld, 0, None, None),  # seccomp_data.nr
    ]
    if machine == "x86_64":
        program.append((jge, _X32_BIT, "deny", None))
    program += [(jeq, nr, "deny", None) for nr in denied]
    if not strict:
        program.append((jeq, sys_socket, None, "allow"))
        program.append((ld, 16, None, None))  # args[0] (low half): the socket's domain
        program.append((jeq, _AF_UNIX, "deny", "allow"))
    program.append((ret, allow[1], None, None))
    labels = {"allow": len(program) - 1, "deny": len(program)}
    program.append((ret, deny[1], None, None))
    filters = (_SockFilter * len(program))()
    for index, (op, k, when_true, when_false) in enumerate(program):
        jt = labels[when_true] - index - 1 if when_true else 0
        jf = labels[when_false] - index - 1 if when_false else 0
        filters[index] = _SockFilter(op, jt, jf, k)
    fprog = _SockFprog(len(program), filters)
    _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if _libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        report["warnings"].append(f"seccomp filter failed ({_errno_text()})")
        return
    report["seccomp"] = "strict" if strict else "no-unix-sockets"


def _join_cgroups(procs_files: list[str], report: dict[str, Any]) -> None:
    """Enter the sandbox's cgroups (made by the host) before anything forks, while root.

    The host already writes this pid into them while this interpreter starts (on cgroup v1
    each attach waits ~10 ms in the kernel); a cgroup that lists it is not joined again."""
    pid = str(os.getpid())
    for path in procs_files:
        try:
            with open(path) as listed:
                if pid in listed.read().split():
                    continue
            with open(path, "w") as handle:
                handle.write(pid)
        except OSError as exc:
            report["warnings"].append(f"could not join {path} ({exc.strerror})")
            return
    report["cgroup"] = bool(procs_files)


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


def _set_limits(limits: dict[str, Any], per_sandbox_pids: bool) -> None:
    def cap(kind: int, value: int) -> None:
        try:  # noqa: SIM105 (no contextlib: see __main__)
            resource.setrlimit(kind, (value, value))
        except (ValueError, OSError):  # above the hard limit: the host's own limit holds
            pass

    if limits["memory_bytes"] is not None:  # None: set once the context is known (pool)
        cap(resource.RLIMIT_AS, limits["memory_bytes"])
    if not per_sandbox_pids:
        # Per uid, not per sandbox: every sandbox of this uid shares it, so it is only the
        # fallback where no cgroup counts this sandbox's processes (pids.max).
        cap(resource.RLIMIT_NPROC, limits["max_processes"])
    cap(resource.RLIMIT_FSIZE, limits["max_file_bytes"])
    cap(resource.RLIMIT_NOFILE, limits["max_open_files"])
    cap(resource.RLIMIT_CORE, 0)
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_total_s"], limits["cpu_total_s"]))


def _enter_pid_namespace(host_pid: int, report: dict[str, Any]) -> None:
    """Become PID 1 of a fresh PID namespace, so that killing this process kills everything
    model code started (even processes that left the process group). The original process
    stays behind as a stub that waits and mirrors the exit status."""
    _libc.prctl(_PR_SET_PDEATHSIG, _signal.SIGKILL, 0, 0, 0)
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
    report["seccomp"], report["cgroup"] = "none", False
    _join_cgroups(config.get("cgroup_procs", []), report)
    _enter_pid_namespace(config["host_pid"], report)
    _isolate_network(bool(config.get("network_namespace", True)), report)
    _set_limits(config["limits"], per_sandbox_pids=report["cgroup"])
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
                try:  # noqa: SIM105 (no contextlib: see __main__)
                    __import__(name)
                except ImportError:
                    pass
    _drop_privileges(config["uid"], config["gid"], report)
    if held:
        _libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)  # the uid change made /proc/self root-only
        _reroute_imports(dict(zip(roots, (f"/proc/self/fd/{fd}" for fd in held), strict=True)))
    if report["filesystem"] == "none" and report.get("uid") == 0:
        report["warnings"].append("worker runs as root without Landlock: files are not protected")
    _seccomp(report["network"] != "namespace", report)
    # Credential changes clear the death signal: arm it again for this process.
    _libc.prctl(_PR_SET_PDEATHSIG, _signal.SIGKILL, 0, 0, 0)
    if not report["pid_namespace"] and os.getppid() != config["host_pid"]:
        os._exit(0)  # the host died before the death signal was armed
    return report
