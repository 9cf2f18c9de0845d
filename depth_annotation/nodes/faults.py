"""One bad message or request never kills a node.

rclpy's executor lets an exception from a subscription callback or a service handler
end `spin()`, so one malformed image would stop the whole node and lose its state
(captured calibration views, a half-written episode). `FaultGuard` wraps every
callback: an exception is caught for that one message, counted, handed to the node's
own `report` hook (status topic / diagnostics) and logged as one line naming the topic
and the cause, at most once per topic every `log_period_s`. A service request that
fails gets `success=False` and the cause in its response instead of no answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rclpy.node import Node


class FaultGuard:
    def __init__(
        self, node: Node, report: Callable[[str, str], None] | None = None, *, log_period_s: float = 5.0
    ) -> None:
        self.node = node
        self.report = report
        self.log_period_s = log_period_s
        self.counts: dict[str, int] = {}
        self.last_error = ""
        self._last_log: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def record(self, where: str, exc: BaseException) -> str:
        """Count, report and (rate-limited) log one failure at `where`; returns the one-line cause."""
        text = f"{type(exc).__name__}: {exc}" if not _is_ours(exc) else str(exc)
        now = time.monotonic()
        with self._lock:
            self.counts[where] = self.counts.get(where, 0) + 1
            self.last_error = f"{where}: {text}"
            count = self.counts[where]
            log = now - self._last_log.get(where, -1e18) >= self.log_period_s
            if log:
                self._last_log[where] = now
        if log:
            more = f" ({count} so far)" if count > 1 else ""
            self.node.get_logger().error(f"{where}: message ignored: {text}{more}")
        if self.report is not None:
            try:
                self.report(where, text)
            except Exception:  # a failing report must not undo the guard
                pass
        return text

    def callback(self, topic: str, fn: Callable[[Any], None]) -> Callable[[Any], None]:
        """`fn` for a subscription on `topic`, with each message's failure caught and reported."""

        def guarded(msg: Any) -> None:
            try:
                fn(msg)
            except Exception as exc:
                self.record(self.node.resolve_topic_name(topic), exc)

        return guarded

    def service(self, name: str, fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """`fn` for a service `name`: a failure answers success=False with the cause (never no answer)."""

        def guarded(req: Any, res: Any) -> Any:
            try:
                return fn(req, res)
            except Exception as exc:
                text = self.record(self.node.resolve_service_name(name), exc)
                if hasattr(res, "success"):
                    res.success = False
                for field in ("message", "status_message"):
                    if hasattr(res, field):
                        setattr(res, field, f"request failed: {text}")
                return res

        return guarded


def _is_ours(exc: BaseException) -> bool:
    """Our own errors carry a complete one-line message; others get their type name in front."""
    from depth_annotation.common import DepthAnnotationError

    return isinstance(exc, DepthAnnotationError)
