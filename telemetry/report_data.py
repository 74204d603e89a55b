"""The numbers the HTML report is drawn from: one column per field, no record objects.

``ReportColumns`` takes request records one at a time (as a ``RequestScan`` streams them) and
keeps of each only the numbers and small codes the report plots, ~100 bytes a request
instead of a ``RequestRecord`` with its feature dict (~2 KB); ``finish`` orders the rows by
start time (stably, as sorting the records did) and applies the feedback that arrived
later in the files. Everything the report computes from the columns is computed in the same
order and with the same arithmetic as it was from the records, so the page is the same.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rlm_router.telemetry.records import RequestRecord

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

UNKNOWN = "unknown"


class _Codes:
    """Small integer codes for the few distinct strings of a column (None -> -1)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.names: list[str] = []

    def code(self, value: str | None) -> int:
        if value is None:
            return -1
        code = self.index.get(value)
        if code is None:
            code = self.index[value] = len(self.names)
            self.names.append(value)
        return code


@dataclass(frozen=True)
class ReportData:
    """The report's columns in start-time order (``*_set``: the value was recorded)."""

    time_s: FloatArray
    served: IntArray  # codes into served_names (a missing route is "unknown")
    served_names: tuple[str, ...]
    decided: IntArray  # codes into decided_names, -1 without a decision
    decided_names: tuple[str, ...]
    exploration: BoolArray
    cost: FloatArray
    cost_set: BoolArray
    latency_ms: FloatArray
    latency_set: BoolArray
    score: FloatArray
    score_set: BoolArray
    threshold: FloatArray
    threshold_set: BoolArray
    fallback: IntArray  # codes into fallback_names
    fallback_names: tuple[str, ...]
    error: BoolArray
    rlm_iterations: FloatArray
    rlm_iterations_set: BoolArray
    rlm_sub_calls: FloatArray
    rlm_sub_calls_set: BoolArray
    quality: FloatArray
    quality_set: BoolArray
    policy: IntArray  # codes into policy_names, -1 when unset
    policy_names: tuple[str, ...]
    rule: IntArray  # codes into rule_names, -1 when unset
    rule_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.time_s)

    @classmethod
    def from_records(cls, records: Iterable[RequestRecord]) -> ReportData:
        """The columns of records whose quality is final."""
        columns = ReportColumns()
        for record in records:
            columns.add(record)
        return columns.finish()

    def served_mask(self, route: str) -> BoolArray:
        if route not in self.served_names:
            return np.zeros(len(self), dtype=np.bool_)
        return np.asarray(self.served == self.served_names.index(route))

    def decided_mask(self, route: str) -> BoolArray:
        if route not in self.decided_names:
            return np.zeros(len(self), dtype=np.bool_)
        return np.asarray(self.decided == self.decided_names.index(route))

    def fallback_mask(self, kind: str) -> BoolArray:
        if kind not in self.fallback_names:
            return np.zeros(len(self), dtype=np.bool_)
        return np.asarray(self.fallback == self.fallback_names.index(kind))


class ReportColumns:
    """Builds ``ReportData`` from records as they stream (see the module docstring)."""

    def __init__(self) -> None:
        self._start = array("q")
        self._served, self._decided = _Codes(), _Codes()
        self._fallback, self._policy, self._rule = _Codes(), _Codes(), _Codes()
        self._codes = {name: array("i") for name in ("served", "decided", "fb", "pol", "rule")}
        self._flags = {name: array("b") for name in ("explore", "error")}
        self._values = {name: array("d") for name in _NULLABLE}
        self._set = {name: array("b") for name in _NULLABLE}
        self._decision_ids: list[str | None] = []

    def add(self, record: RequestRecord) -> None:
        self._start.append(record.start_time_unix_nano)
        codes = self._codes
        codes["served"].append(self._served.code(record.route_served or UNKNOWN))
        codes["decided"].append(self._decided.code(record.decided_route))
        codes["fb"].append(self._fallback.code(record.fallback))
        codes["pol"].append(self._policy.code(record.policy_version or None))
        codes["rule"].append(self._rule.code(record.rule or None))
        self._flags["explore"].append(record.exploration)
        self._flags["error"].append(record.error_type is not None)
        for name, value in (
            ("cost", record.cost_usd),
            ("latency", record.latency_ms),
            ("score", record.score),
            ("threshold", record.threshold),
            ("iterations", record.rlm_iterations),
            ("sub_calls", record.rlm_sub_calls),
            ("quality", record.quality),
        ):
            self._values[name].append(0.0 if value is None else value)
            self._set[name].append(value is not None)
        self._decision_ids.append(record.decision_id)

    def finish(self, reported: Callable[[str], float | None] | None = None) -> ReportData:
        """The columns in start-time order; ``reported(decision_id)`` gives late feedback."""
        quality = self._values["quality"]
        quality_set = self._set["quality"]
        if reported is not None:
            for row, decision_id in enumerate(self._decision_ids):
                if decision_id is not None:
                    value = reported(decision_id)
                    if value is not None:
                        quality[row] = value
                        quality_set[row] = True
        start = np.frombuffer(self._start, dtype=np.int64) if self._start else np.zeros(0, np.int64)
        order = np.argsort(start, kind="stable")

        def col(values: array[int] | array[float], dtype: type) -> npt.NDArray[np.generic]:
            out: npt.NDArray[np.generic] = np.asarray(values, dtype=dtype)
            return out[order] if len(out) else out

        def flag(values: array[int]) -> BoolArray:
            return np.asarray(col(values, np.bool_), dtype=np.bool_)

        def values(name: str) -> FloatArray:
            return np.asarray(col(self._values[name], np.float64), dtype=np.float64)

        def codes(name: str) -> IntArray:
            return np.asarray(col(self._codes[name], np.int64), dtype=np.int64)

        return ReportData(
            time_s=np.asarray(start[order] / 1e9, dtype=np.float64),
            served=codes("served"),
            served_names=tuple(self._served.names),
            decided=codes("decided"),
            decided_names=tuple(self._decided.names),
            exploration=flag(self._flags["explore"]),
            cost=values("cost"),
            cost_set=flag(self._set["cost"]),
            latency_ms=values("latency"),
            latency_set=flag(self._set["latency"]),
            score=values("score"),
            score_set=flag(self._set["score"]),
            threshold=values("threshold"),
            threshold_set=flag(self._set["threshold"]),
            fallback=codes("fb"),
            fallback_names=tuple(self._fallback.names),
            error=flag(self._flags["error"]),
            rlm_iterations=values("iterations"),
            rlm_iterations_set=flag(self._set["iterations"]),
            rlm_sub_calls=values("sub_calls"),
            rlm_sub_calls_set=flag(self._set["sub_calls"]),
            quality=values("quality"),
            quality_set=flag(self._set["quality"]),
            policy=codes("pol"),
            policy_names=tuple(self._policy.names),
            rule=codes("rule"),
            rule_names=tuple(self._rule.names),
        )


_NULLABLE = ("cost", "latency", "score", "threshold", "iterations", "sub_calls", "quality")
