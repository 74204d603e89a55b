"""What ``pip install rlm-router`` puts on a user's sys.path: one import package, and the 0.1
LiteLLM config path still resolving to the plugin (for one release)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return next(out.glob("rlm_router-*.whl"))


def test_the_wheel_installs_one_top_level_package_and_no_benchmarks(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"rlm_router", "rlm_router_compat.pth"}
    for package in ("router", "rlm_core", "policies", "telemetry", "sim"):
        assert f"rlm_router/{package}/__init__.py" in names
    assert "rlm_router/policies/default.yaml" in names  # package data made it in
    assert not [name for name in names if "benchmarks" in name.split("/")[:2]]


@pytest.fixture(scope="module")
def site(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed as pip installs it for a user (a target directory of its own)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return target


def _python_with_wheel(site: Path, code: str, cwd: Path) -> str:
    """Run ``code`` in a fresh interpreter that sees the installed wheel (and ``cwd``)."""
    # site.addsitedir processes the .pth file as site-packages would at start-up.
    prelude = (
        f"import site, sys; sys.path.insert(0, {str(site)!r}); site.addsitedir({str(site)!r})\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "always::FutureWarning", "-c", prelude + code],
        capture_output=True, text=True, timeout=120, cwd=cwd,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_the_old_litellm_config_path_resolves_to_the_one_plugin_with_a_warning(
    site: Path, tmp_path: Path
) -> None:
    out = _python_with_wheel(
        site,
        "import importlib\n"
        "old = importlib.import_module('router.plugin')\n"
        "import rlm_router.router.plugin as new\n"
        "print('same', old is new, new.__spec__.name)\n",
        cwd=tmp_path,
    )
    assert "same True rlm_router.router.plugin" in out
    assert "deprecated" in out and "rlm_router.router.plugin.hook" in out


def test_without_an_apps_router_package_only_the_old_plugin_path_resolves(
    site: Path, tmp_path: Path
) -> None:
    # ``try: import router`` in an app must keep failing as before the alias; so must the
    # names 0.1 configs never used. The old plugin path still resolves, after those failures.
    out = _python_with_wheel(
        site,
        "import importlib\n"
        "for name in ('router', 'router.policies', 'router.plugin.callback'):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError as exc:\n"
        "        print('missing', name, exc.name)\n"
        "    else:\n"
        "        print('found', name)\n"
        "from router.plugin import hook, rlm_provider\n"
        "import router\n"
        "print('old path', type(hook).__name__, type(rlm_provider).__name__)\n",
        cwd=tmp_path,
    )
    assert "missing router router" in out
    assert "missing router.policies router" in out
    assert "missing router.plugin.callback router" in out
    assert "found" not in out
    assert "old path RouterHook RLMProvider" in out
    assert "deprecated" in out


def test_an_apps_own_router_package_wins_over_the_alias(site: Path, tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "router").mkdir(parents=True)
    (app / "router" / "__init__.py").write_text("WHO = 'the app'\n")
    out = _python_with_wheel(
        site,
        "import router, rlm_router.router.plugin\nprint(router.WHO)\n",
        cwd=app,
    )
    assert "the app" in out and "deprecated" not in out
