"""The off-policy data set: one row per routed request, from span attributes alone.

Each row holds the request's features, the route its decision chose (the *action*; a later
fallback is part of that action's outcome), the probability the logging policy gave that
route (the *propensity*), whether a hard rule forced it, and the utility of the outcome.
Inner sub-calls never become rows: ``telemetry.records`` only joins ``rlm_router.decide``
spans with their ``rlm_router.request`` parent, and a row needs a decision.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from policies.learning.utility import Utility
from rlm_core.errors import RequestError

if TYPE_CHECKING:
    from telemetry.records import RequestRecord

LLM = 0
RLM = 1
ROUTES = ("llm", "rlm")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class TrainingDataError(RequestError):
    """The traces cannot support off-policy training; the message says why and what to do."""


@dataclass(frozen=True)
class LoggedData:
    """Columns of the usable rows (index i is one request)."""

    feature_names: tuple[str, ...]
    features: FloatArray  # (n, d)
    action: IntArray  # LLM or RLM, as decided
    propensity: FloatArray  # P(action | x) under the logging policy
    utility: FloatArray
    forced: BoolArray  # a hard rule chose the route: no other route was possible
    exploration: BoolArray
    decision_ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.action)

    def take(self, index: IntArray | BoolArray) -> LoggedData:
        """The rows at ``index`` (integer positions or a mask)."""
        ids = np.asarray(self.decision_ids, dtype=object)[index]
        return LoggedData(
            feature_names=self.feature_names,
            features=self.features[index],
            action=self.action[index],
            propensity=self.propensity[index],
            utility=self.utility[index],
            forced=self.forced[index],
            exploration=self.exploration[index],
            decision_ids=tuple(str(i) for i in ids),
        )


@dataclass
class DatasetSummary:
    """What went into the data set and what was left out, and why."""

    requests: int = 0
    usable: int = 0
    excluded: Counter[str] = field(default_factory=Counter)
    by_route: Counter[str] = field(default_factory=Counter)
    explored: int = 0
    forced: int = 0

    def lines(self) -> list[str]:
        out = [
            f"requests read: {self.requests}; usable rows: {self.usable} "
            f"(llm {self.by_route['llm']}, rlm {self.by_route['rlm']}; "
            f"{self.explored} explored, {self.forced} forced by a rule)"
        ]
        for reason, count in sorted(self.excluded.items()):
            out.append(f"  left out: {count} ({reason})")
        return out


def build_dataset(
    records: Iterable[RequestRecord],
    utility: Utility,
    feature_names: Sequence[str],
) -> tuple[LoggedData, DatasetSummary]:
    """Rows for off-policy learning from request records.

    Raises ``TrainingDataError`` when no row is usable, when no request carries a propensity,
    or when exploration never happened (then only the logging policy's own routes were
    observed and no counterfactual estimate is possible).
    """
    names = tuple(feature_names)
    summary = DatasetSummary()
    rows: list[list[float]] = []
    actions: list[int] = []
    propensities: list[float] = []
    utilities: list[float] = []
    forced: list[bool] = []
    explored: list[bool] = []
    ids: list[str] = []
    for record in records:
        summary.requests += 1
        reason = _exclusion(record, names)
        value = utility.of(record) if reason is None else None
        if reason is None and value is None:
            reason = "no quality: no feedback and no error"
        if reason is not None or value is None:
            summary.excluded[reason or "no utility"] += 1
            continue
        assert record.propensity is not None and record.decided_route is not None
        rows.append([float(record.features[name]) for name in names])
        actions.append(RLM if record.decided_route == "rlm" else LLM)
        propensities.append(record.propensity)
        utilities.append(value)
        forced.append(record.rule is not None)
        explored.append(record.exploration)
        ids.append(record.decision_id or record.trace_id)
        summary.by_route[record.decided_route] += 1
    summary.usable = len(rows)
    summary.explored = sum(explored)
    summary.forced = sum(forced)
    _check(summary)
    data = LoggedData(
        feature_names=names,
        features=np.asarray(rows, dtype=np.float64).reshape(len(rows), len(names)),
        action=np.asarray(actions, dtype=np.int64),
        propensity=np.asarray(propensities, dtype=np.float64),
        utility=np.asarray(utilities, dtype=np.float64),
        forced=np.asarray(forced, dtype=np.bool_),
        exploration=np.asarray(explored, dtype=np.bool_),
        decision_ids=tuple(ids),
    )
    return data, summary


def _exclusion(record: RequestRecord, names: tuple[str, ...]) -> str | None:
    """Why ``record`` cannot be a row, or None."""
    if record.decided_route not in ROUTES:
        return "no decision span (failed before deciding, or not a routed request)"
    if record.propensity is None:
        return "no propensity recorded (logged without exploration support)"
    if not 0.0 < record.propensity <= 1.0 or math.isnan(record.propensity):
        return "propensity outside (0, 1]"
    missing = [name for name in names if name not in record.features]
    if missing:
        return f"missing features ({', '.join(missing[:3])}{'...' if len(missing) > 3 else ''})"
    return None


def _check(summary: DatasetSummary) -> None:
    no_propensity = sum(n for r, n in summary.excluded.items() if r.startswith("no propensity"))
    if summary.usable == 0:
        if no_propensity:
            raise TrainingDataError(
                f"none of the {summary.requests} requests carries a propensity "
                "(rlm_router.decision.propensity): these traces were recorded by a router "
                "without exploration logging, and an unbiased retraining needs it. Set "
                "exploration_rate > 0 in the policy, serve traffic, then train on the new traces."
            )
        reasons = "; ".join(f"{n} {r}" for r, n in summary.excluded.most_common())
        raise TrainingDataError(
            f"no usable request among {summary.requests} ({reasons or 'no requests'})"
        )
    free = summary.usable - summary.forced
    if summary.explored == 0:
        raise TrainingDataError(
            f"no exploration in {summary.usable} usable requests: every request took the "
            "route the policy preferred, so the other route's outcome was never observed and "
            "no counterfactual estimate is possible. Set exploration_rate > 0 (e.g. 0.05) in "
            "the policy and collect more traces."
        )
    if free == 0:
        raise TrainingDataError(
            "every usable request was routed by a hard rule; the classifier has nothing to learn"
        )
