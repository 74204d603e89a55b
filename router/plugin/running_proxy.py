"""The LiteLLM proxy this process runs, if it is one: where the plugin adds its routes
(feedback, reload) and middleware (cancel on disconnect, warm-up gate).

LiteLLM's server module is imported only by the proxy itself; in library use it is absent
and nothing is added. Its ``app`` is the proxy's FastAPI application.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["PROXY_SERVER", "running_proxy", "running_proxy_app"]

PROXY_SERVER = "litellm.proxy.proxy_server"


def running_proxy() -> ModuleType | None:
    """LiteLLM's server module if this process is the proxy, else None."""
    return sys.modules.get(PROXY_SERVER)


def running_proxy_app() -> FastAPI | None:
    """The proxy's FastAPI app if this process is the proxy, else None."""
    module = running_proxy()
    if module is None:
        return None
    from fastapi import FastAPI  # loaded already: the proxy is built on it

    app = getattr(module, "app", None)
    return app if isinstance(app, FastAPI) else None
