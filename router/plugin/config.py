"""The one YAML file behind ``rlm-router serve``: LiteLLM config plus an ``rlm_router`` section.

::

    rlm_router:
      policy: policy.yaml          # optional; default: the shipped policy
      virtual_models: [auto]       # model names the router answers for
      rlm_name: default            # the RLM route is served as model "rlm/<rlm_name>"
      models:                      # model_list groups behind each route (default: the policy's)
        direct: {model: gpt-main}  # the policy YAML's shape; `direct: gpt-main` is deprecated
        rlm_root: {model: gpt-main}
        rlm_sub: {model: gpt-mini}
      litellm_config: litellm.yaml # optional: an existing LiteLLM config to extend
      shared_state:                # optional: several proxy instances share limits through
        redis_url: os.environ/REDIS_URL   # Redis (see router.plugin.shared)
    # everything else is LiteLLM proxy config, as usual
    model_list: [...]
    litellm_settings: {...}

``ServiceConfig.proxy_config()`` returns the LiteLLM config with the plugin wired in (the hook
in ``litellm_settings.callbacks``, the ``rlm`` provider in ``custom_provider_map``, the
``rlm/<name>`` model group, the virtual models as its ``router_settings.model_group_alias``
entries so ``/v1/models`` lists them); the proxy plugin reads the same ``rlm_router`` section
from the file named by ``RLM_ROUTER_CONFIG`` or, failing that, from the proxy's own config
file, so a user can also paste the section and the wiring entries into an existing config.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# ``Any`` here is a YAML document's values and LiteLLM's config, which this module reads only
# through checked lookups (and hands LiteLLM as LiteLLM reads it); not a seam of the hook.
from typing import Any

import yaml

import rlm_router.rlm_core.litellm_api as litellm_api
from rlm_router.rlm_core.errors import ConfigError
from rlm_router.router.plugin.shared import SharedStateError, SharedStateSettings

log = logging.getLogger("rlm_router.router.plugin")

CONFIG_ENV = "RLM_ROUTER_CONFIG"
SECTION = "rlm_router"
HOOK_PATH = "rlm_router.router.plugin.hook"
PROVIDER = "rlm"
PROVIDER_PATH = "rlm_router.router.plugin.rlm_provider"
# Process-wide objects shared by the proxy plugin's hook and provider (see router.plugin).
PROCESS_STATE: dict[str, object] = {}
_SECTION_KEYS = frozenset(
    {"policy", "virtual_models", "rlm_name", "models", "litellm_config", "shared_state"}
)
_ROUTE_KEYS = frozenset({"direct", "rlm_root", "rlm_sub"})


class ServiceConfigError(ConfigError):
    """The service config is invalid; the message names the file and the key."""


@dataclass(frozen=True, kw_only=True)
class ServiceConfig:
    """The ``rlm_router`` section, resolved, plus the LiteLLM config it extends."""

    path: Path | None
    policy_path: Path | None = None
    virtual_models: tuple[str, ...] = ("auto",)
    rlm_name: str = "default"
    # model_list group names per route; None = take the policy's model for that route.
    direct: str | None = None
    rlm_root: str | None = None
    rlm_sub: str | None = None
    # None = one instance: admission and the exploration budget are counted in memory.
    shared: SharedStateSettings | None = None
    litellm: Mapping[str, Any] = field(default_factory=dict)

    @property
    def rlm_model(self) -> str:
        return f"{PROVIDER}/{self.rlm_name}"

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ServiceConfig:
        file = Path(path).resolve()
        data = _read_yaml(file)
        return cls.from_mapping(data, path=file, lines=_key_lines(file.read_text()))

    @classmethod
    def from_env(cls) -> ServiceConfig:
        """The config the proxy plugin runs with (see the module docstring)."""
        path = os.environ.get(CONFIG_ENV)
        if not path:
            path = _proxy_config_path()
        if not path:
            return cls(path=None)
        return cls.load(path)

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any],
        *,
        path: Path | None = None,
        lines: Mapping[tuple[str, ...], int] | None = None,
    ) -> ServiceConfig:
        """``lines`` (key path -> line, from ``_key_lines``) puts ``file:line`` in errors."""
        file = str(path) if path is not None else "<config>"

        def at(*keys: str) -> str:
            """``file:line`` of the deepest of ``rlm_router.<keys>`` the YAML has."""
            found = lines or {}
            for depth in range(len(keys), -1, -1):
                line = found.get((SECTION, *keys[:depth]))
                if line is not None:
                    return f"{file}:{line}"
            return file

        section = data.get(SECTION) or {}
        if not isinstance(section, Mapping):
            raise ServiceConfigError(f"{at()}: '{SECTION}' must be a mapping")
        unknown = set(section) - _SECTION_KEYS
        if unknown:
            raise ServiceConfigError(
                f"{at(sorted(unknown)[0])}: unknown key(s) {sorted(unknown)} in '{SECTION}' "
                f"(allowed: {sorted(_SECTION_KEYS)})"
            )
        base = path.parent if path is not None else Path.cwd()

        litellm: dict[str, Any] = {}
        included = section.get("litellm_config")
        if included is not None:
            if not isinstance(included, str):
                raise ServiceConfigError(
                    f"{at('litellm_config')}: '{SECTION}.litellm_config' must be a path"
                )
            other = _read_yaml((base / included).resolve())
            litellm.update({k: v for k, v in other.items() if k != SECTION})
        for key, value in data.items():
            if key == SECTION:
                continue
            if key == "model_list" and "model_list" in litellm:
                litellm["model_list"] = [*litellm["model_list"], *(value or [])]
            else:
                litellm[key] = value

        policy = section.get("policy")
        if policy is not None and not isinstance(policy, str):
            raise ServiceConfigError(f"{at('policy')}: '{SECTION}.policy' must be a path")
        virtual = section.get("virtual_models", ["auto"])
        if isinstance(virtual, str):
            virtual = [virtual]
        if not isinstance(virtual, list) or not all(isinstance(v, str) and v for v in virtual):
            raise ServiceConfigError(
                f"{at('virtual_models')}: '{SECTION}.virtual_models' must be a list of names"
            )
        rlm_name = section.get("rlm_name", "default")
        if not isinstance(rlm_name, str) or not rlm_name or "/" in rlm_name:
            raise ServiceConfigError(
                f"{at('rlm_name')}: '{SECTION}.rlm_name' must be a name without '/'"
            )
        raw_models = section.get("models") or {}
        if not isinstance(raw_models, Mapping) or set(raw_models) - _ROUTE_KEYS:
            raise ServiceConfigError(
                f"{at('models')}: '{SECTION}.models' must map some of {sorted(_ROUTE_KEYS)} to "
                "{model: <model_list group name>}"
            )
        models: dict[str, object] = {}
        for route, entry in raw_models.items():
            if isinstance(entry, str):
                # The old shape (a bare group name), accepted for one release.
                log.warning(
                    "%s: '%s.models.%s: %s' is deprecated; write '%s: {model: %s}' (the "
                    "policy YAML's shape); the old form stops working in rlm-router 0.3",
                    at("models", str(route)),
                    SECTION,
                    route,
                    entry,
                    route,
                    entry,
                )
                models[route] = entry
                continue
            if not isinstance(entry, Mapping) or set(entry) != {"model"}:
                raise ServiceConfigError(
                    f"{at('models', str(route))}: '{SECTION}.models.{route}' must be "
                    "{model: <model_list group name>} (api_base, keys and windows belong to "
                    "the group's model_list entry)"
                )
            models[route] = entry["model"]
        groups = _model_groups(litellm)
        for route, group in models.items():
            if not isinstance(group, str) or (groups and group not in groups):
                raise ServiceConfigError(
                    f"{at('models', str(route), 'model')}: '{SECTION}.models.{route}' is "
                    f"{group!r}, "
                    f"which is not a model_name in model_list (have: {sorted(groups)})"
                )
        clash = set(virtual) & groups
        if clash:
            raise ServiceConfigError(
                f"{at('virtual_models')}: virtual model(s) {sorted(clash)} are also "
                "model_list names"
            )
        shared = None
        if section.get("shared_state") is not None:
            try:
                shared = SharedStateSettings.parse(
                    section["shared_state"], lambda *keys: at("shared_state", *keys)
                )
            except SharedStateError as exc:
                raise ServiceConfigError(str(exc)) from None
        return cls(
            path=path,
            policy_path=(base / policy).resolve() if policy else None,
            virtual_models=tuple(virtual),
            rlm_name=rlm_name,
            direct=_group(models, "direct"),
            rlm_root=_group(models, "rlm_root"),
            rlm_sub=_group(models, "rlm_sub"),
            shared=shared,
            litellm=litellm,
        )

    def group_window(self, group: str) -> int | None:
        """The input window of a model_list group: its ``model_info.max_input_tokens``, else
        litellm's model info for its first deployment's model (None if unknown)."""
        for entry in self.litellm.get("model_list") or []:
            if not isinstance(entry, Mapping) or entry.get("model_name") != group:
                continue
            info = entry.get("model_info") or {}
            if isinstance(info.get("max_input_tokens"), int):
                return int(info["max_input_tokens"])
            model = (entry.get("litellm_params") or {}).get("model")
            if isinstance(model, str):
                return litellm_api.context_window(model)
        return None

    def group_info(self, group: str) -> dict[str, Any] | None:
        """litellm model info for a model_list group (window and prices), from its first
        deployment: ``model_info`` and price keys in ``litellm_params``, else litellm's info
        for the deployment's model. None when neither gives a price."""
        for entry in self.litellm.get("model_list") or []:
            if not isinstance(entry, Mapping) or entry.get("model_name") != group:
                continue
            params = entry.get("litellm_params") or {}
            model = params.get("model")
            info = (litellm_api.model_info(model) if isinstance(model, str) else None) or {}
            info.update({k: v for k, v in (entry.get("model_info") or {}).items() if v is not None})
            for key in ("input_cost_per_token", "output_cost_per_token"):
                if isinstance(params.get(key), int | float):
                    info[key] = float(params[key])
            if not isinstance(info.get("input_cost_per_token"), int | float):
                return None
            info.setdefault("litellm_provider", "openai")
            info.setdefault("mode", "chat")
            return info
        return None

    def register_groups(self) -> list[str]:
        """Tell litellm the windows and prices of the route groups it does not know by name.

        The RLM engine checks each call before sending it (the prompt against the model's
        window, its worst-case cost against the run's budget) by the name it calls, which in
        the proxy is the group name; a group named e.g. ``fast`` was unknown, so the cost
        pre-flight let every call through and a run overspent into a bare ``max_cost`` stop
        instead of being refused in time. Returns the groups registered.

        A group named after its deployment's model without the prefix (``sim-large`` for
        ``openai/sim-large``) is registered after that model's own key: litellm files a later
        registration of ``openai/sim-large`` (its router does one per deployment, and again on
        every request with custom pricing) under the bare key when that one came first, so the
        prefixed key never existed and every request's cost lookups missed and rebuilt
        litellm's lowercase index of its ~4,300-entry cost map (~1.2 ms of CPU per request,
        profiled on litellm 1.108)."""
        registered: dict[str, dict[str, Any]] = {}
        groups = self.groups()
        for group in groups:
            if litellm_api.context_window(group) is not None:
                continue  # litellm knows it (e.g. a group named after its model)
            info = self.group_info(group)
            if info is None:
                continue
            model = self.group_model(group)
            if model is not None and model.endswith(f"/{group}"):
                registered.setdefault(model, info)
            registered[group] = info
        if registered:
            litellm_api.register_models(registered)
        return [name for name in registered if name in groups]

    def groups(self) -> tuple[str, ...]:
        """The route groups (direct, RLM root, RLM sub-calls), each once, in that order."""
        return tuple(dict.fromkeys(g for g in (self.direct, self.rlm_root, self.rlm_sub) if g))

    def group_model(self, group: str) -> str | None:
        """The model (``provider/name``) of a model_list group's first deployment."""
        for entry in self.litellm.get("model_list") or []:
            if isinstance(entry, Mapping) and entry.get("model_name") == group:
                model = (entry.get("litellm_params") or {}).get("model")
                return model if isinstance(model, str) else None
        return None

    def group_provider(self, group: str) -> str | None:
        """litellm's provider prefix of a model_list group's first deployment (``openai``)."""
        model = self.group_model(group)
        provider, sep, _ = model.partition("/") if model is not None else ("", "", "")
        return provider if sep and provider else None

    def proxy_config(self) -> dict[str, Any]:
        """The LiteLLM proxy config with the plugin wired in (idempotent)."""
        config = copy.deepcopy(dict(self.litellm))
        settings = dict(config.get("litellm_settings") or {})
        callbacks = settings.get("callbacks") or []
        callbacks = [callbacks] if isinstance(callbacks, str) else list(callbacks)
        if HOOK_PATH not in callbacks:
            callbacks.append(HOOK_PATH)
        settings["callbacks"] = callbacks
        providers = list(settings.get("custom_provider_map") or [])
        if not any(p.get("provider") == PROVIDER for p in providers if isinstance(p, Mapping)):
            providers.append({"provider": PROVIDER, "custom_handler": PROVIDER_PATH})
        settings["custom_provider_map"] = providers
        config["litellm_settings"] = settings
        model_list = list(config.get("model_list") or [])
        if self.rlm_model not in _model_groups(config):
            model_list.append(
                {"model_name": self.rlm_model, "litellm_params": {"model": self.rlm_model}}
            )
        config["model_list"] = model_list
        # The virtual models as aliases of the RLM group, so /v1/models lists them (clients
        # and UIs pick models from that list). The hook rewrites every chat request for them
        # before LiteLLM's router would resolve the alias.
        router_settings = dict(config.get("router_settings") or {})
        aliases = dict(router_settings.get("model_group_alias") or {})
        for name in self.virtual_models:
            aliases.setdefault(name, self.rlm_model)
        router_settings["model_group_alias"] = aliases
        config["router_settings"] = router_settings
        config[SECTION] = self.section()
        return config

    def section(self) -> dict[str, Any]:
        """The ``rlm_router`` section with absolute paths (for a generated config)."""
        section: dict[str, Any] = {
            "virtual_models": list(self.virtual_models),
            "rlm_name": self.rlm_name,
        }
        if self.policy_path is not None:
            section["policy"] = str(self.policy_path)
        models = {
            k: {"model": v}
            for k, v in (
                ("direct", self.direct),
                ("rlm_root", self.rlm_root),
                ("rlm_sub", self.rlm_sub),
            )
            if v is not None
        }
        if models:
            section["models"] = models
        if self.shared is not None:
            section["shared_state"] = self.shared.as_mapping()
        return section

    def write_proxy_config(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``proxy_config()`` as ``litellm-proxy.yaml`` in ``directory``; returns its path."""
        out = Path(directory) / "litellm-proxy.yaml"
        out.write_text(yaml.safe_dump(self.proxy_config(), sort_keys=False))
        return out


def _group(models: Mapping[str, object], route: str) -> str | None:
    group = models.get(route)
    return group if isinstance(group, str) else None


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The 1-based line of every mapping key, by its path of keys (for ``file:line`` errors,
    as the policy loader reports them)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node | None, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    here = (*path, str(key.value))
                    lines[here] = key.start_mark.line + 1
                    walk(value, here)

    walk(root, ())
    return lines


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text()
    except OSError as exc:
        raise ServiceConfigError(f"cannot read {file}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ServiceConfigError(f"{file}: invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ServiceConfigError(f"{file}: top level must be a mapping")
    return data


def _model_groups(config: Mapping[str, Any]) -> set[str]:
    groups: set[str] = set()
    for entry in config.get("model_list") or []:
        if isinstance(entry, Mapping) and isinstance(entry.get("model_name"), str):
            groups.add(entry["model_name"])
    return groups


def _proxy_config_path() -> str | None:
    """The config file the running LiteLLM proxy loaded, if we are inside one."""
    import sys

    server = sys.modules.get("litellm.proxy.proxy_server")
    path = getattr(server, "user_config_file_path", None) if server is not None else None
    return path if isinstance(path, str) else os.environ.get("CONFIG_FILE_PATH")
