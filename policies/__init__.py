"""Routing policies: the YAML schema and its validation, the classifier, and decisions.

Fitting (``policies.fit``, ``policies.prior``) imports scikit-learn and is never imported here.
``policies`` never imports ``router``: features are ``policies.features.RequestFeatures``,
computed by ``router.features``; builders that need them are given an extractor.
"""

from rlm_core.env import apply_offline_defaults

apply_offline_defaults()

from policies.calibrate import calibrate_threshold  # noqa: E402
from policies.classifier import ArtifactError, LinearClassifier  # noqa: E402
from policies.decision import Decision, decide, hard_rule  # noqa: E402
from policies.loader import DEFAULT_POLICY_PATH, PolicyError, load_policy, parse_policy  # noqa: E402
from policies.schema import (  # noqa: E402
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
