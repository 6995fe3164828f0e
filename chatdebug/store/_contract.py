"""The ``Store`` contract: the operations every backend implements with identical
behaviour (SQLite and PostgreSQL), its limits, and the bulk write path both backends
add to it. The rows, parameters and sentinels live in :mod:`._values`.

Semantics follow the chat debug tables of the production system we model:

* ``None`` in an update means *keep the stored value*; :data:`~chatdebug.store.CLEAR`
  writes a JSON ``null`` (used to clear a step's ``error`` after a successful retry).
* ``finished_at`` is write-once; a terminal status without ``finished_at`` fills it with
  the store clock's now.
* A terminal status is never replaced by one of lower priority (see
  :func:`chatdebug._status.may_replace`).
* Creating a step is one atomic statement that requires the run to exist, to belong to
  the same chat and not to be finalized, and bumps the run's ``updated_at``.

The bulk write path (:class:`BulkWriter`) takes the plain writes of a :meth:`Store.batch`
block in one ``executemany`` per kind, without reading any row back, and with exactly
the SQL guards of the single operations (run exists, same chat, not finalized; terminal
status never downgraded; ``finished_at`` written once; ``None`` keeps the stored value).
It is all or nothing: when any write would not apply cleanly (a row that already exists,
a missing or finished run, a taken step number), everything it did is rolled back and it
returns ``False``, so that the caller can apply the same writes one by one through the
ordinary operations, which know how to classify each case. A ``Store`` need not have
it: a writer uses it only when the store's class has it (:func:`bulk_writer`), so a
store implemented elsewhere, or a wrapper that forwards to a store, keeps its own
operations in use.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Final, Literal, Protocol, TypeGuard, runtime_checkable

from ._values import (
    BulkWrites,
    ChatTotals,
    FinalizeResult,
    NewRun,
    NewStep,
    PurgeResult,
    Run,
    RunFilter,
    RunPosition,
    RunUpdate,
    Step,
    StepUpdate,
)

__all__ = [
    "DEFAULT_LIST_LIMIT",
    "DEFAULT_RETENTION_DAYS",
    "MAX_RETENTION_DAYS",
    "PURGE_BATCH_SIZE",
    "STEP_NUMBER_RETRIES",
    "Backend",
    "BulkWriter",
    "Store",
    "bulk_writer",
]

DEFAULT_LIST_LIMIT: Final = 100
DEFAULT_RETENTION_DAYS: Final = 30
MAX_RETENTION_DAYS: Final = 3650
PURGE_BATCH_SIZE: Final = 1000
STEP_NUMBER_RETRIES: Final = 10


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

    def pending_migrations(self) -> list[int]:
        """The schema versions this chatdebug knows that the database has not applied
        (every version when it has no schema): empty when the schema is current."""
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

    def chat_totals(self, chat_id: str, limit: int) -> ChatTotals:
        """The chat's newest ``limit`` runs (``started_at DESC, id DESC``) added up by
        the database (see :class:`ChatTotals`)."""
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

    # reads that apply a change event cheaply -------------------------------------------
    def get_step(self, run_id: uuid.UUID, step_number: int) -> Step | None:
        """Step ``step_number`` of the run (with its payloads), or ``None``."""
        ...

    def list_changed_runs(self, since: datetime, limit: int = DEFAULT_LIST_LIMIT) -> list[Run]:
        """Runs whose ``updated_at`` is at or after ``since``, oldest change first
        (``updated_at, id``): what changed since a reader's cursor."""
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


@runtime_checkable
class BulkWriter(Protocol):
    """The bulk write path of a store class (both backends have it); see the module
    docstring for what it guarantees."""

    def write_bulk(self, writes: BulkWrites, pace: Callable[[], None] | None = None) -> bool:
        """Apply ``writes`` inside the current :meth:`~chatdebug.store.Store.batch`
        (a transaction of its own outside one). ``True`` when every run and step was
        created new and every update found its row; otherwise nothing of ``writes`` is
        left written and the result is ``False``. ``StoreUnavailable`` propagates as
        from any operation. ``pace`` is called between the rows while their
        parameters are built (the caller may pause there to let other threads run)."""
        ...

    def steps_of_runs(self, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Step]]:
        """The steps of each run (as ``list_steps(run_id, payloads=False)``), in one
        query; runs without steps are absent."""
        ...


def bulk_writer(store: Store) -> BulkWriter | None:
    """``store`` when its class has the bulk path, else ``None``. Only the class
    counts: a wrapper that forwards unknown attributes to a store (``__getattr__``)
    keeps its own operations in use."""
    return store if _class_has_bulk_path(store) else None


def _class_has_bulk_path(store: object) -> TypeGuard[BulkWriter]:
    # A class check looks at the class's own methods only; an instance check would
    # also count what ``__getattr__`` forwards.
    return issubclass(type(store), BulkWriter)
