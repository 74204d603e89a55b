"""Retraining the routing classifier from traces, with off-policy (counterfactual) evaluation.

``train(records, current_classifier, threshold=...)`` builds the data set from request
records (``telemetry.load_request_records``), fits a new classifier by the doubly-robust
cost-sensitive reduction, estimates the new and the current policy's values cross-fitted
(each request scored by models fitted without it) with a paired bootstrap interval, and
promotes only if the interval of the improvement lies above zero. See ``training`` for the
steps, ``estimators`` for the estimates, ``utility`` for what is maximised. Imports numpy
here and scikit-learn when fitting.
"""

from rlm_router.policies.learning.dataset import (
    DatasetSummary,
    LoggedData,
    TrainingDataError,
    build_dataset,
)
from rlm_router.policies.learning.estimators import Comparison, Interval
from rlm_router.policies.learning.terms import ArtifactPolicy
from rlm_router.policies.learning.training import TrainingConfig, TrainingReport, train
from rlm_router.policies.learning.utility import Utility

__all__ = [
    "ArtifactPolicy",
    "Comparison",
    "DatasetSummary",
    "Interval",
    "LoggedData",
    "TrainingConfig",
    "TrainingDataError",
    "TrainingReport",
    "Utility",
    "build_dataset",
    "train",
]
