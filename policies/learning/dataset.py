"""The off-policy data set: one row per routed request, from span attributes alone.

Each row holds the request's features, the route its decision chose (the *action*; a later
fallback is part of that action's outcome), the probability the logging policy gave that
route (the *propensity*), whether a hard rule forced it, and the utility of the outcome.
Inner sub-calls never become rows: ``telemetry.records`` only joins ``rlm_router.decide``
spans with their ``rlm_router.request`` parent, and a row needs a decision.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from rlm_router.policies.learning.utility import Utility
from rlm_router.rlm_core.errors import RequestError

if TYPE_CHECKING:
    from rlm_router.telemetry.records import RequestRecord

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
    # How many logged requests each row stands for when the rows are a sample
    # (``sampling.sample_rows``); None: every row is itself (weight 1).
    weight: FloatArray | None = None

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
            weight=None if self.weight is None else self.weight[index],
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
    *,
    reported: Callable[[str], float | None] | None = None,
) -> tuple[LoggedData, DatasetSummary]:
    """Rows for off-policy learning from request records, in start-time order.

    ``reported(decision_id)`` is the quality reported for a decision, when it may arrive
    after the records (a ``telemetry.RequestScan`` streaming traces): it is consulted once
    the records are consumed and overrides a record's own quality. Records are reduced to
    columns as they come, so a stream of millions is never held as objects.

    Raises ``TrainingDataError`` when no row is usable, when no request carries a propensity,
    or when exploration never happened (then only the logging policy's own routes were
    observed and no counterfactual estimate is possible).
    """
    names = tuple(feature_names)
    rows = _Rows(len(names))
    for record in records:
        reason = _exclusion(record, names)
        if reason is not None:
            rows.exclude(record.start_time_unix_nano, reason)
            continue
        assert record.propensity is not None and record.decided_route is not None
        rows.add(record, [float(record.features[name]) for name in names])
    return rows.finish(utility, names, reported)


class _Rows:
    """The candidate rows' columns while records stream (see ``build_dataset``)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.start = array("q")  # every record's start time
        self.reason = array("i")  # -1: a candidate row, else a code into reasons
        self.reasons: dict[str, int] = {}
        self.features = array("d")
        self.action = array("q")
        self.propensity = array("d")
        self.forced = array("b")
        self.explored = array("b")
        self.quality = array("d")
        self.quality_set = array("b")
        self.failed = array("b")
        self.cost: list[float | None] = []
        self.latency: list[float | None] = []
        self.ids: list[str] = []
        self.decision_ids: list[str | None] = []

    def exclude(self, start: int, reason: str) -> None:
        self.start.append(start)
        self.reason.append(self.reasons.setdefault(reason, len(self.reasons)))

    def add(self, record: RequestRecord, features: list[float]) -> None:
        assert record.propensity is not None
        self.start.append(record.start_time_unix_nano)
        self.reason.append(-1)
        self.features.extend(features)
        self.action.append(RLM if record.decided_route == "rlm" else LLM)
        self.propensity.append(record.propensity)
        self.forced.append(record.rule is not None)
        self.explored.append(record.exploration)
        self.quality.append(record.quality if record.quality is not None else 0.0)
        self.quality_set.append(record.quality is not None)
        self.failed.append(record.error_type is not None)
        self.cost.append(record.cost_usd)
        self.latency.append(record.latency_ms)
        self.ids.append(record.decision_id or record.trace_id)
        self.decision_ids.append(record.decision_id)

    def finish(
        self,
        utility: Utility,
        names: tuple[str, ...],
        reported: Callable[[str], float | None] | None,
    ) -> tuple[LoggedData, DatasetSummary]:
        no_quality = self.reasons.setdefault(_NO_QUALITY, len(self.reasons))
        candidate = np.flatnonzero(np.asarray(self.reason, dtype=np.int64) < 0)
        reason = np.asarray(self.reason, dtype=np.int64)
        values = np.zeros(len(self.ids), dtype=np.float64)
        for row, decision_id in enumerate(self.decision_ids):
            late = reported(decision_id) if reported is not None and decision_id else None
            quality = (
                late if late is not None else (self.quality[row] if self.quality_set[row] else None)
            )
            value = utility.of_outcome(
                quality,
                failed=bool(self.failed[row]),
                cost_usd=self.cost[row],
                latency_ms=self.latency[row],
            )
            if value is None:
                reason[candidate[row]] = no_quality
            else:
                values[row] = value
        # Rows in start-time order (stable: as sorting the records by start time did).
        order = np.argsort(np.asarray(self.start, dtype=np.int64), kind="stable")
        by_code = {code: text for text, code in self.reasons.items()}
        summary = DatasetSummary(requests=len(order))
        ordered_reasons = reason[order]
        for code in ordered_reasons[ordered_reasons >= 0].tolist():
            summary.excluded[by_code[code]] += 1
        row_of = np.full(len(reason), -1, dtype=np.int64)
        row_of[candidate] = np.arange(len(candidate))
        keep = row_of[order[ordered_reasons < 0]]  # usable rows, in time order
        features = np.asarray(self.features, dtype=np.float64).reshape(len(self.ids), self.width)
        action = np.asarray(self.action, dtype=np.int64)[keep]
        data = LoggedData(
            feature_names=names,
            features=features[keep].reshape(len(keep), len(names)),
            action=action,
            propensity=np.asarray(self.propensity, dtype=np.float64)[keep],
            utility=values[keep],
            forced=np.asarray(self.forced, dtype=np.bool_)[keep],
            exploration=np.asarray(self.explored, dtype=np.bool_)[keep],
            decision_ids=tuple(self.ids[i] for i in keep.tolist()),
        )
        for route in action.tolist():
            summary.by_route[ROUTES[route]] += 1
        summary.usable = len(keep)
        summary.explored = int(data.exploration.sum())
        summary.forced = int(data.forced.sum())
        _check(summary)
        return data, summary


_NO_QUALITY = "no quality: no feedback and no error"


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
                "exploration.rate > 0 in the policy, serve traffic, then train on the new traces."
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
            "no counterfactual estimate is possible. Set exploration.rate > 0 (e.g. 0.05) in "
            "the policy and collect more traces."
        )
    if free == 0:
        raise TrainingDataError(
            "every usable request was routed by a hard rule; the classifier has nothing to learn"
        )
