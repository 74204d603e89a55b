"""Token counting shared by the engine, the features and the simulated provider."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from rlm_core.env import apply_offline_defaults

if TYPE_CHECKING:
    import tiktoken

ENCODING_NAME = "o200k_base"


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    """The o200k encoding (GPT-4o/GPT-5 family), loaded once from litellm's bundled files."""
    apply_offline_defaults()
    import tiktoken

    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    """Exact token count of ``text`` (special-token text is counted as ordinary text)."""
    return len(encoding().encode(text, disallowed_special=()))
