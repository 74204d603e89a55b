"""The telemetry seam: an optional observer the engine notifies; it never decides anything."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from rlm_router.rlm_core.engine import RLMResult
    from rlm_router.rlm_core.trajectory import Execution, Iteration, ModelCall, Node

logger = logging.getLogger("rlm_router.rlm_core.observer")


@runtime_checkable
class EngineObserver(Protocol):
    """Called synchronously from the engine's event loop; keep each method cheap.

    ``node`` carries the recursion node id, parent id and depth; ``call.role`` is root or sub.
    Times are ``time.time()`` seconds; durations are seconds.
    """

    def on_run_start(self, node: Node) -> None: ...

    def on_run_end(
        self, node: Node, result: RLMResult | None, error: BaseException | None
    ) -> None: ...

    def on_iteration_start(self, node: Node, index: int) -> None: ...

    def on_iteration_end(self, node: Node, iteration: Iteration) -> None: ...

    def on_repl_execution(self, node: Node, execution: Execution) -> None: ...

    def on_model_call(self, call: ModelCall) -> None: ...


class Notifier:
    """Forwards events to an observer; an observer's exception is logged, never raised."""

    def __init__(self, observer: EngineObserver | None) -> None:
        self._observer = observer

    def __call__(self, method: str, *args: object) -> None:
        if self._observer is None:
            return
        try:
            getattr(self._observer, method)(*args)
        except Exception:
            logger.exception("EngineObserver.%s failed", method)
