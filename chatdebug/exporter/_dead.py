"""Runs and steps the writer knows were never recorded ("dead" rows).

When the creation of a run or step is dropped (queue full, rejected by the store), its
later events cannot be written either: they are dropped under their own reason
(``run_dropped``, ``step_dropped``, …) without a store round trip, and heartbeats of
such rows are ignored silently. A run's end clears its mark, as does a step's end.

Marks set or cleared while a batch is written are first kept aside (:class:`PendingMarks`)
and take effect only once the batch has committed, so a retried batch starts again from
the committed marks.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Final

from ._events import (
    CreateRun,
    CreateStep,
    Event,
    FinishRun,
    StepProgress,
    TouchRun,
    TouchStep,
    UpdateStep,
)

__all__ = ["DeadRows", "PendingMarks", "touch_key"]

_MEMORY: Final = 10_000  # how many dead run/step ids are remembered


def touch_key(event: Event) -> tuple[str, object] | None:
    """The row a heartbeat is for; ``None`` for other events. (A newer progress of a
    step whose progress still waits is left out: the next one comes a second later.)"""
    if isinstance(event, TouchStep):
        return ("step", event.step_id)
    if isinstance(event, StepProgress):
        return ("progress", event.step_id)
    if isinstance(event, TouchRun):
        return ("run", event.run_id)
    return None


def _remember(dead: OrderedDict[object, str], key: object, reason: str) -> None:
    dead[key] = reason
    while len(dead) > _MEMORY:
        dead.popitem(last=False)


class PendingMarks:
    """Marks set and cleared while one attempt at a batch runs (``None``: cleared)."""

    __slots__ = ("runs", "steps")

    def __init__(self) -> None:
        self.runs: dict[object, str | None] = {}
        self.steps: dict[object, str | None] = {}

    def mark(self, event: Event, step_reason: str) -> None:
        """``event`` (a creation) failed: its row is dead once the batch commits."""
        if isinstance(event, CreateRun):
            self.runs[event.run_id] = "run_dropped"
        elif isinstance(event, CreateStep):
            self.steps[event.step_id] = step_reason


class DeadRows:
    """The committed marks. Every method must be called under ``lock`` (the writer's
    queue lock), except :meth:`pending_reason`, which takes it itself."""

    __slots__ = ("lock", "runs", "steps")

    def __init__(self, lock: threading.Condition) -> None:
        self.lock = lock
        self.runs: OrderedDict[object, str] = OrderedDict()
        self.steps: OrderedDict[object, str] = OrderedDict()

    def __bool__(self) -> bool:
        return bool(self.runs or self.steps)

    def reason(self, event: Event) -> str | None:
        """Why ``event`` cannot be written, or ``None``; an end clears its mark."""
        if event.run_id in self.runs:
            if isinstance(event, FinishRun):
                del self.runs[event.run_id]
            return "run_dropped"
        if isinstance(event, CreateStep | UpdateStep | TouchStep | StepProgress):
            reason = self.steps.get(event.step_id)
            if reason is not None and isinstance(event, UpdateStep):
                del self.steps[event.step_id]
            return reason
        return None

    def mark(self, event: Event, step_reason: str) -> None:
        """``event`` (a creation) was dropped: its row is dead."""
        if isinstance(event, CreateRun):
            _remember(self.runs, event.run_id, "run_dropped")
        elif isinstance(event, CreateStep):
            _remember(self.steps, event.step_id, step_reason)

    def pending_reason(self, event: Event, marks: PendingMarks) -> str | None:
        """:meth:`reason` as it would be with ``marks`` applied; clearing a mark (a
        dead run's end, a dead step's update) goes into ``marks`` too."""
        run_id = event.run_id
        if run_id in marks.runs:
            run_dead = marks.runs[run_id] is not None
        else:
            with self.lock:
                run_dead = run_id in self.runs
        if run_dead:
            if isinstance(event, FinishRun):
                marks.runs[run_id] = None
            return "run_dropped"
        if isinstance(event, CreateStep | UpdateStep | TouchStep | StepProgress):
            step_id = event.step_id
            if step_id in marks.steps:
                reason = marks.steps[step_id]
            else:
                with self.lock:
                    reason = self.steps.get(step_id)
            if reason is not None and isinstance(event, UpdateStep):
                marks.steps[step_id] = None
            return reason
        return None

    def publish(self, marks: PendingMarks) -> None:
        """Apply the marks of a committed batch."""
        with self.lock:
            for dead, pending in ((self.runs, marks.runs), (self.steps, marks.steps)):
                for key, reason in pending.items():
                    if reason is None:
                        dead.pop(key, None)
                    else:
                        _remember(dead, key, reason)
