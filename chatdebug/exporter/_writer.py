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
a fraction of a second of the store coming back (meanwhile the ``chatdebug_store_reachable``
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

With a spill journal (:mod:`._spill`, handed in as ``spill``) nothing waits in memory for
long: a hand-off thread moves to the journal every queued event within ``handoff``
seconds of its queueing (it takes those older than half the delay, looking every eighth
of it), the batch in hand too when its write takes that long, the whole queue while the
store is unavailable or the queue is above half its capacity, and the writer journals a
batch the store refused as unavailable. Whatever a crash leaves is then in the journal,
but for at most the last ``handoff`` seconds. The writer always writes the journal
before the queue (every journaled event is older than every queued one, see
:meth:`BackgroundWriter._spill_once`), so events keep their order; journaled events are
removed once their batch has committed (a crash in between replays them: every event is
idempotent). Only when the journal is full or its storage refuses writes does the queue
fill and drop as before. At shutdown, what could not be written is left in the journal
for the next process configured with the same path (or ``chatdebug replay-spill``).
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
from ._batch import BatchApplier, BulkRefused, Outcome
from ._dead import DeadRows, PendingMarks, touch_key
from ._events import Event, apply_event
from ._health import ExporterHealth
from ._pricing import CostObserver, Pricer, price_events
from ._readahead import ReadAhead
from ._spill import JournalUnwritable, SpillJournal, storage_reason, wall_time

__all__ = ["BackgroundWriter"]

logger = logging.getLogger("chatdebug.exporter")

BACKOFF_INITIAL: Final = 0.1
BACKOFF_MAX: Final = 0.25
"""Longest wait between two attempts at a batch while the store is unavailable: an
attempt against a store that is down costs little (PostgreSQL's is a probe at most every
:data:`~chatdebug.store._postgres_conn.PROBE_INTERVAL_SECONDS`), and the wait is what
writing loses once it is back."""
DEFAULT_HANDOFF: Final = 0.25
"""Seconds an event may wait in memory before it is handed to the spill journal."""
_ADOPT_INTERVAL: Final = 10.0  # seconds between looks for journals of dead processes
_JOURNAL_RETRY: Final = 1.0  # seconds before a full or failing journal is tried again
_JOURNAL_BATCHES: Final = 4  # queue batches per batch written from the journal


class _Hand:
    """The batch the writer thread is writing, as the hand-off thread sees it."""

    __slots__ = ("committed", "entries", "journaled", "kept")

    def __init__(self, entries: list[tuple[Event, float, int]]) -> None:
        self.entries = entries
        self.journaled = False  # its events are in the journal
        self.committed = False  # the writer is done with it
        self.kept = False  # the writer left it in the journal, to write it from there


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
        spill: SpillJournal | None = None,
        handoff: float = DEFAULT_HANDOFF,
    ) -> None:
        if handoff <= 0:
            raise ValueError(f"handoff must be positive, got {handoff}")
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
        # With a journal, a batch must not wait for company longer than an eighth of the
        # hand-off delay, or healthy writing would send every event through the journal.
        self._schedule_delay = schedule_delay if spill is None else min(schedule_delay, handoff / 8)
        # The hand-off thread looks every eighth of the delay and takes what is older
        # than half of it: an event is in the journal after five eighths of the delay
        # plus the journal's write, which leaves the rest of the delay to a busy
        # machine's scheduling (a thread waiting for the interpreter lock or a core).
        self._spill_interval = handoff / 8
        self._spill_age = handoff / 2
        self._pricer = pricer
        self._observe_cost = observe_cost
        self._spill = spill
        self._handoff = handoff
        self._closed = False
        self._init_state()
        health.queue_capacity_changed(max_queue_size)
        health.store_reachable(True)
        register_fork_safe(self, ForkStage.WRITERS)
        register_exit_flush(self)
        if spill is not None:
            health.journal_capacity(spill.max_bytes)
            # What a process that died with this path left is written first.
            adopted = self._adopt()
            with self._cond:
                self._ensure_thread()
                if adopted:
                    self._cond.notify_all()

    def _init_state(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        # (event, time.monotonic() when queued, order of queueing)
        self._queue: deque[tuple[Event, float, int]] = deque()
        self._enqueued = 0  # events accepted so far
        self._done = 0  # events written or dropped so far (FIFO, so a prefix)
        self._flush_waiters = 0
        self._abort = False
        self._wake = threading.Event()  # cuts a backoff sleep short at shutdown
        self._thread: threading.Thread | None = None
        self._dead = DeadRows(self._cond)
        self._applier = BatchApplier(self._store, self._dead, self._health, self._behind)
        self._pending_touches: set[tuple[str, object]] = set()
        self._outage_since: float | None = None
        self._shutdown_in_hand = 0  # events of the batch in hand dropped at shutdown
        self._in_hand: list[Event] | None = None  # the batch the thread is writing
        # The spill journal's side (see the module docstring).
        self._hand_lock = threading.Lock()
        self._hand: _Hand | None = None
        self._spill_in_flight = False  # taken from the queue, not yet in the journal
        self._journal_nudged = False  # something was journaled since the writer looked
        self._outage = False  # the last write found the store unavailable
        self._spiller: threading.Thread | None = None
        self._spill_wake = threading.Event()
        self._journal_retry_at = 0.0
        self._next_adopt = time.monotonic() + _ADOPT_INTERVAL
        self._kept_at_shutdown = 0
        # Larger batches than the queue's: a backlog is written with fewer commits, and
        # the bulk path paces itself between rows.
        self._read_ahead = (
            None
            if self._spill is None
            else ReadAhead(self._spill, self._max_batch_size * _JOURNAL_BATCHES)
        )

    def _after_fork_in_child(self) -> None:
        # The parent's locks may have been held by one of its threads at fork time and
        # its thread does not exist here: start over. Queued events are the parent's
        # (the journal, reset at an earlier fork stage, claims a slot of its own).
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
                    self._queue.append((event, time.monotonic(), self._enqueued))
                    self._enqueued += 1
                    if touch is not None:
                        self._pending_touches.add(touch)
                    self._ensure_thread()
                    depth = len(self._queue)
                    # Wake the writer when its batch timer must start or the batch is full.
                    if depth == 1 or depth >= self._max_batch_size:
                        self._cond.notify_all()
                    if self._spill is not None and depth * 2 > self._max_queue_size:
                        self._spill_wake.set()
        if reason is not None:
            self._health.drop(reason)
            return False
        self._health.queue_depth_changed(1)
        return True

    def flush(self, timeout: float) -> bool:
        """Wait until every event queued before this call is written (or dropped).
        Returns ``False`` if that did not happen within ``timeout`` seconds."""
        return self._flush(timeout, until_outage=False)

    def _flush(self, timeout: float, *, until_outage: bool) -> bool:
        """:meth:`flush`; with ``until_outage``, give up as soon as the store is found
        unavailable (at shutdown with a journal, which then keeps what is left)."""
        deadline = time.monotonic() + max(0.0, timeout)
        spill = self._spill
        with self._cond:
            target = self._enqueued

            def pending() -> bool:
                # Events adopted from an ended process's journal count as recorded
                # before this call too.
                return self._done < target or (spill is not None and spill.has_adopted)

            if not pending():
                return True
            if self._thread is threading.current_thread():
                return False
            self._ensure_thread()
            self._flush_waiters += 1
            self._cond.notify_all()
            try:
                while pending():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or (until_outage and self._outage):
                        return False
                    self._cond.wait(min(remaining, 0.1) if until_outage else remaining)
                return True
            finally:
                self._flush_waiters -= 1

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush for up to ``timeout`` seconds (default: the exit flush timeout), then
        stop the thread. Events still queued then, and any put afterwards, are dropped
        and counted as ``shutdown``; what this drops is logged once, with its number.
        With a spill journal, what is still queued goes to the journal instead (and the
        flush stops early when the store is unavailable); only what the journal cannot
        take is dropped."""
        if timeout is None:
            timeout = exit_flush_timeout()
        with self._cond:
            if self._closed:
                return self._done >= self._enqueued
            self._closed = True
        counted_before = self._health.dropped["shutdown"]
        flushed = self._flush(timeout, until_outage=self._spill is not None)
        with self._cond:
            self._abort = True
            leftover = list(self._queue)
            self._queue.clear()
            self._done += len(leftover)
            self._cond.notify_all()
            thread = self._thread
            spiller = self._spiller
        self._wake.set()
        self._spill_wake.set()
        self._health.queue_depth_changed(-len(leftover))
        if spiller is not None and spiller is not threading.current_thread():
            spiller.join(timeout=2.0)
            with self._cond:  # what a hand-off in flight could not journal came back
                late = list(self._queue)
                self._queue.clear()
                self._done += len(late)
            self._health.queue_depth_changed(-len(late))
            leftover += late
        left = len(leftover) - self._keep(leftover)
        self._health.drop("shutdown", left, log=False)
        if thread is not None and thread is not threading.current_thread():
            # The batch in hand, if any, is given up and counted by the thread...
            thread.join(timeout=1.0)
            with self._cond:
                stuck, self._in_hand = self._in_hand, None
                hand = self._hand
            if stuck is not None and thread.is_alive():
                # ...unless the thread is still stuck in the store (a lock wait, a
                # network timeout): then it is lost as far as anyone can tell, unless
                # the journal takes it.
                kept = self._keep(hand.entries) if hand is not None else 0
                self._health.drop("shutdown", len(stuck) - kept, log=False)
                self._shutdown_in_hand += len(stuck) - kept
        self._health.queue_capacity_changed(-self._max_queue_size)
        self._health.oldest_event_age(0.0)
        # What the thread itself counted as given up while it stopped is lost too.
        counted = self._health.dropped["shutdown"] - counted_before
        lost = max(left + self._shutdown_in_hand, counted)
        if lost:
            self._health.log_unwritten_at_shutdown(lost, timeout)
        self._health.log_pending()
        if self._spill is not None:
            self._close_journal()
        return flushed

    def _keep(self, entries: list[tuple[Event, float, int]]) -> int:
        """Put ``entries`` (not written) into the journal at shutdown; how many it took.
        Steps not priced yet are priced by whoever writes them from the journal."""
        if self._spill is None or not entries:
            return 0
        items = [(order, event, wall_time(at)) for event, at, order in entries]
        try:
            kept = self._spill.append(items)
        except JournalUnwritable as exc:
            self._journal_failed(exc)
            return 0
        except Exception as exc:  # our own bug must not stop the shutdown
            log_internal_error("exporter", exc)
            return 0
        self._health.spilled(kept)
        self._kept_at_shutdown += kept
        return kept

    def _close_journal(self) -> None:
        assert self._spill is not None
        waiting = self._spill.pending_events
        files = self._spill.files
        try:
            self._spill.close()
        except Exception as exc:
            log_internal_error("exporter", exc)
        self._health.journal_state(0, 0, None)
        if waiting:
            logger.warning(
                "chatdebug: %d debug event(s) not written to the store are kept in the spill "
                "journal %s; the next process configured with spill_path=%r writes them, or "
                "run `chatdebug replay-spill %s`",
                waiting,
                ", ".join(str(path) for path in files),
                str(self._spill.path),
                self._spill.path,
            )

    def wait_journal_empty(self, timeout: float) -> bool:
        """Wait until the journal holds nothing (its events written or dropped); for
        ``chatdebug replay-spill``. ``False`` after ``timeout`` seconds."""
        if self._spill is None:
            return True
        deadline = time.monotonic() + timeout
        with self._cond:
            self._ensure_thread()
            self._cond.notify_all()
        while self._spill.pending_events:
            if time.monotonic() > deadline:
                return False
            with self._cond:
                self._cond.wait(0.05)
        return True

    # -- bookkeeping (caller holds self._cond) ---------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._worker, name="chatdebug-writer", daemon=True
            )
            self._thread.start()
        if self._spill is not None and (self._spiller is None or not self._spiller.is_alive()):
            self._spiller = threading.Thread(
                target=self._spill_forever, name="chatdebug-spill", daemon=True
            )
            self._spiller.start()

    # -- writer thread ---------------------------------------------------------------
    def _next_batch(self) -> tuple[list[tuple[Event, float, int]], float] | None:
        """The next batch (queue entries) and when its oldest event was queued;
        ``None``: stop; an empty batch: look at the journal first."""
        with self._cond:
            while (
                (not self._queue and not self._journal_nudged) or self._spill_in_flight
            ) and not self._abort:
                self._cond.wait()
            if self._abort:
                return None
            if self._journal_nudged:
                self._journal_nudged = False
                return [], 0.0
            deadline = time.monotonic() + self._schedule_delay
            while (
                len(self._queue) < self._max_batch_size
                and not self._flush_waiters
                and not self._closed
                and not self._journal_nudged
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._abort:
                return None
            if self._journal_nudged or self._spill_in_flight or not self._queue:
                # The hand-off took the queue's head meanwhile: it is older than what
                # is left, and in the journal now.
                self._journal_nudged = False
                return [], 0.0
            count = min(len(self._queue), self._max_batch_size)
            taken = [self._queue.popleft() for _ in range(count)]
        self._health.queue_depth_changed(-count)
        return taken, taken[0][1]

    def _oldest_waiting(self) -> float | None:
        """When the oldest event still queued was queued."""
        with self._cond:
            return self._queue[0][1] if self._queue else None

    def _worker(self) -> None:
        # Our own store I/O must not produce spans through an instrumented driver.
        otel_context.attach(
            otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)
        )
        self._load_prices()
        while True:
            if self._spill is not None and self._spill.pending_events:
                try:
                    self._write_journaled()
                except Exception as exc:  # the thread must survive our own bugs
                    log_internal_error("exporter", exc)
                    self._wake.wait(BACKOFF_MAX)
                if self._abort:
                    return
                continue
            taken = self._next_batch()
            if taken is None:
                return
            entries, queued_at = taken
            if not entries:
                continue
            # Priced here, once per batch taken (a retried batch keeps its costs), and
            # before the hand-off may see it: the journal keeps priced events.
            batch = self._priced([e for e, _, _ in entries])
            if self._spill is not None:
                with self._hand_lock:
                    self._hand = _Hand(
                        [(ev, at, order) for ev, (_, at, order) in zip(batch, entries, strict=True)]
                    )
            with self._cond:
                self._in_hand = batch
            finished = True
            try:
                finished = self._write_batch(batch, queued_at)
            except Exception as exc:  # the thread must survive our own bugs
                log_internal_error("exporter", exc)
            finally:
                self._release_hand()
                oldest = self._oldest_waiting()
                self._health.oldest_event_age(0.0 if oldest is None else time.monotonic() - oldest)
                with self._cond:
                    self._in_hand = None
                    # A batch left in the journal is done when it is written from there.
                    self._done += len(batch) if finished else 0
                    for event in batch:
                        key = touch_key(event)
                        if key is not None:
                            self._pending_touches.discard(key)
                    self._cond.notify_all()

    def _load_prices(self) -> None:
        """Load the price database before the first step ends (it takes a few hundred
        milliseconds of this thread's time, more on a loaded machine)."""
        if self._pricer is None:
            return
        try:
            self._pricer.source_version  # noqa: B018 - loads the database
        except Exception as exc:  # pricing fails per step then, counted there
            log_internal_error("pricing", exc)

    def _behind(self) -> bool:
        """Events are at risk of being dropped: the queue is above half its capacity (a
        journal's hand-off empties it then; the journal itself is only at risk when it
        is full). The writer then stops pausing for the application between stretches
        of its work. Read without the lock: a stale length only delays the switch."""
        return len(self._queue) * 2 > self._max_queue_size

    def _priced(self, batch: list[Event]) -> list[Event]:
        """``batch`` with its steps priced (those priced before keep their cost)."""
        return price_events(batch, self._pricer, self._observe_cost, self._behind)

    def _release_hand(self) -> None:
        """The batch in hand is done with (written, dropped or journaled by the writer):
        if the hand-off journaled it meanwhile, take it out of the journal again."""
        with self._hand_lock:
            hand, self._hand = self._hand, None
            if hand is None or self._spill is None:
                return
            hand.committed = True
            if not hand.journaled or hand.kept:
                return
            try:
                self._spill.remove_own([(order, ev, 0.0) for ev, _, order in hand.entries])
            except JournalUnwritable as exc:
                # Left in the journal: replayed later, which writes the same rows again.
                self._journal_failed(exc)

    def _write_batch(self, batch: list[Event], queued_at: float) -> bool:
        """Write ``batch`` in one store transaction, retrying all of it while the store
        is unavailable; then count every event's outcome once. With a journal, a batch
        the store refuses as unavailable goes to the journal instead of being retried
        here (the writer then writes the journal, with the same backoff): ``False``."""
        outcomes = self._apply(batch, queued_at, journaled=False)
        if outcomes is not None:
            self._count(outcomes)
            return True
        with self._hand_lock:
            return self._hand is None or not self._hand.kept

    def _apply(
        self, batch: list[Event], queued_at: float, *, journaled: bool
    ) -> list[Outcome] | None:
        """Apply ``batch`` until it commits; its outcomes, or ``None`` when it was not
        written (shutdown, or handed to the journal)."""
        delay = BACKOFF_INITIAL
        bulk = self._applier.has_bulk
        while True:
            if self._abort:
                if not journaled:
                    self._drop_at_shutdown(batch)
                return None
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
                if journaled:
                    self._mark_outage()
                elif self._journal_hand():
                    return None
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
                return []
            self._dead.publish(marks)
            self._note_recovery()
            return outcomes

    def _count(self, outcomes: list[Outcome]) -> None:
        self._applier.count(outcomes)

    def _write_journaled(self) -> None:
        """Write the oldest batch of the journal (store migrated first when it was
        unreachable at startup), then take it out of the journal."""
        assert self._spill is not None and self._read_ahead is not None
        items = self._read_ahead.next_batch()
        if not items:
            return
        self._read_ahead.read_after(items)
        unreadable = [item for item in items if item.event is None]
        batch = [item.event for item in items if item.event is not None]
        if unreadable:
            self._health.drop("spill_unreadable", len(unreadable))
        outcomes: list[Outcome] | None = []
        if batch:
            batch = self._priced(batch)
            outcomes = self._apply(batch, _monotonic(items[0].queued_at), journaled=True)
        if outcomes is None:
            return  # shutting down: the batch stays in the journal
        try:
            self._spill.remove(items)
            self._read_ahead.removed()
        except JournalUnwritable as exc:
            # Written but still journaled: written again later (idempotent) — but not
            # before this one is gone, or the writer would loop on it.
            self._journal_failed(exc)
            self._wake.wait(_JOURNAL_RETRY)
            return
        self._count(outcomes)
        self._health.replayed(len(batch))
        self._publish_journal()
        own = sum(1 for item in items if item.own)
        with self._cond:
            self._done += own
            self._cond.notify_all()

    def _journal_hand(self) -> bool:
        """The store is unavailable: put the batch in hand into the journal (the writer
        then writes it from there). ``False`` when the journal cannot take it all."""
        if self._spill is None:
            return False
        with self._hand_lock:
            hand = self._hand
            if hand is None:
                return False
            if not hand.journaled and not self._append_hand(hand):
                return False
            hand.kept = True
        self._mark_outage()
        return True

    def _mark_outage(self) -> None:
        """The store is unavailable: the hand-off takes the whole queue, and a shutdown
        stops waiting for the store (the journal keeps what is left)."""
        if self._spill is None or self._outage:
            return
        with self._cond:
            self._outage = True
            self._cond.notify_all()

    def _drop_at_shutdown(self, batch: list[Event]) -> None:
        """Shut down while a batch could not be written: keep it in the journal, or drop
        all of it, counting each event once (events of dead rows under their own
        reason, as always); nothing when :meth:`shutdown` has already counted the batch
        as lost."""
        with self._cond:
            if self._in_hand is None:
                return
        with self._hand_lock:
            hand = self._hand
            if hand is not None and (hand.journaled or self._append_hand(hand)):
                hand.kept = True
                return
        for event in batch:
            with self._cond:
                dead = self._dead.reason(event)
            if dead is None:
                self._health.drop("shutdown", log=False)  # shutdown() logs them once
                self._shutdown_in_hand += 1
            elif touch_key(event) is None:
                self._health.drop(dead)

    # -- hand-off thread ----------------------------------------------------------------
    def _adopt(self) -> int:
        assert self._spill is not None
        try:
            adopted = self._spill.adopt_orphans()
        except Exception as exc:
            log_internal_error("exporter", exc)
            return 0
        if adopted:
            self._publish_journal()
            with self._cond:
                self._journal_nudged = True
                self._cond.notify_all()
        return adopted

    def _spill_forever(self) -> None:
        while not self._abort:
            self._spill_wake.wait(self._spill_interval)
            self._spill_wake.clear()
            if self._abort:
                return
            try:
                self._spill_once()
                if time.monotonic() >= self._next_adopt:
                    self._next_adopt = time.monotonic() + _ADOPT_INTERVAL
                    self._adopt()
                self._publish_journal()
            except Exception as exc:  # the thread must survive our own bugs
                log_internal_error("exporter", exc)

    def _spill_once(self) -> None:
        """Hand to the journal what has waited too long: the queue's head (all of it
        during an outage or above half the capacity) and the batch in hand."""
        assert self._spill is not None
        now = time.monotonic()
        if now < self._journal_retry_at:
            return
        with self._hand_lock:
            hand = self._hand
            if (
                hand is not None
                and not hand.committed
                and not hand.journaled
                and (self._outage or now - hand.entries[0][1] >= self._spill_age)
            ):
                self._append_hand(hand)
        with self._cond:
            queue = self._queue
            if self._abort or not queue:
                return
            if self._outage or len(queue) * 2 > self._max_queue_size:
                count = len(queue)
            else:
                count = 0
                for _, queued_at, _ in queue:
                    if now - queued_at < self._spill_age:
                        break
                    count += 1
            if not count:
                return
            taken = [queue.popleft() for _ in range(count)]
            for event, _, _ in taken:
                key = touch_key(event)
                if key is not None:
                    self._pending_touches.discard(key)
            self._spill_in_flight = True
        kept = 0
        try:
            # Not priced here: the hand-off is the way out when the writer is stuck, and
            # the writer may be stuck in the price database (loading it, on a loaded
            # machine, can take seconds).
            items = [(order, ev, wall_time(at)) for ev, at, order in taken]
            kept = self._spill.append(items)
            if kept < len(items):
                self._journal_full()
            else:
                self._health.storage_ok("journal")
        except JournalUnwritable as exc:
            self._journal_failed(exc)
        finally:
            with self._cond:
                rest = taken[kept:]
                self._queue.extendleft(reversed(rest))
                self._spill_in_flight = False
                if kept:
                    self._journal_nudged = True
                self._cond.notify_all()
            self._health.queue_depth_changed(-kept)
            self._health.spilled(kept)

    def _append_hand(self, hand: _Hand) -> bool:
        """Journal the batch in hand (called with ``_hand_lock`` held)."""
        assert self._spill is not None
        items = [(order, event, wall_time(at)) for event, at, order in hand.entries]
        try:
            kept = self._spill.append(items)
        except JournalUnwritable as exc:
            self._journal_failed(exc)
            return False
        if kept < len(items):
            if kept:
                self._spill.remove_own(items[:kept])
            self._journal_full()
            return False
        hand.journaled = True
        self._health.spilled(kept)
        self._health.storage_ok("journal")
        return True

    def _journal_full(self) -> None:
        assert self._spill is not None
        self._journal_retry_at = time.monotonic() + _JOURNAL_RETRY
        self._health.journal_full(self._spill.path, self._spill.max_bytes)

    def _journal_failed(self, exc: JournalUnwritable) -> None:
        self._journal_retry_at = time.monotonic() + _JOURNAL_RETRY
        self._health.storage_failed("journal", exc.reason, str(exc))

    def _publish_journal(self) -> None:
        spill = self._spill
        if spill is not None:
            self._health.journal_state(
                spill.pending_events, spill.pending_bytes, spill.oldest_queued_at()
            )

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
        reason = storage_reason(exc)
        if reason is not None:
            self._health.storage_failed("store", reason, str(exc))
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            logger.warning(
                "chatdebug store unavailable (%s); keeping %d queued events and retrying "
                "with backoff up to %gs",
                exc,
                len(self._queue) + in_hand,
                BACKOFF_MAX,
            )

    def _note_recovery(self) -> None:
        self._health.store_reachable(True)
        self._health.storage_ok("store")
        if self._outage:
            with self._cond:
                self._outage = False
        if self._outage_since is not None:
            logger.info(
                "chatdebug store reachable again after %.1fs; writing queued events",
                time.monotonic() - self._outage_since,
            )
            self._outage_since = None


def _monotonic(wall: float) -> float:
    """The ``time.monotonic()`` reading of a wall-clock time."""
    return time.monotonic() - (time.time() - wall)
