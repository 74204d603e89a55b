"""Training on a weighted sample when the logs hold more rows than fitting needs.

A day of a busy gateway is millions of usable rows; the estimate's precision is set by the
explored rows (the only ones that observe the other route where the policies disagree), and
the fits gain little past ~10^5 rows while their cost grows linearly. So above
``max_rows``: every explored row is kept (unless they alone exceed three quarters of the
budget, then a uniform sample of them), and the other rows are sampled stratified by
(route, rule-forced) in proportion to their counts. Each kept row carries the number of
logged rows it stands for (its stratum's count over its sample size), and every mean the
trainer takes is weighted by it, so the estimates stay unbiased for the full log.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from rlm_router.policies.learning.dataset import IntArray, LoggedData

DEFAULT_MAX_ROWS = 60_000


@dataclass(frozen=True)
class SampleSummary:
    """What a sample kept of the usable rows."""

    rows: int  # usable rows in the log
    kept: int
    explored_kept: int
    explored: int

    def line(self) -> str:
        return (
            f"sampled {self.kept} of {self.rows} usable rows for fitting and evaluation "
            f"({self.explored_kept} of {self.explored} explored kept; the rest stratified by "
            "route and rule, weighted by the rows each stands for)"
        )


def sample_rows(
    data: LoggedData, max_rows: int, *, seed: int = 0
) -> tuple[LoggedData, SampleSummary | None]:
    """``data`` itself when it has at most ``max_rows`` rows, else a weighted sample of it."""
    n = len(data)
    if n <= max_rows:
        return data, None
    rng = np.random.default_rng(seed)
    explored = np.flatnonzero(data.exploration)
    rest = np.flatnonzero(~data.exploration)
    explored_budget = min(len(explored), max_rows - max_rows // 4)
    parts = [_stratum(explored, explored_budget, rng)]
    budget = max_rows - explored_budget
    strata = [
        rest[(data.action[rest] == action) & (data.forced[rest] == forced)]
        for action in (0, 1)
        for forced in (False, True)
    ]
    for rows in strata:
        if len(rows):
            share = max(1, round(budget * len(rows) / len(rest)))
            parts.append(_stratum(rows, min(share, len(rows)), rng))
    index = np.concatenate([kept for kept, _ in parts])
    weight = np.concatenate([np.full(len(kept), w) for kept, w in parts])
    order = np.argsort(index, kind="stable")  # keep the rows in time order
    index, weight = index[order], weight[order]
    sample = replace(data.take(index), weight=weight)
    summary = SampleSummary(
        rows=n, kept=len(index), explored_kept=len(parts[0][0]), explored=len(explored)
    )
    return sample, summary


def _stratum(rows: IntArray, size: int, rng: np.random.Generator) -> tuple[IntArray, float]:
    """``size`` rows drawn without replacement, and the weight each then carries."""
    if size >= len(rows):
        return rows, 1.0
    return rng.choice(rows, size=size, replace=False), len(rows) / size
