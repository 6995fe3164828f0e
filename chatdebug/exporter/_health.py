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

from ..metrics import STORAGE_REASONS, Metrics

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
    "spill_unreadable": "their record in the spill journal could not be read",
}
_STORAGE_TEXT: Final = {
    "disk_full": "the file system is full",
    "read_only": "the file system is read-only",
    "io_error": "of an I/O error",
    "cannot_open": "the file cannot be opened",
    "no_slot": "every journal slot under the path is in use",
    "closed": "it is closed",
}


class ExporterHealth:
    """Counts written, failed and dropped events of one writer or exporter."""

    def __init__(self, metrics: Metrics | None) -> None:
        self.metrics = metrics
        self.dropped: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._unlogged: Counter[str] = Counter()
        self._last_log: dict[str, float] = {}
        self.spilled_total = 0
        self.replayed_total = 0
        self.storage_failures: dict[str, str] = {}
        """Targets (``store``, ``journal``) whose storage refuses writes now, and why."""
        self._journal_full_logged = False

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

    # -- spill journal and local storage -------------------------------------------------
    def journal_capacity(self, max_bytes: int) -> None:
        if self.metrics is not None:
            self.metrics.spill_journal_capacity.set(max_bytes)

    def spilled(self, count: int) -> None:
        """``count`` events were handed to the spill journal."""
        if count <= 0:
            return
        with self._lock:
            self.spilled_total += count
        if self.metrics is not None:
            self.metrics.spill_events.inc(count)

    def replayed(self, count: int) -> None:
        """``count`` events of the spill journal were written to the store."""
        if count <= 0:
            return
        with self._lock:
            self.replayed_total += count
            self._journal_full_logged = False
        if self.metrics is not None:
            self.metrics.spill_replayed_events.inc(count)

    def journal_state(self, events: int, size: int, oldest: float | None) -> None:
        """What the journal holds: events, their bytes, when the oldest was queued
        (wall clock); the replay lag is that event's age."""
        if self.metrics is not None:
            self.metrics.spill_journal_events.set(events)
            self.metrics.spill_journal_bytes.set(size)
            lag = 0.0 if oldest is None else max(0.0, time.time() - oldest)
            self.metrics.spill_replay_lag.set(lag)

    def journal_full(self, path: object, max_bytes: int) -> None:
        """The journal reached its cap: logged once until it drains again."""
        with self._lock:
            if self._journal_full_logged:
                return
            self._journal_full_logged = True
        logger.warning(
            "chatdebug spill journal %s is full (spill_max_bytes=%d); events wait in the "
            "write queue and are dropped when it is full too",
            path,
            max_bytes,
        )

    def storage_failed(self, target: str, reason: str, detail: str) -> None:
        """The storage of ``target`` (``store``: an SQLite file; ``journal``) refuses
        writes: counted and logged once per episode, gauge at 0 until it works again."""
        with self._lock:
            if target in self.storage_failures:
                return
            self.storage_failures[target] = reason
        if self.metrics is not None:
            label = reason if reason in STORAGE_REASONS else "cannot_open"
            self.metrics.storage_failures.labels(target=target, reason=label).inc()
            self.metrics.storage_writable.labels(target=target).set(0)
        logger.warning(
            "chatdebug cannot write its %s because %s (%s); the application goes on, "
            "and writing resumes by itself once that is fixed",
            "spill journal" if target == "journal" else "SQLite store",
            _STORAGE_TEXT.get(reason, reason),
            detail,
        )

    def storage_ok(self, target: str) -> None:
        """A write to ``target``'s storage worked."""
        if target not in self.storage_failures:
            return
        with self._lock:
            reason = self.storage_failures.pop(target, None)
        if reason is None:
            return
        if self.metrics is not None:
            self.metrics.storage_writable.labels(target=target).set(1)
        logger.warning(
            "chatdebug can write its %s again", "spill journal" if target == "journal" else "store"
        )

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._unlogged.clear()
        self._last_log.clear()
