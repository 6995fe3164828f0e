"""The background writer: a bounded queue of store events drained by one daemon thread.

Callers only ever do a non-blocking put. The thread takes events in FIFO order, so the
events of one run keep their order, and writes each batch it takes in one store
transaction (:meth:`~chatdebug.store.Store.batch`): one commit per batch instead of one
per event. Each event is still accounted for on its own: an event the store rejects
(``RunNotFound``, ``RunFinalized``, any other store error) is undone alone and dropped
with its reason, and the rest of the batch goes in.

A store class with a bulk path (:class:`~chatdebug.store.BulkWriter`) gets the plain writes of
a batch through it (see :mod:`._bulkplan`: a step created and ended in one batch is one
insert, and nothing is read back), in parts small enough that the writer never holds
the GIL for long; when that path cannot apply a batch cleanly, the batch is applied
again event by event.

When the store is unavailable, anywhere in a batch including its commit, nothing of the
batch was written: the whole batch is retried with exponential backoff capped at
:data:`BACKOFF_MAX` seconds while everything stays queued, so writing resumes within
about a second of the store coming back (meanwhile the ``chatdebug_store_reachable``
gauge is 0 and ``chatdebug_exporter_oldest_event_age_seconds`` grows). Retrying is safe
because every event is idempotent (see
:func:`~chatdebug.exporter._events.apply_event`). Drops and writes are counted once the
batch has committed, from the attempt that committed, so a retried event is counted
once. When the queue is full, the new event is dropped and counted. A forked child
starts with an empty queue and its own thread (what the parent queued is the parent's
to write); at exit (or SIGTERM) :mod:`chatdebug._lifecycle` shuts every live writer down,
after the reaper thread has finished its work, within the exit flush
timeout (:func:`chatdebug._lifecycle.exit_flush_timeout`), and what it could not write is
counted (``reason="shutdown"``) and logged once, with the number of events.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Final

from opentelemetry import context as otel_context

from .._lifecycle import ForkStage, exit_flush_timeout, register_exit_flush, register_fork_safe
from .._safety import log_internal_error
from ..store import RunFinalized, RunNotFound, Store, StoreError, StoreUnavailable
from ._batch import BatchApplier, BulkRefused
from ._dead import DeadRows, PendingMarks, touch_key
from ._events import Event, apply_event
from ._health import ExporterHealth
from ._pricing import CostObserver, Pricer, price_events

__all__ = ["BackgroundWriter"]

logger = logging.getLogger("chatdebug.exporter")

BACKOFF_INITIAL: Final = 0.1
BACKOFF_MAX: Final = 1.0
"""Longest wait between two attempts at a batch while the store is unavailable."""


class BackgroundWriter:
    """Applies store events on a daemon thread. See the module docstring."""

    def __init__(
        self,
        store: Store,
        *,
        health: ExporterHealth,
        max_queue_size: int = 10_000,
        max_batch_size: int = 512,
        schedule_delay: float = 0.2,
        pricer: Pricer | None = None,
        observe_cost: CostObserver | None = None,
    ) -> None:
        if max_queue_size < 1:
            raise ValueError(f"max_queue_size must be at least 1, got {max_queue_size}")
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if schedule_delay < 0:
            raise ValueError(f"schedule_delay must not be negative, got {schedule_delay}")
        self._store = store
        self._health = health
        self._max_queue_size = max_queue_size
        self._max_batch_size = min(max_batch_size, max_queue_size)
        self._schedule_delay = schedule_delay
        self._pricer = pricer
        self._observe_cost = observe_cost
        self._closed = False
        self._init_state()
        health.queue_capacity_changed(max_queue_size)
        health.store_reachable(True)
        register_fork_safe(self, ForkStage.WRITERS)
        register_exit_flush(self)

    def _init_state(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[tuple[Event, float]] = deque()  # (event, time.monotonic())
        self._enqueued = 0  # events accepted so far
        self._done = 0  # events written or dropped so far (FIFO, so a prefix)
        self._flush_waiters = 0
        self._abort = False
        self._wake = threading.Event()  # cuts a backoff sleep short at shutdown
        self._thread: threading.Thread | None = None
        self._dead = DeadRows(self._cond)
        self._applier = BatchApplier(self._store, self._dead, self._health)
        self._pending_touches: set[tuple[str, object]] = set()
        self._outage_since: float | None = None
        self._shutdown_in_hand = 0  # events of the batch in hand dropped at shutdown
        self._in_hand: list[Event] | None = None  # the batch the thread is writing

    def _after_fork_in_child(self) -> None:
        # The parent's locks may have been held by one of its threads at fork time and
        # its thread does not exist here: start over. Queued events are the parent's.
        discarded = len(self._queue)
        self._init_state()
        self._health.reset_after_fork()
        self._health.queue_depth_changed(-discarded)

    # -- caller side -----------------------------------------------------------------
    def put(self, event: Event) -> bool:
        """Queue ``event`` without blocking; ``False`` when it was dropped (and counted)."""
        reason: str | None = None
        touch = touch_key(event)
        with self._cond:
            if self._closed:
                reason = "shutdown"
            else:
                dead = self._dead.reason(event)
                if dead is not None:
                    if touch is not None:
                        return False  # the run or step itself was already counted
                    reason = dead
                elif touch is not None and touch in self._pending_touches:
                    return True  # a heartbeat of the same row is already waiting
                elif len(self._queue) >= self._max_queue_size:
                    reason = "queue_full"
                    self._dead.mark(event, "step_dropped")
                else:
                    self._queue.append((event, time.monotonic()))
                    self._enqueued += 1
                    if touch is not None:
                        self._pending_touches.add(touch)
                    self._ensure_thread()
                    depth = len(self._queue)
                    # Wake the writer when its batch timer must start or the batch is full.
                    if depth == 1 or depth >= self._max_batch_size:
                        self._cond.notify_all()
        if reason is not None:
            self._health.drop(reason)
            return False
        self._health.queue_depth_changed(1)
        return True

    def flush(self, timeout: float) -> bool:
        """Wait until every event queued before this call is written (or dropped).
        Returns ``False`` if that did not happen within ``timeout`` seconds."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            target = self._enqueued
            if self._done >= target:
                return True
            if self._thread is threading.current_thread():
                return False
            self._ensure_thread()
            self._flush_waiters += 1
            self._cond.notify_all()
            try:
                while self._done < target:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                return True
            finally:
                self._flush_waiters -= 1

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush for up to ``timeout`` seconds (default: the exit flush timeout), then
        stop the thread. Events still queued then, and any put afterwards, are dropped
        and counted as ``shutdown``; what this drops is logged once, with its number."""
        if timeout is None:
            timeout = exit_flush_timeout()
        with self._cond:
            if self._closed:
                return self._done >= self._enqueued
            self._closed = True
        counted_before = self._health.dropped["shutdown"]
        flushed = self.flush(timeout)
        with self._cond:
            self._abort = True
            left = len(self._queue)
            self._queue.clear()
            self._done += left
            self._cond.notify_all()
            thread = self._thread
        self._wake.set()
        self._health.queue_depth_changed(-left)
        self._health.drop("shutdown", left, log=False)
        if thread is not None and thread is not threading.current_thread():
            # The batch in hand, if any, is given up and counted by the thread...
            thread.join(timeout=1.0)
            with self._cond:
                stuck, self._in_hand = self._in_hand, None
            if stuck is not None and thread.is_alive():
                # ...unless the thread is still stuck in the store (a lock wait, a
                # network timeout): then it is lost as far as anyone can tell.
                self._health.drop("shutdown", len(stuck), log=False)
                self._shutdown_in_hand += len(stuck)
        self._health.queue_capacity_changed(-self._max_queue_size)
        self._health.oldest_event_age(0.0)
        # What the thread itself counted as given up while it stopped is lost too.
        counted = self._health.dropped["shutdown"] - counted_before
        lost = max(left + self._shutdown_in_hand, counted)
        if lost:
            self._health.log_unwritten_at_shutdown(lost, timeout)
        self._health.log_pending()
        return flushed

    # -- bookkeeping (caller holds self._cond) ---------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._worker, name="chatdebug-writer", daemon=True
            )
            self._thread.start()

    # -- writer thread ---------------------------------------------------------------
    def _next_batch(self) -> tuple[list[Event], float] | None:
        """The next batch and when its oldest event was queued; ``None``: stop."""
        with self._cond:
            while not self._queue and not self._abort:
                self._cond.wait()
            if self._abort:
                return None
            deadline = time.monotonic() + self._schedule_delay
            while (
                len(self._queue) < self._max_batch_size
                and not self._flush_waiters
                and not self._closed
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._abort:
                return None
            count = min(len(self._queue), self._max_batch_size)
            taken = [self._queue.popleft() for _ in range(count)]
        self._health.queue_depth_changed(-count)
        return [event for event, _ in taken], taken[0][1]

    def _oldest_waiting(self) -> float | None:
        """When the oldest event still queued was queued."""
        with self._cond:
            return self._queue[0][1] if self._queue else None

    def _worker(self) -> None:
        # Our own store I/O must not produce spans through an instrumented driver.
        otel_context.attach(
            otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)
        )
        while True:
            taken = self._next_batch()
            if taken is None:
                return
            batch, queued_at = taken
            # Priced here, once per batch taken (a retried batch keeps its costs).
            batch = price_events(batch, self._pricer, self._observe_cost)
            with self._cond:
                self._in_hand = batch
            try:
                self._write_batch(batch, queued_at)
            except Exception as exc:  # the thread must survive our own bugs
                log_internal_error("exporter", exc)
            finally:
                oldest = self._oldest_waiting()
                self._health.oldest_event_age(0.0 if oldest is None else time.monotonic() - oldest)
                with self._cond:
                    self._in_hand = None
                    self._done += len(batch)
                    for event in batch:
                        key = touch_key(event)
                        if key is not None:
                            self._pending_touches.discard(key)
                    self._cond.notify_all()

    def _write_batch(self, batch: list[Event], queued_at: float) -> None:
        """Write ``batch`` in one store transaction, retrying all of it while the store
        is unavailable; then count every event's outcome once."""
        delay = BACKOFF_INITIAL
        bulk = self._applier.has_bulk
        while True:
            if self._abort:
                self._drop_at_shutdown(batch)
                return
            marks = PendingMarks()
            applier = self._applier
            applier.failing = batch[0]
            try:
                if bulk:
                    outcomes = applier.write_bulk(batch, marks)
                else:
                    outcomes = applier.write_each(batch, marks)
            except BulkRefused:
                bulk = False  # undone: again, event by event, at once
                continue
            except StoreUnavailable as exc:
                self._health.write_error(applier.failing.kind)
                self._health.store_reachable(False)
                self._health.oldest_event_age(time.monotonic() - queued_at)
                self._note_outage(exc, len(batch))
                self._wake.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            except Exception as exc:
                # The batch itself failed for good (a closed store, a broken contract):
                # write the events one at a time, each in its own transaction.
                if not isinstance(exc, StoreError):
                    log_internal_error("exporter", exc)
                for event in batch:
                    self._process(event)
                return
            self._dead.publish(marks)
            applier.count(outcomes)
            self._note_recovery()
            return

    def _drop_at_shutdown(self, batch: list[Event]) -> None:
        """Shut down while a batch could not be written: drop all of it, counting each
        event once (events of dead rows under their own reason, as always); nothing
        when :meth:`shutdown` has already counted the batch as lost."""
        with self._cond:
            if self._in_hand is None:
                return
        for event in batch:
            with self._cond:
                dead = self._dead.reason(event)
            if dead is None:
                self._health.drop("shutdown", log=False)  # shutdown() logs them once
                self._shutdown_in_hand += 1
            elif touch_key(event) is None:
                self._health.drop(dead)

    def _process(self, event: Event) -> None:
        """Write one event in its own transaction (when a batch cannot be used)."""
        with self._cond:
            dead = self._dead.reason(event)
        if dead is not None:
            if touch_key(event) is None:
                self._health.drop(dead)
            return
        delay = BACKOFF_INITIAL
        while True:
            if self._abort:
                self._health.drop("shutdown", log=False)  # shutdown() logs them once
                self._shutdown_in_hand += 1
                return
            started = time.perf_counter()
            try:
                apply_event(self._store, event)
            except StoreUnavailable as exc:
                self._health.write_error(event.kind)
                self._health.store_reachable(False)
                self._note_outage(exc, 1)
                self._wake.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            except (RunFinalized, RunNotFound) as exc:
                reason = "run_finalized" if isinstance(exc, RunFinalized) else "run_not_found"
                self._drop_failed(event, reason)
            except Exception as exc:
                # Not worth retrying: a rejected write, or a store that broke its contract
                # by raising something other than a StoreError (counted as our error too).
                if not isinstance(exc, StoreError):
                    log_internal_error("exporter", exc)
                self._health.write_error(event.kind)
                self._health.write_failed(event.kind, exc)
                self._drop_failed(event, "store_error")
            else:
                self._health.written(event.kind, time.perf_counter() - started)
            self._note_recovery()
            return

    def _drop_failed(self, event: Event, reason: str) -> None:
        with self._cond:
            self._dead.mark(event, "step_dropped" if reason == "store_error" else reason)
        self._health.drop(reason)

    def _note_outage(self, exc: StoreError, in_hand: int) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            logger.warning(
                "chatdebug store unavailable (%s); keeping %d queued events and retrying "
                "with backoff up to %.0fs",
                exc,
                len(self._queue) + in_hand,
                BACKOFF_MAX,
            )

    def _note_recovery(self) -> None:
        self._health.store_reachable(True)
        if self._outage_since is not None:
            logger.info(
                "chatdebug store reachable again after %.1fs; writing queued events",
                time.monotonic() - self._outage_since,
            )
            self._outage_since = None
