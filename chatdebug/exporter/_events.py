"""Store writes derived from spans, and the one function that applies them.

Both the background writer (:class:`~chatdebug.exporter.StoreSpanProcessor`) and the
end-only :class:`~chatdebug.exporter.StoreSpanExporter` turn spans into these events and
hand them to :func:`apply_event`, so the two paths write identical rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

from ..store import NewRun, NewStep, RunNotFound, RunUpdate, Step, StepUpdate, Store
from ._summary import aggregate_run_summary, first_user_text, truncate_label

__all__ = [
    "STREAM_PROGRESS",
    "CreateRun",
    "CreateStep",
    "Event",
    "EventKind",
    "FinishRun",
    "StepProgress",
    "TouchRun",
    "TouchStep",
    "UpdateStep",
    "apply_event",
    "finished_run_update",
]

EventKind = Literal[
    "run_create",
    "run_finish",
    "run_touch",
    "step_create",
    "step_update",
    "step_touch",
    "step_progress",
]


@dataclass(frozen=True, slots=True)
class CreateRun:
    """A run span started: insert the run row (``in_progress``)."""

    params: NewRun
    kind: ClassVar[EventKind] = "run_create"

    @property
    def run_id(self) -> uuid.UUID:
        return self.params.id


@dataclass(frozen=True, slots=True)
class FinishRun:
    """A run span ended: aggregate its steps into the summary and finalize the row.

    ``seed`` is the summary seed (``first_message`` and extra seed keys); when it has no
    ``first_message``, the first user message of the first step stands in.
    """

    update: RunUpdate
    seed: dict[str, Any] = field(default_factory=dict)
    started_at: datetime | None = None
    step_updates: tuple[StepUpdate, ...] = ()
    """Message ids set on the run's steps after those steps ended."""
    kind: ClassVar[EventKind] = "run_finish"

    @property
    def run_id(self) -> uuid.UUID:
        return self.update.id


@dataclass(frozen=True, slots=True)
class TouchRun:
    """Heartbeat of an open run."""

    run_id: uuid.UUID
    chat_id: str
    kind: ClassVar[EventKind] = "run_touch"


@dataclass(frozen=True, slots=True)
class CreateStep:
    """A step span started: insert the step row."""

    params: NewStep
    kind: ClassVar[EventKind] = "step_create"

    @property
    def run_id(self) -> uuid.UUID:
        return self.params.run_id

    @property
    def step_id(self) -> uuid.UUID:
        return self.params.id


@dataclass(frozen=True, slots=True)
class UpdateStep:
    """A step span ended: write its final state."""

    params: StepUpdate
    run_id: uuid.UUID
    models: tuple[str | None, ...] = ()
    """Model names to price the step with, in order: the response's, then the request's
    (``params.model`` is only the first of them)."""
    service_tier: str | None = None
    """The service tier the provider reported, which some prices depend on."""
    priced: bool = False
    """Its metadata has the step's cost (or why it has none): the writer prices a step
    once, whether it takes it from the queue or from the spill journal."""
    kind: ClassVar[EventKind] = "step_update"

    @property
    def step_id(self) -> uuid.UUID:
        return self.params.id


@dataclass(frozen=True, slots=True)
class TouchStep:
    """Heartbeat of an open step (bumps its run too)."""

    step_id: uuid.UUID
    run_id: uuid.UUID
    chat_id: str
    kind: ClassVar[EventKind] = "step_touch"


@dataclass(frozen=True, slots=True)
class StepProgress:
    """Heartbeat of a streaming step while its response arrives: what came so far is
    stored under ``metadata.stream_progress`` (bumping the step and its run) until the
    step's final update replaces the metadata."""

    step_id: uuid.UUID
    run_id: uuid.UUID
    chat_id: str
    progress: dict[str, Any]
    kind: ClassVar[EventKind] = "step_progress"

    def update(self) -> StepUpdate:
        """The step update that stores the progress."""
        return StepUpdate(
            id=self.step_id, chat_id=self.chat_id, metadata={STREAM_PROGRESS: self.progress}
        )


STREAM_PROGRESS = "stream_progress"
"""The key of an open streaming step's metadata that holds its progress."""

Event = CreateRun | FinishRun | TouchRun | CreateStep | UpdateStep | TouchStep | StepProgress


def finished_run_update(event: FinishRun, steps: Sequence[Step]) -> RunUpdate:
    """The final update of a run ending with ``event``, given its steps in step order
    (their payloads needed only when the seed has no ``first_message``)."""
    update = event.update
    seed = dict(event.seed)
    if not seed.get("first_message") and steps:
        label = truncate_label(first_user_text(steps[0].normalized_request))
        if label:
            seed["first_message"] = label
    summary = aggregate_run_summary(
        update.id,
        steps,
        seed,
        started_at=event.started_at,
        finished_at=update.finished_at,
    )
    return RunUpdate(
        id=update.id,
        chat_id=update.chat_id,
        status=update.status,
        provider=update.provider,
        model=update.model,
        summary=summary,
        history_tip_message_id=update.history_tip_message_id,
        trigger_message_id=update.trigger_message_id,
        model_config_id=update.model_config_id,
        finished_at=update.finished_at,
    )


def _finish_run(store: Store, event: FinishRun) -> None:
    for step_update in event.step_updates:
        try:
            store.update_step(step_update)
        except RunNotFound:
            pass  # the step's row was never written (dropped and counted already)
    # One read of the run's steps; their large payloads only when the label must come
    # from the first step's request.
    needs_label = not event.seed.get("first_message")
    steps = store.list_steps(event.update.id, payloads=needs_label)
    store.update_run(finished_run_update(event, steps))


def apply_event(store: Store, event: Event) -> None:
    """Write one event to ``store``. Store errors propagate to the caller, which decides
    between retrying (:class:`~chatdebug.store.StoreUnavailable`) and counting a drop.

    Every event is idempotent, so re-applying one (or a whole batch of them) after an
    ambiguous failure, such as a commit whose outcome is unknown, is safe: runs and steps
    are created by id (an existing row is returned as it is), updates overwrite with the
    same values (a terminal status is never downgraded, ``finished_at`` is written once),
    heartbeats only bump ``updated_at``, and a run's summary is recomputed from its steps.
    Only ``updated_at`` differs afterwards.
    """
    if isinstance(event, CreateRun):
        store.create_run(event.params)
    elif isinstance(event, CreateStep):
        store.create_step(event.params)
    elif isinstance(event, UpdateStep):
        store.update_step(event.params)
    elif isinstance(event, TouchStep):
        store.touch_step(event.step_id, event.run_id, event.chat_id)
    elif isinstance(event, StepProgress):
        store.update_step(event.update())
        store.touch_step(event.step_id, event.run_id, event.chat_id)
    elif isinstance(event, TouchRun):
        store.touch_run(event.run_id, event.chat_id)
    else:
        _finish_run(store, event)
