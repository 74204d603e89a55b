"""The LiteLLM proxy plugin: a pre-call hook that routes, and a provider that serves ``rlm/*``.

Wiring (``rlm-router serve`` writes it; see ``router.plugin.config``)::

    model_list:
      - model_name: rlm/default
        litellm_params: {model: rlm/default}
    litellm_settings:
      callbacks: ["router.plugin.hook"]
      custom_provider_map:
        - {provider: rlm, custom_handler: router.plugin.rlm_provider}

- ``hook`` is a ``RouterHook`` (``router.plugin.callback``): it decides for requests to a
  virtual model (default ``auto``) and rewrites ``data["model"]`` to the direct model group
  or to ``rlm/<name>``; the decision rides along as ``RoutingMetadata``
  (``router.plugin.metadata``).
- ``rlm_provider`` is an ``RLMProvider`` (a ``CustomLLM``, ``router.plugin.provider``): it
  serves ``rlm/<name>`` through ``Dispatcher.serve_rlm``.
- ``router.plugin.service`` holds the process-wide state both share; ``router.plugin.config``
  reads the ``rlm_router`` YAML section; ``router.plugin.feedback`` adds
  ``POST /rlm-router/feedback``; ``admission`` bounds concurrent RLM runs, ``reload`` re-reads
  the policy on change or SIGHUP, ``disconnect`` cancels the run of a client that went away,
  ``warm`` pays LiteLLM's first-request costs at start-up.

``hook`` and ``rlm_provider`` are created on first access (PEP 562), so importing this package
does no work; the router and its policy load on the first request. No submodule is named
after them, so importing one can never shadow them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlm_router.router.plugin.callback import RouterHook
    from rlm_router.router.plugin.provider import RLMProvider

__all__ = ["hook", "rlm_provider"]

_INSTANCES: dict[str, RouterHook | RLMProvider] = {}


def __getattr__(name: str) -> RouterHook | RLMProvider:
    if name not in ("hook", "rlm_provider"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _INSTANCES:
        from rlm_router.router.plugin.callback import RouterHook
        from rlm_router.router.plugin.provider import RLMProvider
        from rlm_router.router.plugin.service import shared_service

        instance = RouterHook() if name == "hook" else RLMProvider()
        # LiteLLM resolves these while loading its config: load ours now too, so a bad
        # rlm_router section or policy stops the proxy at startup with the reason.
        try:
            _ = instance.service.dispatcher
            _ = instance.service.admission  # a shared_state naming an unset variable, too
        except Exception as exc:
            raise RuntimeError(f"rlm-router plugin cannot start: {exc}") from exc
        _INSTANCES[name] = instance
        if name == "hook":  # the proxy loads the hook at startup: add POST /rlm-router/feedback
            from rlm_router.router.plugin import disconnect, reload, warm
            from rlm_router.router.plugin.callback import raw_body_check
            from rlm_router.router.plugin.feedback import install_on_running_proxy

            service = shared_service()
            # A decision id this instance did not issue is a 404, unless instances share
            # state: then another instance may have issued it.
            known = service.issued if service.config.shared is None else None
            install_on_running_proxy(lambda: service.telemetry, known)
            reload.install_on_running_proxy(
                lambda: service.reloader, lambda: service.router.policy_version
            )
            # A client that goes away cancels its RLM run, its sub-calls and its workers.
            disconnect.install_on_running_proxy(raw_body_check)
            # LiteLLM's and FastAPI's first-request costs, paid once the proxy is built.
            warm.install_on_running_proxy(service.config.direct)
            # Pre-started REPL workers (policy sandbox.prestart_workers) on the proxy's loop,
            # ready before its first escalated request.
            service.dispatcher.settings.pool()
    return _INSTANCES[name]
