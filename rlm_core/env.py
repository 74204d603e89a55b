"""Offline-safe defaults for litellm and tiktoken, applied before either is imported.

litellm fetches its model cost map from the network at import time unless
``LITELLM_LOCAL_MODEL_COST_MAP`` is set, and tiktoken downloads its encoding files on
first use unless ``TIKTOKEN_CACHE_DIR`` points at a directory that holds them. litellm
ships those files inside its package, so we point tiktoken there. A value the user set
is never overridden.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path


def _litellm_tokenizer_dir() -> Path | None:
    # find_spec locates the package without importing it (importing costs ~3 s).
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "litellm_core_utils" / "tokenizers"
        if candidate.is_dir():
            return candidate
    return None


def offline_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``environ`` with the offline defaults added (for a child process, e.g. the
    LiteLLM proxy, which imports litellm before any of our code runs)."""
    env = dict(environ)
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if "TIKTOKEN_CACHE_DIR" not in env:
        tokenizer_dir = _litellm_tokenizer_dir()
        if tokenizer_dir is not None:
            env["TIKTOKEN_CACHE_DIR"] = str(tokenizer_dir)
    return env


def apply_offline_defaults() -> None:
    """Set this process's environment so litellm and tiktoken work without network access.

    Called by ``rlm_core.litellm_api`` before it imports litellm and by ``rlm_core.tokens``
    before the first encode, not at import time of any package.
    """
    for key, value in offline_environ(os.environ).items():
        os.environ.setdefault(key, value)
