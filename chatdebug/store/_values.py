"""Rows, parameters and sentinels of the ``Store`` contract: the values passed to and
returned by every backend's operations, the bulk write path's included.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from ._codec import EncodedJSON

__all__ = [
    "CLEAR",
    "BulkWrites",
    "ChatTotals",
    "Clear",
    "EncodedJSON",
    "FinalizeResult",
    "NewRun",
    "NewStep",
    "PurgeResult",
    "Run",
    "RunFilter",
    "RunPosition",
    "RunUpdate",
    "Step",
    "StepUpdate",
]


class Clear(enum.Enum):
    """Type of :data:`CLEAR`."""

    CLEAR = "clear"

    def __repr__(self) -> str:
        return "CLEAR"


CLEAR: Final = Clear.CLEAR
"""Sentinel for update fields: overwrite the stored value with JSON ``null``."""


@dataclass(frozen=True, slots=True)
class Run:
    """One row of ``chat_debug_runs``."""

    id: uuid.UUID
    chat_id: str
    kind: str
    status: str
    summary: dict[str, Any]
    started_at: datetime
    updated_at: datetime
    user_id: str | None = None
    root_chat_id: str | None = None
    parent_chat_id: str | None = None
    model_config_id: str | None = None
    trigger_message_id: int | None = None
    history_tip_message_id: int | None = None
    provider: str | None = None
    model: str | None = None
    finished_at: datetime | None = None
    trace_id: str | None = None
    span_id: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One row of ``chat_debug_steps``.

    JSON columns come back decoded. A stored JSON ``null`` in a nullable column is
    returned as ``None``; a payload that cannot be decoded is returned as
    ``{"error": "malformed debug payload", "parse_error": ..., "raw": ...}`` (attempts:
    a one-element list of such an object) rather than raising.
    """

    id: uuid.UUID
    run_id: uuid.UUID
    chat_id: str
    step_number: int
    operation: str
    status: str
    normalized_request: dict[str, Any]
    attempts: list[dict[str, Any]]
    metadata: dict[str, Any]
    started_at: datetime
    updated_at: datetime
    normalized_response: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    history_tip_message_id: int | None = None
    assistant_message_id: int | None = None
    finished_at: datetime | None = None
    trace_id: str | None = None
    span_id: str | None = None
    provider: str | None = None
    model: str | None = None


@dataclass(slots=True)
class NewRun:
    """Parameters of :meth:`Store.create_run`.

    ``id`` defaults to a fresh UUID; ``started_at``/``updated_at`` default to the store
    clock's now; ``summary`` defaults to ``{}``. Creating a run whose ``id`` already exists
    for the same chat returns the stored row unchanged (idempotent, so a writer may retry
    after an ambiguous failure).
    """

    chat_id: str
    kind: str = "chat_turn"
    status: str = "in_progress"
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    user_id: str | None = None
    root_chat_id: str | None = None
    parent_chat_id: str | None = None
    model_config_id: str | None = None
    trigger_message_id: int | None = None
    history_tip_message_id: int | None = None
    provider: str | None = None
    model: str | None = None
    summary: dict[str, Any] | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    trace_id: str | None = None
    span_id: str | None = None


@dataclass(slots=True)
class RunUpdate:
    """Parameters of :meth:`Store.update_run`; every ``None`` keeps the stored value."""

    id: uuid.UUID
    chat_id: str
    status: str | None = None
    provider: str | None = None
    model: str | None = None
    summary: dict[str, Any] | None = None
    history_tip_message_id: int | None = None
    trigger_message_id: int | None = None
    model_config_id: str | None = None
    finished_at: datetime | None = None


@dataclass(slots=True)
class NewStep:
    """Parameters of :meth:`Store.create_step`.

    ``step_number=None`` asks the store for the next free number (max + 1). A number that
    is already taken is retried as max + 1 (at least requested + 1), up to 10 times.
    Creating a step whose ``id`` already exists returns the stored row (idempotent).
    A JSON payload may be given already encoded (:class:`EncodedJSON`).
    """

    run_id: uuid.UUID
    chat_id: str
    operation: str
    step_number: int | None = None
    status: str = "in_progress"
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    history_tip_message_id: int | None = None
    assistant_message_id: int | None = None
    normalized_request: dict[str, Any] | EncodedJSON | None = None
    normalized_response: dict[str, Any] | EncodedJSON | None = None
    usage: dict[str, Any] | EncodedJSON | None = None
    attempts: list[dict[str, Any]] | EncodedJSON | None = None
    error: dict[str, Any] | EncodedJSON | None = None
    metadata: dict[str, Any] | EncodedJSON | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    trace_id: str | None = None
    span_id: str | None = None
    provider: str | None = None
    """GenAI provider name (``openai``, ``anthropic``, …) when known at the start."""
    model: str | None = None
    """Model of the call when known at the start (the request model)."""
    request_history_sent: int | None = None
    """How many leading messages of ``normalized_request`` its run's previous step
    already sent (the search index leaves them out: they are in that step's text)."""


