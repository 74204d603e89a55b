"""Routing policies: the YAML schema and its validation, the classifier, and decisions.

Fitting (``policies.fit``, ``policies.prior``) imports scikit-learn and is never imported here.
``policies`` never imports ``router``: features are ``policies.features.RequestFeatures``,
computed by ``router.features``; builders that need them are given an extractor.
"""

from rlm_router.policies.calibrate import calibrate_threshold
from rlm_router.policies.classifier import ArtifactError, LinearClassifier
from rlm_router.policies.decision import Decision, decide, hard_rule
from rlm_router.policies.loader import DEFAULT_POLICY_PATH, PolicyError, load_policy, parse_policy
from rlm_router.policies.schema import (
    Calibration,
    ClassifierSpec,
    Exploration,
    LatencySettings,
    Models,
    ModelTarget,
    Override,
    Policy,
    Route,
    Rules,
)

__all__ = [
    "DEFAULT_POLICY_PATH",
    "ArtifactError",
    "Calibration",
    "ClassifierSpec",
    "Decision",
    "Exploration",
    "LatencySettings",
    "LinearClassifier",
    "ModelTarget",
    "Models",
    "Override",
    "Policy",
    "PolicyError",
    "Route",
    "Rules",
    "calibrate_threshold",
    "decide",
    "hard_rule",
    "load_policy",
    "parse_policy",
]
