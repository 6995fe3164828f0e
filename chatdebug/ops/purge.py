"""The retention purge, one tick at a time.

Every tick:

1. reads the retention days from the store (never cached: an operator's change applies
   at the next tick). ``0`` disables the purge, and the tick still counts as a success;
   a stored value that is not an integer in 0..3650 fails the tick;
2. deletes at most one batch of runs (default 1,000) whose ``updated_at`` is older than
   the retention, oldest first, with their steps (by cascade, counted in the same
   transaction). In-progress runs go too: an abandoned run must not live forever;
3. records ``chatdebug_purge_records_removed_total`` for both record types, one
   ``chatdebug_purge_iteration_duration_seconds{success="true"}`` observation and the
   last-success time.

On PostgreSQL the delete runs under a transaction-scoped advisory lock (per schema): a
tick that finds another replica holding it records **no metric at all**: the replica
holding the lock does the purge and reports it. On SQLite the delete holds the
database's write lock (``BEGIN IMMEDIATE``), so two processes on one file purge one
after the other, never at once.
A failed tick is logged, observed with ``success="false"``, and the loop goes on.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..metrics import Metrics
from ..store import PURGE_BATCH_SIZE, PurgeResult, Store, StoreUnavailable

__all__ = ["DEFAULT_PURGE_INTERVAL", "PurgeOutcome", "PurgeTick", "Purger"]

logger = logging.getLogger("chatdebug.ops")

DEFAULT_PURGE_INTERVAL: timedelta = timedelta(minutes=10)
_DAY_SECONDS = 86_400


class PurgeOutcome(enum.Enum):
    """What one tick did."""

    PURGED = "purged"
    """Deleted what was due (possibly nothing); counted as a success."""
    DISABLED = "disabled"
    """Retention is 0: nothing deleted; counted as a success."""
    SKIPPED = "skipped"
    """Another process held the purge lock: nothing done, nothing recorded."""
    FAILED = "failed"
    """The retention read or the delete failed; observed with ``success="false"``."""


@dataclass(frozen=True, slots=True)
class PurgeTick:
    """One tick's outcome and counts."""

    outcome: PurgeOutcome
    runs_removed: int = 0
    steps_removed: int = 0
    retention_days: int | None = None
    error: str | None = None


StoreStatusListener = Callable[[str | None], None]
"""Told after a tick whether the store answered (``None``) or why not (one line)."""


class Purger:
    """The purge of one store: :meth:`tick` once, or under a :class:`~chatdebug.ops.Ticker`.

    Args:
        store: the store to purge.
        metrics: where the purge metrics go.
        batch_size: at most this many runs per tick (default 1,000).
        on_store_status: called after each tick with ``None`` when the store answered,
            else a one-line reason (``chatdebug serve`` feeds ``/readyz`` with it).
        now: the wall clock (tests move it).
    """

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        *,
        batch_size: int = PURGE_BATCH_SIZE,
        on_store_status: StoreStatusListener | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        self.store = store
        self.metrics = metrics
        self.batch_size = batch_size
        self._on_store_status = on_store_status
        self._now = now
        self._standing_by = False

    def tick(self) -> PurgeTick:
        """Run one purge iteration; never raises (failures are logged and counted)."""
        started = time.perf_counter()
        days: int | None = None
        try:
            days = self.store.get_retention_days(strict=True)
            if days == 0:
                result = PurgeResult(runs_removed=0, steps_removed=0)
            else:
                before = self._now() - timedelta(days=days)
                result = self.store.delete_old_runs(before, self.batch_size)
        except Exception as exc:
            return self._failed(exc, started, days)
        self._report(None)
        if result.skipped:
            # Said once when this replica starts standing by, then only at debug level.
            log = logger.debug if self._standing_by else logger.info
            log("chatdebug purge: another process holds the purge lock; this one skips its turn")
            self._standing_by = True
            return PurgeTick(PurgeOutcome.SKIPPED, retention_days=days)
        self._standing_by = False
        self.metrics.purge_retention.set(days * _DAY_SECONDS)
        self._record_success(result, started)
        if result.runs_removed:
            logger.info(
                "chatdebug purge: removed %d run(s) and %d step(s) not updated in %d day(s)",
                result.runs_removed,
                result.steps_removed,
                days,
            )
        outcome = PurgeOutcome.DISABLED if days == 0 else PurgeOutcome.PURGED
        return PurgeTick(outcome, result.runs_removed, result.steps_removed, days)

    def _record_success(self, result: PurgeResult, started: float) -> None:
        removed = self.metrics.purge_records_removed
        removed.labels(record_type="chat_debug_runs").inc(result.runs_removed)
        removed.labels(record_type="chat_debug_steps").inc(result.steps_removed)
        elapsed = time.perf_counter() - started
        self.metrics.purge_iteration_duration.labels(success="true").observe(elapsed)
        self.metrics.purge_last_success_timestamp.set(time.time())

    def _failed(self, exc: Exception, started: float, days: int | None) -> PurgeTick:
        elapsed = time.perf_counter() - started
        self.metrics.purge_iteration_duration.labels(success="false").observe(elapsed)
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, StoreUnavailable):
            logger.warning("chatdebug purge: failed to purge old debug runs: %s", reason)
            self._report(reason)
        else:
            logger.error("chatdebug purge: failed to purge old debug runs", exc_info=exc)
            self._report(None)
        return PurgeTick(PurgeOutcome.FAILED, retention_days=days, error=reason)

    def _report(self, reason: str | None) -> None:
        if self._on_store_status is not None:
            self._on_store_status(reason)
