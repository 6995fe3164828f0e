"""How a batch of events goes through a store's bulk write path.

The plan keeps the result of applying the events one by one, in order:

* a step created and ended within the batch is written once, as a new row that
  already holds its final state (:func:`merge_step`), instead of an insert and an
  update;
* runs are created before steps and steps before updates and heartbeats, which is
  the order the events of one run arrive in anyway;
* a run created and ended within the batch has all its steps in the batch too (the
  events of a run arrive in order), so its summary is aggregated from them and its
  final update is one more bulk write; the end of a run created earlier reads the run's
  steps back, after the bulk writes, through the ordinary operations.

A batch the plan cannot reorder safely (an event of a run after that run's end, an
update before its step's creation, one step created twice, an update naming another
chat) gets no plan; the writer then applies it event by event.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

from .._status import status_priority
from ..store import CLEAR, BulkWrites, NewStep, Step, StepUpdate
from ._events import (
    CreateRun,
    CreateStep,
    Event,
    FinishRun,
    StepProgress,
    TouchRun,
    TouchStep,
    UpdateStep,
    finished_run_update,
)

__all__ = ["BulkPlan", "merge_step", "plan_bulk"]


@dataclass(slots=True)
class BulkPlan:
    """``writes`` carry ``bulk_events``; ``finishes`` follow one by one."""

    writes: BulkWrites = field(default_factory=BulkWrites)
    bulk_events: list[Event] = field(default_factory=list)
    finishes: list[FinishRun] = field(default_factory=list)


def merge_step(created: NewStep, update: StepUpdate) -> NewStep:
    """The row that creating ``created`` and then applying ``update`` leaves, as one
    creation: ``None`` keeps, :data:`~chatdebug.store.CLEAR` clears the error, a
    terminal status is never downgraded, ``finished_at`` is written once."""
    status = created.status
    if update.status is not None and status_priority(update.status) >= status_priority(status):
        status = update.status
    error = created.error if update.error is None else update.error
    return NewStep(
        run_id=created.run_id,
        chat_id=created.chat_id,
        operation=created.operation,
        step_number=created.step_number,
        status=status,
        id=created.id,
        history_tip_message_id=_keep(update.history_tip_message_id, created.history_tip_message_id),
        assistant_message_id=_keep(update.assistant_message_id, created.assistant_message_id),
        normalized_request=created.normalized_request
        if update.normalized_request is None
        else update.normalized_request,
        normalized_response=created.normalized_response
        if update.normalized_response is None
        else update.normalized_response,
        usage=created.usage if update.usage is None else update.usage,
        attempts=created.attempts if update.attempts is None else update.attempts,
        error=None if error is CLEAR else error,
        metadata=created.metadata if update.metadata is None else update.metadata,
        started_at=created.started_at,
        finished_at=_keep(created.finished_at, update.finished_at),
        trace_id=created.trace_id,
        span_id=created.span_id,
        provider=_keep(update.provider, created.provider),
        model=_keep(update.model, created.model),
        # It describes the request: it goes with whichever request the row keeps.
        request_history_sent=created.request_history_sent
        if update.normalized_request is None
        else update.request_history_sent,
    )


_T = TypeVar("_T")


def _keep(new: _T | None, old: _T | None) -> _T | None:
    return old if new is None else new


def plan_bulk(events: Sequence[Event], pace: Callable[[], None] | None = None) -> BulkPlan | None:
    """The bulk plan of ``events`` (none of them dead), or ``None`` (see the module
    docstring). ``pace`` is called between events (see :mod:`chatdebug._pacing`)."""
    plan = BulkPlan()
    writes = plan.writes
    ended_runs: set[uuid.UUID] = set()
    created: dict[uuid.UUID, int] = {}  # step id -> index in writes.new_steps
    updated: set[uuid.UUID] = set()  # steps updated before any creation in the batch
    run_steps: dict[uuid.UUID, list[int]] = {}  # runs created here -> their new_steps
    for event in events:
        if pace is not None:
            pace()
        if event.run_id in ended_runs:
            return None
        if isinstance(event, FinishRun):
            ended_runs.add(event.run_id)
            steps = run_steps.get(event.run_id)
            if steps is None or not _finish_in_plan(writes, event, steps, created):
                plan.finishes.append(event)
                continue
        elif isinstance(event, CreateRun):
            run_steps.setdefault(event.run_id, [])
            writes.new_runs.append(event.params)
        elif isinstance(event, CreateStep):
            if event.step_id in created or event.step_id in updated:
                return None
            created[event.step_id] = len(writes.new_steps)
            if event.run_id in run_steps:
                run_steps[event.run_id].append(len(writes.new_steps))
            writes.new_steps.append(event.params)
        elif isinstance(event, UpdateStep | StepProgress):
            params = event.params if isinstance(event, UpdateStep) else event.update()
            index = created.get(event.step_id)
            if index is None:
                updated.add(event.step_id)
                writes.step_updates.append(params)
            else:
                step = writes.new_steps[index]
                if step.chat_id != params.chat_id:
                    return None
                writes.new_steps[index] = merge_step(step, params)
            if isinstance(event, StepProgress):
                writes.step_touches.append((event.step_id, event.run_id, event.chat_id))
        elif isinstance(event, TouchStep):
            writes.step_touches.append((event.step_id, event.run_id, event.chat_id))
        elif isinstance(event, TouchRun):
            writes.run_touches.append((event.run_id, event.chat_id))
        else:
            return None  # an event kind the bulk path does not know
        plan.bulk_events.append(event)
    return plan


def _finish_in_plan(
    writes: BulkWrites, event: FinishRun, indexes: list[int], created: dict[uuid.UUID, int]
) -> bool:
    """Add the final update of a run created in this plan, whose steps (``indexes``
    into ``writes.new_steps``) are all here; ``False`` when their order is not known
    yet (a step numbered by the store)."""
    steps = [writes.new_steps[i] for i in indexes]
    if any(step.step_number is None for step in steps):
        return False
    for update in event.step_updates:
        # A step that is not here does not exist at all (the run is new): updating
        # it would change nothing, as the ordinary operation finds no row.
        index = created.get(update.id)
        if index is not None and index in indexes:
            step = writes.new_steps[index]
            if step.chat_id == update.chat_id:
                writes.new_steps[index] = merge_step(step, update)
    ordered = sorted((writes.new_steps[i] for i in indexes), key=lambda s: s.step_number or 0)
    # The summary reads only fields a new step and a stored row have in common.
    writes.run_updates.append(finished_run_update(event, cast(list[Step], ordered)))
    return True
