"""The public names of ``router`` and ``policies`` are exactly the intended ones."""

from __future__ import annotations

import subprocess
import sys

import rlm_router.policies as policies
import rlm_router.router as router


def test_router_exports() -> None:
    assert sorted(router.__all__) == [
        "ChatRequest",
        "Decision",
        "InvalidRequest",
        "RequestFeatures",
        "Router",
        "extract_features",
    ]
    assert all(hasattr(router, name) for name in router.__all__)


def test_policies_exports() -> None:
    assert all(hasattr(policies, name) for name in policies.__all__)
    assert {"Policy", "PolicyError", "load_policy", "Decision", "LinearClassifier"} <= set(
        policies.__all__
    )


def test_deciding_imports_neither_scikit_learn_nor_litellm() -> None:
    code = (
        "import sys, router\n"
        "router.Router.from_config().decide({'messages': [{'role': 'user', 'content': 'hi'}]})\n"
        "assert 'sklearn' not in sys.modules and 'litellm' not in sys.modules, 'heavy import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
