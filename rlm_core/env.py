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


def apply_offline_defaults() -> None:
    """Set the environment so litellm and tiktoken work without network access."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        tokenizer_dir = _litellm_tokenizer_dir()
        if tokenizer_dir is not None:
            os.environ["TIKTOKEN_CACHE_DIR"] = str(tokenizer_dir)
