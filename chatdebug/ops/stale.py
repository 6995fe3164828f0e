"""The stale finalizer: runs and steps still ``in_progress`` whose heartbeat stopped
(``updated_at`` older than the threshold, default 5 minutes) become ``interrupted``,
runs and their open steps together.

Finalizing is idempotent and touches only rows nobody updates any more, so replicas need
no lock: two finalizers at once simply find nothing left the second time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ..metrics import Metrics
from ..store import FinalizeResult, Store, StoreUnavailable

__all__ = ["DEFAULT_STALE_INTERVAL", "DEFAULT_STALE_THRESHOLD", "StaleFinalizer"]

logger = logging.getLogger("chatdebug.ops")

DEFAULT_STALE_THRESHOLD: timedelta = timedelta(minutes=5)
DEFAULT_STALE_INTERVAL: timedelta = timedelta(minutes=1)


class StaleFinalizer:
    """Finalizes abandoned rows of one store: :meth:`tick` once, or under a
    :class:`~chatdebug.ops.Ticker`.

    Args:
        store: the store.
        metrics: ``chatdebug_stale_rows_finalized_total`` goes here.
        threshold: no heartbeat for this long means abandoned.
        on_store_status: as for :class:`~chatdebug.ops.Purger`.
        now: the wall clock (tests move it).
    """

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        *,
        threshold: timedelta = DEFAULT_STALE_THRESHOLD,
        on_store_status: Callable[[str | None], None] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if threshold <= timedelta(0):
            raise ValueError(f"threshold must be positive, got {threshold!r}")
        self.store = store
        self.metrics = metrics
        self.threshold = threshold
        self._on_store_status = on_store_status
        self._now = now

    def tick(self) -> FinalizeResult | None:
        """Finalize what is stale now; ``None`` when that failed (logged, never raised)."""
        try:
            result = self.store.finalize_stale(self._now() - self.threshold)
        except Exception as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            if isinstance(exc, StoreUnavailable):
                logger.warning("chatdebug finalize-stale: store unavailable: %s", reason)
                self._report(reason)
            else:
                logger.error("chatdebug finalize-stale: failed", exc_info=exc)
                self._report(None)
            return None
        self._report(None)
        finalized = self.metrics.stale_rows_finalized
        finalized.labels(record_type="chat_debug_runs").inc(result.runs_finalized)
        finalized.labels(record_type="chat_debug_steps").inc(result.steps_finalized)
        if result.runs_finalized or result.steps_finalized:
            logger.info(
                "chatdebug finalize-stale: %d run(s) and %d step(s) interrupted (no heartbeat "
                "for %s)",
                result.runs_finalized,
                result.steps_finalized,
                self.threshold,
            )
        return result

    def _report(self, reason: str | None) -> None:
        if self._on_store_status is not None:
            self._on_store_status(reason)
