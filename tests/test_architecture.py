"""The package layout as rules: import direction, the provider boundary, exports, errors.

DESIGN.md: data flows router.features → policies → router.dispatch → litellm or rlm_core;
telemetry observes and never decides; rlm_core knows nothing about routing. These tests read
every import statement (function-level and TYPE_CHECKING ones too) with ``ast``.
"""

from __future__ import annotations
import __future__

import ast
import importlib
import inspect
import pkgutil
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
TOP = "rlm_router"  # the one installed import package; the folders below are its subpackages
PRODUCT = ("rlm_core", "policies", "telemetry", "router", "sim")
OURS = (*PRODUCT, "benchmarks")
# package -> the packages of ours it must never import
FORBIDDEN = {
    "rlm_core": {"router", "policies", "telemetry", "sim", "benchmarks"},
    # (policies.learning reads telemetry's trace records: training data flows that way)
    "policies": {"router", "sim", "benchmarks"},
    "telemetry": {"router", "policies", "sim", "benchmarks"},
    "router": {"benchmarks"},
    "sim": {"router", "policies", "telemetry", "benchmarks"},
}
# The one module that imports litellm, and the proxy plugin, which LiteLLM's proxy hands its
# own objects (its router for sub-calls, its auth dependency for the feedback route).
LITELLM_IMPORTERS = {"rlm_core/litellm_api.py", "router/plugin/"}


def _imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _ours(name: str) -> str | None:
    """The package of ours an imported name belongs to (``rlm_router.policies.x`` → policies)."""
    parts = name.split(".")
    if parts[0] == TOP and len(parts) > 1:
        return parts[1]
    return None


def test_nothing_imports_the_source_folders_by_their_bare_names() -> None:
    """``import router`` would load a second copy of the package from a checkout, and collide
    with an app's own ``router`` when installed; everything goes through ``rlm_router``."""
    paths = [p for package in (*OURS, "tests") for p in _sources(package)]
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in paths
        for line, name in _imports(path)
        if name.split(".")[0] in PRODUCT
    ]
    assert offenders == []


@pytest.mark.parametrize("package", PRODUCT)
def test_no_import_runs_from_a_lower_layer_to_a_higher_one(package: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in _sources(package)
        for line, name in _imports(path)
        if (_ours(name) or name.split(".")[0]) in FORBIDDEN[package]
    ]
    assert offenders == []


def test_only_the_provider_boundary_and_the_plugin_import_litellm() -> None:
    offenders = [
        f"{rel}:{line} imports {name}"
        for package in PRODUCT
        for path in _sources(package)
        if not any(
            (rel := str(path.relative_to(ROOT))) == allowed or rel.startswith(allowed)
            for allowed in LITELLM_IMPORTERS
        )
        for line, name in _imports(path)
        if name.split(".")[0] == "litellm"
    ]
    assert offenders == []


def test_benchmarks_is_not_installed_as_a_package() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert include == [f"{TOP}*"]
    for package in PRODUCT:  # each source folder is reached through the one top-level package
        assert (ROOT / TOP / package).resolve() == (ROOT / package).resolve()


def _exported(module: types.ModuleType) -> set[str]:
    """What ``from module import *`` without ``__all__`` would give: every public name that
    is not a submodule or a ``__future__`` feature (as httpx's test_exported_members)."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType | __future__._Feature)
    }


@pytest.mark.parametrize("package", [TOP, *(f"{TOP}.{p}" for p in PRODUCT), f"{TOP}.sim.tasks"])
def test_all_is_exactly_what_the_package_exports(package: str) -> None:
    module = importlib.import_module(package)
    # Names a package creates on first access (PEP 562 ``__getattr__``) are exports too.
    lazy = {name for name in module.__all__ if name not in vars(module) and hasattr(module, name)}
    assert sorted(module.__all__) == sorted(_exported(module) | lazy)


def _product_modules() -> list[types.ModuleType]:
    modules = []
    for package in PRODUCT:
        root = importlib.import_module(f"{TOP}.{package}")
        modules.append(root)
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{TOP}.{package}."):
            if info.name.endswith("__main__") or ".worker." in f"{info.name}.":
                continue  # the sandbox worker's entry point locks its own process down
            try:
                modules.append(importlib.import_module(info.name))
            except ImportError as exc:  # an optional extra that is not installed
                pytest.skip(f"{info.name}: {exc}")
    return modules


# Control flow inside a module, never raised to a caller (each is caught where it is raised).
INTERNAL_EXCEPTIONS = {
    "rlm_router.policies.loader._Invalid",
    "rlm_router.rlm_core.budget.BudgetRefused",  # the loop turns it into a refusal or a stop reason
    # the sandbox turns the two frame errors into SandboxError or REPL output
    "rlm_router.rlm_core.frames.FrameError",
    "rlm_router.rlm_core.frames.FrameTooLarge",
    # the retry loop maps it to a ProviderError kind
    "rlm_router.rlm_core.litellm_api.LeanHTTPError",
    "rlm_router.rlm_core.loop.TreeAborted",
    "rlm_router.rlm_core.sandbox.SubCallRejected",
    "rlm_router.sim.wire.APIError",
}


def test_every_exception_the_product_raises_roots_in_one_tree() -> None:
    from rlm_router.rlm_core.errors import RLMRouterError

    stray = sorted(
        f"{cls.__module__}.{cls.__qualname__}"
        for module in _product_modules()
        for cls in vars(module).values()
        if inspect.isclass(cls)
        and issubclass(cls, BaseException)
        and cls.__module__ == module.__name__
        and not issubclass(cls, RLMRouterError)
        and f"{cls.__module__}.{cls.__qualname__}" not in INTERNAL_EXCEPTIONS
    )
    assert stray == []
