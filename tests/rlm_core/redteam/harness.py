"""What the CLI red-team tests share: host-side markers, the CLI as a user runs it, and the
scripted hostile provider's replies as REPL blocks; ``FORGE``, the model code that writes a
forged frame to every descriptor it holds, is shared with the sandbox channel tests.

Markers: TCP and UDP listeners and a world-writable unix socket on the host, a secret file
and a secret environment variable of the CLI process.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.rlm_core.redteam.hostile_provider import MODEL, HostileProvider

SECRET = "rlm-redteam-secret-7f3a9c"
BUDGET_USD = 0.001
# Model code: ``forge(body, size=None)`` writes one frame (4-byte length + body) to every
# descriptor that takes it.
FORGE = """
import os, struct
def forge(body, size=None):
    frame = struct.pack('>I', len(body) if size is None else size) + body
    for fd in range(3, 64):
        try:
            os.write(fd, frame)
        except OSError:
            pass
"""
# The installed console script (the venv's), as a user runs it.
CLI = [str(Path(sys.executable).with_name("rlm-router"))]


@dataclass
class Markers:
    tcp: socket.socket
    udp: socket.socket
    unix: socket.socket
    unix_path: str
    secret_file: str

    def reached(self) -> list[str]:
        hits = []
        for name, server in (("tcp", self.tcp), ("unix", self.unix)):
            try:
                server.accept()[0].close()
                hits.append(name)
            except BlockingIOError:
                pass
        try:
            self.udp.recvfrom(64)
            hits.append("udp")
        except BlockingIOError:
            pass
        return hits


@contextmanager
def open_markers() -> Iterator[Markers]:
    directory = tempfile.mkdtemp(prefix="rlm-markers-")
    os.chmod(directory, 0o777)
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    unix_path = os.path.join(directory, "marker.sock")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(unix_path)
    os.chmod(unix_path, 0o777)
    unix.listen()
    for server in (tcp, udp, unix):
        server.setblocking(False)
    secret_file = os.path.join(directory, "secret.txt")
    Path(secret_file).write_text(SECRET)
    os.chmod(secret_file, 0o600)
    yield Markers(tcp, udp, unix, unix_path, secret_file)
    for server in (tcp, udp, unix):
        server.close()
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.rmdir(directory)


def repl(code: str) -> str:
    return f"Running it.\n```repl\n{code}\n```"


async def run_cli(
    provider: HostileProvider,
    context: Path,
    *extra: str,
    wrapper: Sequence[str] = (),
) -> tuple[int, str, str]:
    """``rlm-router rlm --json`` against ``provider`` (``wrapper`` goes before the command,
    ``extra`` after its arguments); returns (exit status, stdout, stderr)."""
    env = {**os.environ, "RLM_REDTEAM_SECRET": SECRET, "OPENAI_API_KEY": "sk-redteam"}
    proc = await asyncio.create_subprocess_exec(
        *wrapper, *CLI, "rlm", "--json", "--model", MODEL, "--api-base", provider.base_url,
        "--context-file", str(context), "--query", "what does the context say?",
        "--max-cost-usd", str(BUDGET_USD), "--max-iterations", "5", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    async with asyncio.timeout(240):
        out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()
