"""The ``Store`` contract: rows, parameters, sentinels and the operations every backend
implements with identical behaviour (SQLite and PostgreSQL).

Semantics follow the chat debug tables of the production system we model:

* ``None`` in an update means *keep the stored value*; :data:`CLEAR` writes a JSON
  ``null`` (used to clear a step's ``error`` after a successful retry).
* ``finished_at`` is write-once; a terminal status without ``finished_at`` fills it with
  the store clock's now.
* A terminal status is never replaced by one of lower priority (see
  :func:`chatdebug._status.may_replace`).
* Creating a step is one atomic statement that requires the run to exist, to belong to
  the same chat and not to be finalized, and bumps the run's ``updated_at``.
"""

from __future__ import annotations

import enum
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, Protocol, runtime_checkable

__all__ = [
    "CLEAR",
    "DEFAULT_LIST_LIMIT",
    "DEFAULT_RETENTION_DAYS",
    "MAX_RETENTION_DAYS",
    "PURGE_BATCH_SIZE",
    "Clear",
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
    "Store",
]

DEFAULT_LIST_LIMIT: Final = 100
DEFAULT_RETENTION_DAYS: Final = 30
MAX_RETENTION_DAYS: Final = 3650
PURGE_BATCH_SIZE: Final = 1000
STEP_NUMBER_RETRIES: Final = 10


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
    """

    run_id: uuid.UUID
    chat_id: str
    operation: str
    step_number: int | None = None
    status: str = "in_progress"
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    history_tip_message_id: int | None = None
    assistant_message_id: int | None = None
    normalized_request: dict[str, Any] | None = None
    normalized_response: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    attempts: list[dict[str, Any]] | None = None
    error: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    trace_id: str | None = None
    span_id: str | None = None
    provider: str | None = None
    """GenAI provider name (``openai``, ``anthropic``, …) when known at the start."""
    model: str | None = None
    """Model of the call when known at the start (the request model)."""


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
    normalized_request: dict[str, Any] | None = None
    normalized_response: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    attempts: list[dict[str, Any]] | None = None
    error: dict[str, Any] | Clear | None = None
    metadata: dict[str, Any] | None = None
    finished_at: datetime | None = None
    provider: str | None = None
    model: str | None = None
    """The model that answered (response model, else request model)."""


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

    ``since`` is inclusive and ``until`` exclusive, both on ``started_at``."""

    status: str | None = None
    kind: str | None = None
    user_id: str | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class RunPosition:
    """A place in the newest-first order ``(started_at DESC, id DESC)``: the last run of
    a page. The next page holds the runs strictly after it in that order, so a run
    created meanwhile (newer, hence before the position) neither shifts nor repeats
    rows."""

    started_at: datetime
    id: uuid.UUID


Backend = Literal["sqlite", "postgresql"]


