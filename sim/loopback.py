"""Start an aiohttp app on a socket we bind ourselves, so the bound port (port 0 picks a free
one) is read from our own socket, not from aiohttp's private site attributes."""

from __future__ import annotations

import socket

from aiohttp import web


async def start_site(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    backlog: int = 128,
    shutdown_timeout: float = 1.0,
) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port``; returns the runner (``cleanup()`` stops it) and the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
        bound = int(sock.getsockname()[1])
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
        await runner.setup()
        await web.SockSite(runner, sock).start()
    except BaseException:
        sock.close()
        raise
    return runner, bound
