"""What the engine benchmark's sections share: the models and the official engine's cleanup."""

from __future__ import annotations

import statistics

ROOT_MODEL = "sim-large"
SUB_MODEL = "sim-mini"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def collect_official_clients() -> None:
    """Finalise rlms's dropped httpx clients now, outside any event loop: their finaliser
    schedules ``aclose()`` on whatever loop is running (ours, later), where it fails noisily
    because their connections belong to the loops rlms already closed."""
    import gc

    gc.collect()