@runtime_checkable
class Store(Protocol):
    """Persistence for debug runs and steps. Thread-safe; every method is one
    transaction, unless called inside :meth:`batch`.

    Errors: :class:`~chatdebug.store.RunNotFound` / :class:`~chatdebug.store.RunFinalized`
    from :meth:`create_step` (and ``RunNotFound`` from the updates when the row does not
    exist for that chat), :class:`~chatdebug.store.StoreUnavailable` when the database
    cannot be reached (worth retrying), :class:`~chatdebug.store.StoreError` otherwise.

    Fork-safe: in a child process created by ``os.fork()`` the store drops the
    connections inherited from the parent (without using or closing them) and opens its
    own on first use, so parent and child can both keep using the same store object.
    """

    backend: Backend

    def migrate(self) -> list[int]:
        """Apply pending migrations; returns the versions applied (empty when current)."""
        ...

    def close(self) -> None:
        """Release connections. Idempotent."""
        ...

    def batch(self) -> AbstractContextManager[None]:
        """Group the operations of a block into one transaction::

            with store.batch():
                store.create_run(...)
                store.create_step(...)

        Operations called *on the same thread* inside the block share one connection
        and one transaction, committed when the block exits and rolled back when an
        exception leaves it; other threads are not affected (on SQLite they wait for
        the write lock the batch holds from its first write until it ends). Reads
        inside the block see the block's own writes; other connections see none of
        them before the commit.

        Each operation runs in a savepoint, so one that raises (``RunNotFound``,
        ``RunFinalized``, any other :class:`~chatdebug.store.StoreError`, including the
        step-number collisions :meth:`create_step` retries internally) is undone alone
        and the block may go on. A :class:`~chatdebug.store.StoreUnavailable` is
        different: the transaction cannot be trusted any more, so every later operation
        of the block raises ``StoreUnavailable`` too, and so does the end of the block
        (nothing is committed) even if the block caught the error. A
        ``StoreUnavailable`` can also come from entering the block or from the commit,
        in which case whether the commit happened is unknown; as every write of this
        contract is idempotent or a plain overwrite, retrying the whole block is the
        way to recover. On PostgreSQL, concurrent batches that lock the same rows in a
        different order may be chosen as a deadlock victim, also a
        ``StoreUnavailable``.

        A ``batch()`` inside another of the same thread is simply part of the outer
        one. On PostgreSQL the block holds one pooled connection for its duration.
        """
        ...

    # runs -------------------------------------------------------------------------
    def create_run(self, params: NewRun) -> Run:
        """Insert a run and return the stored row. Idempotent by id: creating an id that
        exists in the same chat returns the stored row unchanged (another chat:
        :class:`~chatdebug.store.StoreError`)."""
        ...

    def update_run(self, params: RunUpdate) -> Run:
        """Change the given fields (``None`` keeps), bump ``updated_at``, never
        downgrade a terminal status, fill ``finished_at`` once; returns the row.
        A run that has no ``provider`` / ``model`` (neither stored nor given) takes
        those of its first step (by ``step_number``) that has one, so a run recorded
        through an SDK is labelled when it finishes.
        :class:`~chatdebug.store.RunNotFound` when no run has that id in that chat."""
        ...

    def touch_run(self, run_id: uuid.UUID, chat_id: str) -> None:
        """Bump the run's ``updated_at`` (heartbeat)."""
        ...

    def get_run(self, run_id: uuid.UUID) -> Run | None:
        """The run with that id, or ``None``."""
        ...

    def list_runs(self, chat_id: str, limit: int = DEFAULT_LIST_LIMIT) -> list[Run]:
        """Runs of a chat, newest first (``started_at DESC, id DESC``)."""
        ...

    def list_recent_runs(
        self,
        filters: RunFilter | None = None,
        *,
        after: RunPosition | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
    ) -> list[Run]:
        """Runs of every chat matching ``filters``, newest first (``started_at DESC, id
        DESC``), starting strictly after ``after`` (keyset paging: pass the last run of
        the previous page)."""
        ...

    # steps ------------------------------------------------------------------------
    def create_step(self, params: NewStep) -> Step:
        """Insert a step into an open run of the same chat, bumping the run's
        ``updated_at`` atomically; returns the stored row. See :class:`NewStep` for
        numbering and idempotency. :class:`~chatdebug.store.RunNotFound` when the run
        is missing or in another chat, :class:`~chatdebug.store.RunFinalized` when it
        has finished."""
        ...

    def update_step(self, params: StepUpdate) -> Step:
        """Change the given fields (``None`` keeps, :data:`CLEAR` clears ``error``),
        bump ``updated_at``, never downgrade a terminal status, fill ``finished_at``
        once; returns the row. :class:`~chatdebug.store.RunNotFound` when no step has
        that id in that chat."""
        ...

    def touch_step(self, step_id: uuid.UUID, run_id: uuid.UUID, chat_id: str) -> None:
        """Bump ``updated_at`` of the run, then of the step (atomically, in that lock
        order). A step, run and chat that do not belong together change nothing."""
        ...

    def list_steps(self, run_id: uuid.UUID, *, payloads: bool = True) -> list[Step]:
        """Steps of a run ordered by ``step_number``, then ``started_at``.

        ``payloads=False`` neither reads nor decodes the two large JSON columns: every
        step then has ``normalized_request == {}`` and ``normalized_response is None``
        (for callers that need only the rest, such as a run summary)."""
        ...

    # deletion, purge, stale finalization --------------------------------------------
    def delete_by_chat(self, chat_id: str, started_before: datetime) -> int:
        """Delete the chat's runs started before ``started_before``; returns runs removed."""
        ...

    def delete_after_message(self, chat_id: str, message_id: int, started_before: datetime) -> int:
        """Delete the chat's runs started before ``started_before`` that come after the
        message: run ``history_tip_message_id`` or ``trigger_message_id`` greater than
        ``message_id``, or any step with ``assistant_message_id`` or
        ``history_tip_message_id`` greater than it. Returns runs removed."""
        ...

    def delete_old_runs(self, before: datetime, limit: int = PURGE_BATCH_SIZE) -> PurgeResult:
        """Delete at most ``limit`` runs whose ``updated_at`` is before ``before`` (no
        ``finished_at`` guard: abandoned runs go too), oldest first, in one transaction.

        On PostgreSQL only one process purges a database at a time: when another holds
        the purge lock this returns ``PurgeResult(0, 0, skipped=True)`` at once."""
        ...

    def finalize_stale(self, updated_before: datetime) -> FinalizeResult:
        """Turn ``interrupted`` every unfinished, non-terminal run whose ``updated_at`` is
        before the cutoff, every such step, and every open step of a run finalized here;
        sets ``updated_at = finished_at = now``."""
        ...

    # settings ---------------------------------------------------------------------
    def get_allow_users(self) -> bool:
        """The admin switch that lets users opt in; ``False`` when never set."""
        ...

    def set_allow_users(self, allowed: bool) -> None:
        """Set the admin switch."""
        ...

    def get_user_enabled(self, user_id: str) -> bool:
        """Whether the user opted in to recording; ``False`` when never set."""
        ...

    def set_user_enabled(self, user_id: str, enabled: bool) -> None:
        """Set the user's opt-in."""
        ...

    def get_retention_days(self, *, strict: bool = False) -> int:
        """Retention in days; 30 when never set; 0 disables the purge. A stored value that
        is not an integer in 0..3650 reads as 30, or raises :class:`StoreConfigError` when
        ``strict``."""
        ...

    def set_retention_days(self, days: int) -> None:
        """Raises ``ValueError`` outside 0..3650."""
        ...
