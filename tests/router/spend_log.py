"""A LiteLLM callback for the proxy under test: what LiteLLM bills each call, as JSON lines.

LiteLLM's spend tracking (keys, teams, spend logs) books ``kwargs["response_cost"]`` of each
success event; the proxy in ``test_proxy`` has no database, so this records the same figure
to the file named by ``RLM_ROUTER_TEST_SPEND_LOG``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from litellm.integrations.custom_logger import CustomLogger


class SpendLog(CustomLogger):
    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        metadata = (kwargs.get("litellm_params") or {}).get("metadata") or {}
        routed = metadata.get("rlm_router") or {}
        record = {
            "model": kwargs.get("model"),
            "provider": kwargs.get("custom_llm_provider"),
            "stream": bool(kwargs.get("stream")),
            "response_cost": kwargs.get("response_cost"),
            "inner": bool(metadata.get("rlm_router_inner")),
            "decision_id": routed.get("decision_id") or metadata.get("rlm_router_decision_id"),
            "user": kwargs.get("user") or (kwargs.get("litellm_params") or {}).get("user"),
            "tags": metadata.get("tags") or [],
        }
        _append(os.environ["RLM_ROUTER_TEST_SPEND_LOG"], json.dumps(record))


def _append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as log:
        log.write(line + "\n")


recorder = SpendLog()
