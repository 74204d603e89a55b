"""The utility a routing policy maximises: one number per served request.

``u = quality − cost_weight · cost_usd − latency_weight · latency_s``

Quality is the outcome's 0..1 score (explicit feedback by decision id, else the outcome
attribute). A request that ended in an error with no quality report is an automatic signal:
it scores ``failure_quality``. A request with neither a quality nor an error tells nothing
about how good its route was and is left out of the data set.

The default cost weight is the one the shipped prior was fitted with (``policies.prior``:
0.25 per USD, so a route $0.40 dearer must be ten quality points better); the latency weight
values 10 s at ten points. Users with other trade-offs set the weights in the policy
YAML (if the schema carries them) or on the ``rlm-router train`` command line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlm_router.telemetry.records import RequestRecord

DEFAULT_COST_WEIGHT = 0.25  # utility per USD (policies.prior.LAMBDA)
DEFAULT_LATENCY_WEIGHT = 0.01  # utility per second


@dataclass(frozen=True, kw_only=True)
class Utility:
    """Weights of the utility; see the module docstring."""

    cost_weight: float = DEFAULT_COST_WEIGHT
    latency_weight: float = DEFAULT_LATENCY_WEIGHT
    failure_quality: float = 0.0

    def __post_init__(self) -> None:
        for name in ("cost_weight", "latency_weight"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"Utility.{name} must be a finite number >= 0, got {value!r}")
        if not 0.0 <= self.failure_quality <= 1.0:
            raise ValueError(
                f"Utility.failure_quality must be in [0, 1], got {self.failure_quality!r}"
            )

    def value(self, quality: float, cost_usd: float, latency_s: float) -> float:
        """The utility of one outcome."""
        return quality - self.cost_weight * cost_usd - self.latency_weight * latency_s

    def of(self, record: RequestRecord) -> float | None:
        """The utility of a logged request, or None when its quality is unknown."""
        return self.of_outcome(
            record.quality,
            failed=record.error_type is not None,
            cost_usd=record.cost_usd,
            latency_ms=record.latency_ms,
        )

    def of_outcome(
        self,
        quality: float | None,
        *,
        failed: bool,
        cost_usd: float | None,
        latency_ms: float | None,
    ) -> float | None:
        """``of`` on an outcome's fields (None when the quality is unknown)."""
        if quality is None:
            if not failed:
                return None
            quality = self.failure_quality
        return self.value(quality, cost_usd or 0.0, (latency_ms or 0.0) / 1000.0)

    def describe(self) -> str:
        return (
            f"u = quality - {self.cost_weight:g}*cost_usd - {self.latency_weight:g}*latency_s "
            f"(failures without feedback score {self.failure_quality:g})"
        )
