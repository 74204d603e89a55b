"""The types on the plugin's seams with LiteLLM, in one place.

LiteLLM's own public types, for the hook and ``CustomLLM`` signatures (imported for the type
checker only: at run time the proxy has loaded them already, and importing them here would
load litellm before its offline defaults), and our names for the plain dicts LiteLLM hands
the hooks. Those dicts are LiteLLM's (an OpenAI request body plus LiteLLM's own keys), so
their values are ``object``: every read narrows what it takes; what rides in them for us is
``RoutingMetadata``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from litellm.caching.dual_cache import DualCache as DualCache
    from litellm.litellm_core_utils.streaming_handler import (
        CustomStreamWrapper as CustomStreamWrapper,
    )
    from litellm.proxy._types import UserAPIKeyAuth as UserAPIKeyAuth
    from litellm.types.utils import CallTypesLiteral as CallTypesLiteral
    from litellm.types.utils import ModelResponseStream as ModelResponseStream

__all__ = ["CallKwargs", "RequestData"]

# A request body as the pre-call, failure and header hooks get it (mutable: the pre-call hook
# rewrites ``model`` and adds ``metadata``).
RequestData: TypeAlias = dict[str, object]
# The ``kwargs`` of LiteLLM's log events (``model``, ``litellm_params``, ``response_cost``...).
CallKwargs: TypeAlias = dict[str, object]
