"""The pre-0.2 LiteLLM config paths ``router.plugin.hook`` / ``router.plugin.rlm_provider``.

Until 0.2 the project installed top-level packages named ``router``, ``policies``,
``telemetry`` and ``sim``, which could collide with an app's own. They are now subpackages of
``rlm_router``, and LiteLLM configs name ``rlm_router.router.plugin.hook``. For one release a
config written for the old layout keeps working: ``rlm_router_compat.pth`` (installed next to
the package by the wheel) appends this finder to the *end* of ``sys.meta_path``, so it answers
only for ``router`` and ``router.plugin`` and only when no other finder has a ``router``
package (an app's own ``router`` always wins). ``router.plugin`` is then the very module
``rlm_router.router.plugin`` (one copy, one plugin state), and a FutureWarning names the new
path. Editable installs do not get the ``.pth`` (setuptools places it only in wheels).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence

OLD = "router.plugin"
NEW = "rlm_router.router.plugin"
REMOVED_IN = "0.3"


class _OldPluginPath(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    _real_spec: importlib.machinery.ModuleSpec | None = None

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "router":
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        if fullname == OLD and isinstance(sys.modules.get("router"), _Shim):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        if spec.name == "router":
            shim = _Shim("router", f"rlm-router's compatibility alias; use {NEW}")
            shim.__path__ = []
            return shim
        warnings.warn(
            f"the LiteLLM config path '{OLD}.…' is deprecated and goes away in rlm-router "
            f"{REMOVED_IN}: write '{NEW}.hook' and '{NEW}.rlm_provider'",
            FutureWarning,
            stacklevel=2,
        )
        real = importlib.import_module(NEW)
        self._real_spec = real.__spec__
        return real

    def exec_module(self, module: types.ModuleType) -> None:
        # The module is already executed (the real plugin package) or empty. The import system
        # set the alias spec on it: give the real package its own spec back.
        if module.__name__ == NEW:
            module.__spec__ = self._real_spec


class _Shim(types.ModuleType):
    """The empty ``router`` parent of the alias (never the product's ``router`` package)."""


def install() -> None:
    if not any(isinstance(finder, _OldPluginPath) for finder in sys.meta_path):
        sys.meta_path.append(_OldPluginPath())


install()
