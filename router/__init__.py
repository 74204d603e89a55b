"""Request -> features -> decision: ``from router import Router``."""

from rlm_router.policies.decision import Decision
from rlm_router.router._router import Router
from rlm_router.router.features import RequestFeatures, extract_features
from rlm_router.router.request import ChatRequest, InvalidRequest

__all__ = [
    "ChatRequest",
    "Decision",
    "InvalidRequest",
    "RequestFeatures",
    "Router",
    "extract_features",
]
