"""The pre-0.2 LiteLLM config paths ``router.plugin.hook`` / ``router.plugin.rlm_provider``.

Until 0.2 the project installed top-level packages named ``router``, ``policies``,
``telemetry`` and ``sim``, which could collide with an app's own. They are now subpackages of
``rlm_router``, and LiteLLM configs name ``rlm_router.router.plugin.hook``. For one release a
config written for the old layout keeps working: ``rlm_router_compat.pth`` (installed next to
the package by the wheel) appends this finder to the *end* of ``sys.meta_path``, so it answers
only when no other finder has a ``router`` package (an app's own ``router`` always wins), and
only for the import of ``router.plugin`` itself: it gives ``router`` (an empty parent) only as
the first step of that import, so a bare ``import router`` (or ``router.policies``, or
``router.plugin.callback``) still raises ModuleNotFoundError as it did before the alias.
``router.plugin`` is then the very module ``rlm_router.router.plugin`` (one copy, one plugin
state), and a FutureWarning names the new path. Editable installs do not get the ``.pth``
(setuptools places it only in wheels).
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
        if fullname == "router" and _parent_step_of_old_path():
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


def _parent_step_of_old_path() -> bool:
    """Whether this ``router`` import is the parent step of importing exactly ``router.plugin``.

    The import system imports a parent from inside the child's ``_find_and_load_unlocked``
    (CPython's importlib, unchanged from 3.3 through 3.13), so the call stack tells: the
    nearest such frame loads ``router``, the next one ``router.plugin``, and a third, if any,
    is not a submodule of it. Should the frames ever differ, the alias answers nothing and
    the old path fails with ModuleNotFoundError (tests/test_packaging.py would say so).
    """
    names: list[object] = []
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and len(names) < 3:
        code = frame.f_code
        if code.co_name == "_find_and_load_unlocked" and "importlib._bootstrap" in code.co_filename:
            names.append(frame.f_locals.get("name"))
        frame = frame.f_back
    if names[:2] != ["router", OLD]:
        return False
    return len(names) < 3 or not str(names[2]).startswith(f"{OLD}.")


class _Shim(types.ModuleType):
    """The empty ``router`` parent of the alias (never the product's ``router`` package)."""


def install() -> None:
    if not any(isinstance(finder, _OldPluginPath) for finder in sys.meta_path):
        sys.meta_path.append(_OldPluginPath())


install()
