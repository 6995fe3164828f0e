"""Exporter health accounting: metrics when configured, and rate-limited drop logs.

A drop is never silent: it is counted in ``chatdebug_exporter_events_dropped_total``
(when metrics are configured), kept in :attr:`ExporterHealth.dropped` and logged — the
first one at once, then at most one summary line per reason every
:data:`LOG_INTERVAL_SECONDS`, so a long outage does not flood the logs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Final

from ..metrics import Metrics

__all__ = ["LOG_INTERVAL_SECONDS", "ExporterHealth"]

logger = logging.getLogger("chatdebug.exporter")

LOG_INTERVAL_SECONDS: Final = 10.0

_REASON_TEXT: Final = {
    "queue_full": "the write queue was full",
    "run_dropped": "their run was not recorded",
    "step_dropped": "their step was not recorded",
    "run_finalized": "their run was already finalized (stale)",
    "run_not_found": "their run does not exist in the store",
    "store_error": "the store rejected them",
    "shutdown": "the exporter was shut down",
}


class ExporterHealth:
    """Counts written, failed and dropped events of one writer or exporter."""

    def __init__(self, metrics: Metrics | None) -> None:
        self.metrics = metrics
        self.dropped: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._unlogged: Counter[str] = Counter()
        self._last_log: dict[str, float] = {}

    def written(self, kind: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.exporter_events_written.labels(kind=kind).inc()
            self.metrics.exporter_write_duration.observe(seconds)

    def write_error(self, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.exporter_write_errors.labels(kind=kind).inc()

    def write_failed(self, kind: str, exc: BaseException) -> None:
        """Log a failed write, at most once per kind every LOG_INTERVAL_SECONDS."""
        now = time.monotonic()
        with self._lock:
            last = self._last_log.get("write:" + kind)
            if last is not None and now - last < LOG_INTERVAL_SECONDS:
                return
            self._last_log["write:" + kind] = now
        logger.warning("chatdebug could not write a %s event to the store: %s", kind, exc)

    def queue_depth_changed(self, delta: int) -> None:
        if self.metrics is not None and delta:
            self.metrics.exporter_queue_depth.inc(delta)

    def queue_capacity_changed(self, delta: int) -> None:
        if self.metrics is not None and delta:
            self.metrics.exporter_queue_capacity.inc(delta)

    def oldest_event_age(self, seconds: float) -> None:
        """Age of the oldest event not written yet (0 when there is none)."""
        if self.metrics is not None:
            self.metrics.exporter_oldest_event_age.set(max(0.0, seconds))

    def store_reachable(self, reachable: bool) -> None:
        if self.metrics is not None:
            self.metrics.store_reachable.set(1 if reachable else 0)

    def drop(self, reason: str, count: int = 1, *, log: bool = True) -> None:
        """Count ``count`` events dropped for ``reason`` and log, rate-limited
        (``log=False``: the caller logs them itself)."""
        if count <= 0:
            return
        if self.metrics is not None:
            self.metrics.exporter_events_dropped.labels(reason=reason).inc(count)
        now = time.monotonic()
        with self._lock:
            self.dropped[reason] += count
            if not log:
                return
            self._unlogged[reason] += count
            last = self._last_log.get(reason)
            if last is not None and now - last < LOG_INTERVAL_SECONDS:
                return
            self._last_log[reason] = now
            pending = self._unlogged.pop(reason)
        self._log_drop(reason, pending)

    def log_pending(self) -> None:
        """Log the drops not logged yet because of the rate limit (at shutdown)."""
        with self._lock:
            pending, self._unlogged = self._unlogged, Counter()
        for reason, count in sorted(pending.items()):
            self._log_drop(reason, count)

    @staticmethod
    def log_unwritten_at_shutdown(count: int, timeout: float) -> None:
        """The one line saying what a shutdown could not write."""
        logger.warning(
            "chatdebug exporter could not write %d queued debug event(s) within the "
            "exit flush timeout of %gs; they are lost (counted in "
            "chatdebug_exporter_events_dropped_total{reason='shutdown'})",
            count,
            timeout,
        )

    @staticmethod
    def _log_drop(reason: str, count: int) -> None:
        logger.warning(
            "chatdebug exporter dropped %d debug event(s) because %s "
            "(counted in chatdebug_exporter_events_dropped_total{reason=%r})",
            count,
            _REASON_TEXT.get(reason, reason),
            reason,
        )

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._unlogged.clear()
        self._last_log.clear()
