"""Request -> features -> decision: ``from router import Router``."""

from rlm_core.env import apply_offline_defaults

apply_offline_defaults()

from policies.decision import Decision  # noqa: E402
from router._router import Router  # noqa: E402
from router.features import RequestFeatures, extract_features  # noqa: E402
from router.request import ChatRequest, InvalidRequest  # noqa: E402

__all__ = [
    "ChatRequest",
    "Decision",
    "InvalidRequest",
    "RequestFeatures",
    "Router",
    "extract_features",
]