@dataclass(slots=True)
class StepUpdate:
    """Parameters of :meth:`Store.update_step`.

    ``None`` keeps the stored value; :data:`CLEAR` on ``error`` stores JSON ``null``.
    The operation of a step never changes.
    """

    id: uuid.UUID
    chat_id: str
    status: str | None = None
    history_tip_message_id: int | None = None
    assistant_message_id: int | None = None
    normalized_request: dict[str, Any] | EncodedJSON | None = None
    normalized_response: dict[str, Any] | EncodedJSON | None = None
    usage: dict[str, Any] | EncodedJSON | None = None
    attempts: list[dict[str, Any]] | EncodedJSON | None = None
    error: dict[str, Any] | EncodedJSON | Clear | None = None
    metadata: dict[str, Any] | EncodedJSON | None = None
    finished_at: datetime | None = None
    provider: str | None = None
    model: str | None = None
    """The model that answered (response model, else request model)."""
    request_history_sent: int | None = None
    """As :attr:`NewStep.request_history_sent`, for a ``normalized_request`` given here."""


@dataclass(frozen=True, slots=True)
class ChatTotals:
    """A chat's newest runs added up by :meth:`Store.chat_totals`. The token and step
    counts add the integers of the runs' summaries (anything else counts nothing);
    ``total_cost_usd`` adds their numbers, newest run first, and is ``None`` when no
    run has one; ``user_ids`` are distinct, sorted."""

    run_count: int
    error_run_count: int
    in_progress_run_count: int
    total_input_tokens: int
    total_output_tokens: int
    total_cost_usd: float | None
    unpriced_step_count: int
    steps_without_usage: int
    user_ids: list[str]
    first_started_at: datetime | None
    last_started_at: datetime | None


@dataclass(frozen=True, slots=True)
class FinalizeResult:
    """Rows turned ``interrupted`` by :meth:`Store.finalize_stale`."""

    runs_finalized: int
    steps_finalized: int


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """Rows removed by :meth:`Store.delete_old_runs` (steps went by cascade).

    ``skipped`` is true when another process was purging the same database at that
    moment (PostgreSQL advisory lock), so this call deleted nothing and should not be
    counted as a purge iteration.
    """

    runs_removed: int
    steps_removed: int
    skipped: bool = False


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs :meth:`Store.list_recent_runs` returns; ``None`` fields match anything.

    ``since`` is inclusive and ``until`` exclusive, both on ``started_at``. ``chat_id``
    is exact. ``model`` matches a run that asked for that model or was answered by it
    (its own model, any step's requested or answering model). ``text`` is a search:
    every word in it must start a word of the run's first message or of a message or
    reply of its steps (see :func:`~chatdebug.store.search_terms`)."""

    chat_id: str | None = None
    status: str | None = None
    kind: str | None = None
    user_id: str | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class RunPosition:
    """A place in the newest-first order ``(started_at DESC, id DESC)``: the last run of
    a page. The next page holds the runs strictly after it in that order, so a run
    created meanwhile (newer, hence before the position) neither shifts nor repeats
    rows."""

    started_at: datetime
    id: uuid.UUID


@dataclass(slots=True)
class BulkWrites:
    """Parameters of :meth:`~chatdebug.store.BulkWriter.write_bulk`, applied in this
    order: runs created, steps created, steps updated, heartbeats of steps and runs,
    then runs updated."""

    new_runs: list[NewRun] = field(default_factory=list)
    new_steps: list[NewStep] = field(default_factory=list)
    step_updates: list[StepUpdate] = field(default_factory=list)
    step_touches: list[tuple[uuid.UUID, uuid.UUID, str]] = field(default_factory=list)
    """``(step_id, run_id, chat_id)``"""
    run_touches: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    """``(run_id, chat_id)``"""
    run_updates: list[RunUpdate] = field(default_factory=list)

    def __len__(self) -> int:
        return (
            len(self.new_runs)
            + len(self.new_steps)
            + len(self.step_updates)
            + len(self.step_touches)
            + len(self.run_touches)
            + len(self.run_updates)
        )
