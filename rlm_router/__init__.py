"""rlm-router: adaptive routing between a direct LLM call and a sandboxed RLM engine.

The installed import package. Its subpackages are the project's source folders:

- ``rlm_router.router``: the request path (``Router``, dispatch, the CLI, the LiteLLM plugin);
- ``rlm_router.policies``: routing policies, features contract, classifier, training;
- ``rlm_router.rlm_core``: the RLM engine, the provider boundary, the sandbox;
- ``rlm_router.telemetry``: spans, metrics, trace reading, the HTML report;
- ``rlm_router.sim``: the simulated OpenAI-compatible provider and its task families.

``from rlm_router import Router`` is the library entry point; it is imported on first use so
that ``import rlm_router.rlm_core...`` (the sandbox worker, the CLI's fast paths) stays light.
"""

from __future__ import annotations

import typing

if typing.TYPE_CHECKING:
    from rlm_router.router import Router

__all__ = ["Router"]


def __getattr__(name: str) -> object:
    if name == "Router":
        from rlm_router.router import Router

        return Router
    raise AttributeError(f"module 'rlm_router' has no attribute {name!r}")
