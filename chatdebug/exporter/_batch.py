"""Applying one batch of events to the store, in one transaction.

Two ways, with the same result: through the store's bulk path when its class has one
(:class:`~chatdebug.store.BulkWriter`, planned by :mod:`._bulkplan`: few statements, nothing
read back), else event by event, each in a savepoint of the batch's transaction so a
rejected event is undone alone. The bulk path is all or nothing: when it cannot apply a
batch cleanly it raises :class:`BulkRefused`, the transaction is rolled back, and the
writer applies the batch again event by event, where each rejection gets its reason.

Outcomes are only collected here; the writer counts them (:meth:`BatchApplier.count`)
once the batch has committed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

from .._pacing import Pacer
from .._safety import log_internal_error
from ..store import (
    BulkWrites,
    RunFinalized,
    RunNotFound,
    Store,
    StoreError,
    StoreUnavailable,
    bulk_writer,
)
from ._bulkplan import plan_bulk
from ._dead import DeadRows, PendingMarks, touch_key
from ._events import Event, FinishRun, apply_event, finished_run_update
from ._health import ExporterHealth

__all__ = ["BatchApplier", "BulkRefused", "Outcome"]


@dataclass(slots=True)
class Outcome:
    """What became of one event in a batch: written (``seconds``), dropped (``reason``,
    with the store's ``error`` when it rejected the write) or skipped silently (a
    heartbeat of a row that was never recorded)."""

    event: Event
    seconds: float | None = None
    reason: str | None = None
    error: Exception | None = None


class BulkRefused(Exception):
    """The bulk path could not apply the batch cleanly: undo it, go event by event."""


class BatchApplier:
    """Writes batches for one writer (on its thread only)."""

    def __init__(
        self,
        store: Store,
        dead: DeadRows,
        health: ExporterHealth,
        hurry: Callable[[], bool] | None = None,
    ) -> None:
        self._store = store
        self._hurry = hurry  # when the bulk path must not pause (see Pacer)
        self._bulk = bulk_writer(store)
        self._dead = dead
        self._health = health
        self.failing: Event | None = None
        """The event an unavailable store is counted for (the latest one tried)."""

    @property
    def has_bulk(self) -> bool:
        return self._bulk is not None

    def write_bulk(self, batch: list[Event], marks: PendingMarks) -> list[Outcome]:
        """The batch through the store's bulk path (see :mod:`._bulkplan`);
        :class:`BulkRefused` when it does not apply cleanly (nothing is kept then)."""
        assert self._bulk is not None
        outcomes: list[Outcome] = []
        live: list[Event] = []
        pacer = Pacer(hurry=self._hurry)
        with self._dead.lock:
            # Rows are marked dead only when their creation is dropped, so with no mark
            # now no event of this batch (all queued earlier) belongs to a dead row.
            any_dead = bool(self._dead)
        for event in batch if any_dead else ():
            pacer.tick()
            dead = self._dead.pending_reason(event, marks)
            if dead is None:
                live.append(event)
            else:
                silent = touch_key(event) is not None
                outcomes.append(Outcome(event, reason=None if silent else dead))
        if not any_dead:
            live = batch
        if not live:
            return outcomes
        plan = plan_bulk(live, pacer.tick)
        if plan is None:
            raise BulkRefused
        self.failing = live[0]
        with self._store.batch():
            started = time.perf_counter()
            if plan.writes and not self._bulk.write_bulk(plan.writes, pacer.tick):
                raise BulkRefused
            # Ends of runs created in earlier batches: their steps in one read, their
            # updates in one more bulk write; the rare end that also sets message ids
            # on steps or needs the first step's request goes the ordinary way.
            simple: list[FinishRun] = []
            ordinary: list[FinishRun] = []
            for finish in plan.finishes:
                plain = not finish.step_updates and finish.seed.get("first_message")
                (simple if plain else ordinary).append(finish)
            if simple:
                steps = self._bulk.steps_of_runs([f.run_id for f in simple])
                finals = BulkWrites(
                    run_updates=[finished_run_update(f, steps.get(f.run_id, [])) for f in simple]
                )
                if not self._bulk.write_bulk(finals, pacer.tick):
                    raise BulkRefused
            done = [*plan.bulk_events, *simple]
            share = (time.perf_counter() - started) / max(1, len(done))
            outcomes.extend(Outcome(event, seconds=share) for event in done)
            for finish in ordinary:
                outcomes.append(self._apply(finish, marks))
        return outcomes

    def write_each(self, batch: list[Event], marks: PendingMarks) -> list[Outcome]:
        """The batch event by event in one transaction, each in its savepoint."""
        outcomes: list[Outcome] = []
        with ExitStack() as stack:
            first: Event | None = None
            for event in batch:
                dead = self._dead.pending_reason(event, marks)
                if dead is not None:
                    silent = touch_key(event) is not None
                    outcomes.append(Outcome(event, reason=None if silent else dead))
                    continue
                self.failing = event
                if first is None:  # a batch of dead events needs no store at all
                    first = event
                    stack.enter_context(self._store.batch())
                outcomes.append(self._apply(event, marks))
            if first is not None:
                self.failing = first  # from here on: the commit
        return outcomes

    def _apply(self, event: Event, marks: PendingMarks) -> Outcome:
        """Apply one event inside the batch. ``StoreUnavailable`` propagates (the batch
        is lost); any other failure was undone by the store and becomes a drop."""
        started = time.perf_counter()
        try:
            apply_event(self._store, event)
        except StoreUnavailable:
            raise
        except (RunFinalized, RunNotFound) as exc:
            reason = "run_finalized" if isinstance(exc, RunFinalized) else "run_not_found"
            marks.mark(event, reason)
            return Outcome(event, reason=reason)
        except Exception as exc:
            marks.mark(event, "step_dropped")
            return Outcome(event, reason="store_error", error=exc)
        return Outcome(event, seconds=time.perf_counter() - started)

    def count(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            kind = outcome.event.kind
            if outcome.seconds is not None:
                self._health.written(kind, outcome.seconds)
                continue
            if outcome.error is not None:
                # Not worth retrying: a rejected write, or a store that broke its contract
                # by raising something other than a StoreError (counted as our error too).
                if not isinstance(outcome.error, StoreError):
                    log_internal_error("exporter", outcome.error)
                self._health.write_error(kind)
                self._health.write_failed(kind, outcome.error)
            if outcome.reason is not None:
                self._health.drop(outcome.reason)
