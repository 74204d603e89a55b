"""Request -> features -> decision: ``from router import Router``."""

from policies.decision import Decision
from router._router import Router
from router.features import RequestFeatures, extract_features
from router.request import ChatRequest, InvalidRequest

__all__ = [
    "ChatRequest",
    "Decision",
    "InvalidRequest",
    "RequestFeatures",
    "Router",
    "extract_features",
]
