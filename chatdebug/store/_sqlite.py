"""The embedded store: one SQLite file (or an in-memory database), stdlib ``sqlite3``."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Final

from . import _sqlite_changes as changes
from . import _sqlite_sql as sql
from ._changes import sqlite_publish_summary
from ._codec import format_timestamp, parse_timestamp, utc
from ._contract import DEFAULT_LIST_LIMIT, PURGE_BATCH_SIZE, Backend, BulkWriter, Store
from ._errors import RunNotFound, StoreError, StoreUnavailable
from ._migrations import migrations, split_sqlite_script
from ._recent import recent_runs_parameters
from ._rows import chat_totals_from_row, run_from_row, step_from_row
from ._rules import (
    SETTING_ALLOW_USERS,
    SETTING_RETENTION_DAYS,
    DuplicateStepNumber,
    bulk_parameters,
    classify_unwritten_step,
    create_step_with_retries,
    new_run_params,
    new_step_params,
    parse_retention_days,
    run_update_params,
    step_update_params,
    validate_limit,
    validate_retention_days,
)
from ._sqlite_changes import SQLiteChangeFeed
from ._sqlite_conn import SQLiteConnections
from ._sqlite_recent import recent_rows
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

__all__ = ["SQLiteStore"]

_STEP_NUMBER_CONFLICT: Final = "chat_debug_steps.run_id, chat_debug_steps.step_number"


def _text_params(
    values: dict[str, Any], stamps: dict[datetime, str] | None = None
) -> dict[str, Any]:
    """UUIDs and datetimes in their stored text forms (``stamps``: formatted ones to
    reuse)."""
    out = dict(values)
    for key, value in values.items():
        kind = type(value)
        if kind is str or kind is int or value is None:
            continue  # most values: nothing to look at (cheap on the bulk path)
        if isinstance(value, uuid.UUID):
            out[key] = str(value)
        elif isinstance(value, datetime):
            if stamps is None:
                out[key] = format_timestamp(value)
            else:
                text = stamps.get(value)
                if text is None:
                    text = stamps[value] = format_timestamp(value)
                out[key] = text
    return out


def _stored_text(value: Any) -> Any:
    return _text_params({"value": value})["value"]


class _NotApplied(Exception):
    """A bulk write that did not apply to every row (rolled back by the block)."""


def _expect(changed: int, rows: list[dict[str, Any]]) -> None:
    if changed != len(rows):
        raise _NotApplied


_ROWS_BETWEEN_PAUSES: Final = 4
"""Rows the bulk path writes in one ``executemany`` before the writer may pause."""


def _execute_paced(
    conn: sqlite3.Connection,
    statement: str,
    rows: list[dict[str, Any]],
    pace: Callable[[], None] | None,
) -> int:
    """``executemany`` in slices with the writer's pause points between them; the rows
    changed. SQLite runs in the writer's thread: one statement over a whole batch (each
    row with its triggers) keeps the CPU for many milliseconds, and on a process bound
    to one core the application's thread waits for it, lock released or not."""
    if pace is None or len(rows) <= _ROWS_BETWEEN_PAUSES:
        return int(conn.executemany(statement, rows).rowcount)
    changed = 0
    for start in range(0, len(rows), _ROWS_BETWEEN_PAUSES):
        if start:
            pace()
        changed += conn.executemany(statement, rows[start : start + _ROWS_BETWEEN_PAUSES]).rowcount
    return changed


def _run(row: Any) -> Run:
    return run_from_row(row, uuid.UUID, parse_timestamp)


def _step(row: Any) -> Step:
    return step_from_row(row, uuid.UUID, parse_timestamp)


class SQLiteStore(Store, BulkWriter):
    """:class:`~chatdebug.store.Store` on a SQLite file, the embedded default.

    Safe to share between threads and processes: each operation borrows a connection
    from a small pool, and every write runs in ``BEGIN IMMEDIATE``, which takes the
    database's write lock up front (waiting up to ``busy_timeout`` seconds for another
    writer) so a transaction never fails halfway on a lock. A :meth:`batch` takes the
    lock at its first write and holds it until it ends.

    ``path`` is a file path or ``:memory:`` (a database private to this store, gone
    when it closes). ``location`` is the absolute database file, or ``:memory:``.
    """

    backend: Backend = "sqlite"

    def __init__(
        self,
        path: str,
        *,
        clock: Callable[[], datetime] | None = None,
        migrate: bool = True,
        busy_timeout: float = 10.0,
        unwritable_ok: bool = False,
    ) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        # With ``unwritable_ok`` a file on a file system that refuses writes (read-only or
        # full) is not an error: the store opens, and migrates, at the first operation
        # that finds it writable; until then every operation raises StoreUnavailable.
        self._db = SQLiteConnections(path, busy_timeout, unwritable_ok=unwritable_ok)
        self.location = self._db.location
        if migrate:
            try:
                self.migrate()
            except StoreUnavailable:
                if not (unwritable_ok and self._db.unwritable):
                    self.close()
                    raise
                self._db.pending_setup = self.migrate
            except BaseException:
                self.close()
                raise

    def __repr__(self) -> str:
        return f"SQLiteStore({self.location!r})"

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _now(self) -> datetime:
        return utc(self._clock())

    def close(self) -> None:
        """Close the connections; an in-memory database is gone afterwards. Idempotent."""
        self._db.close()

    def batch(self) -> AbstractContextManager[None]:
        """One transaction for the block's operations on this thread; see
        :meth:`Store.batch <chatdebug.store.Store.batch>`."""
        return self._db.batch()

    # schema -------------------------------------------------------------------------
    def migrate(self) -> list[int]:
        """Apply the missing migrations in one exclusive transaction; returns them."""
        known = migrations("sqlite")
        with self._db.read() as conn:
            if conn.execute(sql.MIGRATIONS_TABLE_EXISTS).fetchone() is not None:
                applied = {row[0] for row in conn.execute(sql.APPLIED_VERSIONS)}
                if all(m.version in applied for m in known):
                    return []
        # EXCLUSIVE: a second process migrating the same file waits here, then finds
        # the versions recorded and applies nothing.
        with self._db.write("BEGIN EXCLUSIVE") as conn:
            conn.execute(sql.CREATE_MIGRATIONS_TABLE)
            applied = {row[0] for row in conn.execute(sql.APPLIED_VERSIONS)}
            done: list[int] = []
            for migration in known:
                if migration.version in applied:
                    continue
                for statement in split_sqlite_script(migration.sql):
                    conn.execute(statement)
                conn.execute(
                    sql.RECORD_VERSION,
                    {
                        "version": migration.version,
                        "name": migration.name,
                        "applied_at": format_timestamp(self._now()),
                    },
                )
                done.append(migration.version)
        return done

    def pending_migrations(self) -> list[int]:
        known = migrations("sqlite")
        with self._db.read() as conn:
            applied: set[int] = set()
            if conn.execute(sql.MIGRATIONS_TABLE_EXISTS).fetchone() is not None:
                applied = {row[0] for row in conn.execute(sql.APPLIED_VERSIONS)}
        return [m.version for m in known if m.version not in applied]

    # runs ---------------------------------------------------------------------------
    def create_run(self, params: NewRun) -> Run:
        values = _text_params(new_run_params(params, self._now()))
        with self._db.write() as conn:
            row = conn.execute(sql.INSERT_RUN, values).fetchone()
            if row is None:  # the id exists: a retried create
                row = conn.execute(sql.GET_RUN, values).fetchone()
        run = _run(row)
        if run.chat_id != params.chat_id:
            raise StoreError(f"chatdebug: run {run.id} already exists in another chat")
        return run

    def update_run(self, params: RunUpdate) -> Run:
        values = _text_params(run_update_params(params, self._now()))
        with self._db.write() as conn:
            row = conn.execute(sql.UPDATE_RUN, values).fetchone()
        if row is None:
            raise RunNotFound(f"chatdebug: run {params.id} not found in chat {params.chat_id!r}")
        return _run(row)

    def touch_run(self, run_id: uuid.UUID, chat_id: str) -> None:
        values = _text_params({"run_id": run_id, "chat_id": chat_id, "now": self._now()})
        with self._db.write() as conn:
            conn.execute(sql.TOUCH_RUN, values)

    def get_run(self, run_id: uuid.UUID) -> Run | None:
        with self._db.read() as conn:
            row = conn.execute(sql.GET_RUN, {"id": str(run_id)}).fetchone()
        return None if row is None else _run(row)

    def list_runs(self, chat_id: str, limit: int = DEFAULT_LIST_LIMIT) -> list[Run]:
        values = {"chat_id": chat_id, "limit": validate_limit(limit)}
        with self._db.read() as conn:
            rows = conn.execute(sql.LIST_RUNS, values).fetchall()
        return [_run(row) for row in rows]

    def list_recent_runs(
        self,
        filters: RunFilter | None = None,
        *,
        after: RunPosition | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
    ) -> list[Run]:
        names, values = recent_runs_parameters(
            filters, after, validate_limit(limit), _stored_text, sql.search_match
        )
        with self._db.read() as conn:
            rows = recent_rows(conn, names, values, after)
        return [_run(row) for row in rows]

    def chat_totals(self, chat_id: str, limit: int) -> ChatTotals:
        values = {"chat_id": chat_id, "limit": validate_limit(limit)}
        with self._db.read() as conn:
            row = conn.execute(sql.CHAT_TOTALS, values).fetchone()
        return chat_totals_from_row(row, json.loads(row[8]), parse_timestamp)

    # steps --------------------------------------------------------------------------
    def create_step(self, params: NewStep) -> Step:
        base = new_step_params(params, self._now())

        def attempt(step_number: int | None, floor: int) -> Step | None:
            values = _text_params({**base, "step_number": step_number, "floor": floor})
            with self._db.write() as conn:
                try:
                    row = conn.execute(sql.INSERT_STEP, values).fetchone()
                except sqlite3.IntegrityError as exc:
                    if _STEP_NUMBER_CONFLICT in str(exc):
                        raise DuplicateStepNumber from exc
                    raise
                if row is not None:
                    conn.execute(sql.BUMP_RUN, values)
                    return _step(row)
                existing = conn.execute(sql.GET_STEP, values).fetchone()
                run = conn.execute(sql.RUN_STATE, values).fetchone()
            return classify_unwritten_step(
                params.run_id,
                params.chat_id,
                None if existing is None else _step(existing),
                None if run is None else run[0],
                bool(run and run[1]),
            )

        return create_step_with_retries(params.run_id, params.step_number, attempt)

    def update_step(self, params: StepUpdate) -> Step:
        values = _text_params(step_update_params(params, self._now()))
        with self._db.write() as conn:
            row = conn.execute(sql.UPDATE_STEP, values).fetchone()
        if row is None:
            raise RunNotFound(f"chatdebug: step {params.id} not found in chat {params.chat_id!r}")
        return _step(row)

    def touch_step(self, step_id: uuid.UUID, run_id: uuid.UUID, chat_id: str) -> None:
        values = _text_params(
            {"step_id": step_id, "run_id": run_id, "chat_id": chat_id, "now": self._now()}
        )
        with self._db.write() as conn:
            conn.execute(sql.TOUCH_STEP_RUN, values)
            conn.execute(sql.TOUCH_STEP, values)

    def write_bulk(self, writes: BulkWrites, pace: Callable[[], None] | None = None) -> bool:
        """The bulk write path (see :class:`~chatdebug.store.BulkWriter`): one
        ``executemany`` per kind, all or nothing."""
        stamps: dict[datetime, str] = {}  # most rows share a few timestamps

        def text(values: dict[str, Any]) -> dict[str, Any]:
            return _text_params(values, stamps)

        values = bulk_parameters(writes, self._now(), text, pace)
        try:
            with self._db.write() as conn:

                def write(statement: str, rows: list[dict[str, Any]]) -> int:
                    return _execute_paced(conn, statement, rows, pace)

                if values.runs:
                    _expect(write(sql.INSERT_RUN_BULK, values.runs), values.runs)
                if values.steps:
                    _expect(write(sql.INSERT_STEP_BULK, values.steps), values.steps)
                    # Every step bumps its run to the same "now": once per run is enough.
                    bumps = {v["run_id"]: v for v in values.steps}
                    write(sql.BUMP_RUN, list(bumps.values()))
                if values.updates:
                    _expect(write(sql.UPDATE_STEP_BULK, values.updates), values.updates)
                if values.step_touches:
                    write(sql.TOUCH_STEP_RUN, values.step_touches)
                    write(sql.TOUCH_STEP, values.step_touches)
                if values.run_touches:
                    write(sql.TOUCH_RUN, values.run_touches)
                if values.run_updates:
                    _expect(write(sql.UPDATE_RUN_BULK, values.run_updates), values.run_updates)
        except StoreUnavailable:
            raise
        except (_NotApplied, StoreError):  # rolled back: the caller goes one by one
            return False
        return True

    def steps_of_runs(self, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Step]]:
        """Bulk path: the steps of several runs without payloads, in one query."""
        values = {"run_ids": json.dumps([str(run_id) for run_id in run_ids])}
        with self._db.read() as conn:
            rows = conn.execute(sql.LIST_STEPS_OF_RUNS, values).fetchall()
        found: dict[uuid.UUID, list[Step]] = {}
        for row in rows:
            step = _step(row)
            found.setdefault(step.run_id, []).append(step)
        return found

    def list_steps(self, run_id: uuid.UUID, *, payloads: bool = True) -> list[Step]:
        query = sql.LIST_STEPS if payloads else sql.LIST_STEPS_WITHOUT_PAYLOADS
        with self._db.read() as conn:
            rows = conn.execute(query, {"run_id": str(run_id)}).fetchall()
        return [_step(row) for row in rows]

    # deletion, purge, stale finalization ----------------------------------------------
    def delete_by_chat(self, chat_id: str, started_before: datetime) -> int:
        values = {"chat_id": chat_id, "started_before": format_timestamp(started_before)}
        with self._db.write() as conn:
            return conn.execute(sql.DELETE_BY_CHAT, values).rowcount

    def delete_after_message(self, chat_id: str, message_id: int, started_before: datetime) -> int:
        values = {
            "chat_id": chat_id,
            "message_id": message_id,
            "started_before": format_timestamp(started_before),
        }
        with self._db.write() as conn:
            return conn.execute(sql.DELETE_AFTER_MESSAGE, values).rowcount

    def delete_old_runs(self, before: datetime, limit: int = PURGE_BATCH_SIZE) -> PurgeResult:
        # One host, one writer at a time: the write lock BEGIN IMMEDIATE takes is the
        # exclusion; a second purging process waits for it, then finds what is left.
        values = {"before": format_timestamp(before), "limit": validate_limit(limit)}
        with self._db.write() as conn:
            ids = [row[0] for row in conn.execute(sql.SELECT_PURGE_BATCH, values)]
            if not ids:
                return PurgeResult(runs_removed=0, steps_removed=0)
            batch = {"ids": json.dumps(ids)}
            steps = conn.execute(sql.COUNT_PURGE_STEPS, batch).fetchone()[0]
            runs = conn.execute(sql.DELETE_PURGE_RUNS, batch).rowcount
            sqlite_publish_summary(conn, "purge", {"runs": runs, "steps": steps})
        return PurgeResult(runs_removed=runs, steps_removed=steps)

    def finalize_stale(self, updated_before: datetime) -> FinalizeResult:
        values = {
            "cutoff": format_timestamp(updated_before),
            "now": format_timestamp(self._now()),
        }
        with self._db.write() as conn:
            steps = conn.execute(sql.FINALIZE_STALE_STEPS, values).rowcount
            runs = conn.execute(sql.FINALIZE_STALE_RUNS, values).rowcount
            if runs or steps:
                sqlite_publish_summary(conn, "finalize", {"runs": runs, "steps": steps})
        return FinalizeResult(runs_finalized=runs, steps_finalized=steps)

    # settings -----------------------------------------------------------------------
    def _get_setting(self, key: str) -> str | None:
        with self._db.read() as conn:
            row = conn.execute(sql.GET_SETTING, {"key": key}).fetchone()
        return None if row is None else str(row[0])

    def _set_setting(self, key: str, value: str) -> None:
        values = {"key": key, "value": value, "now": format_timestamp(self._now())}
        with self._db.write() as conn:
            conn.execute(sql.SET_SETTING, values)

    def get_allow_users(self) -> bool:
        return self._get_setting(SETTING_ALLOW_USERS) == "true"

    def set_allow_users(self, allowed: bool) -> None:
        self._set_setting(SETTING_ALLOW_USERS, "true" if allowed else "false")

    def get_user_enabled(self, user_id: str) -> bool:
        with self._db.read() as conn:
            row = conn.execute(sql.GET_USER_ENABLED, {"user_id": user_id}).fetchone()
        return bool(row and row[0])

    def set_user_enabled(self, user_id: str, enabled: bool) -> None:
        values = {"user_id": user_id, "enabled": int(enabled), "now": format_timestamp(self._now())}
        with self._db.write() as conn:
            conn.execute(sql.SET_USER_ENABLED, values)

    def get_retention_days(self, *, strict: bool = False) -> int:
        return parse_retention_days(self._get_setting(SETTING_RETENTION_DAYS), strict=strict)

    def set_retention_days(self, days: int) -> None:
        self._set_setting(SETTING_RETENTION_DAYS, str(validate_retention_days(days)))

    # change events (see chatdebug.store.open_change_feed) -------------------------------
    def change_feed(self) -> SQLiteChangeFeed:
        """The change events committed from now on, by any process."""
        if self._db.memory:
            raise StoreError("chatdebug: an in-memory database publishes no change events")
        return SQLiteChangeFeed(self.location)

    def get_step(self, run_id: uuid.UUID, step_number: int) -> Step | None:
        """Step ``step_number`` of the run, or ``None``."""
        values = {"run_id": str(run_id), "step_number": step_number}
        with self._db.read() as conn:
            row = conn.execute(changes.STEP_BY_NUMBER, values).fetchone()
        return None if row is None else _step(row)

    def list_changed_runs(self, since: datetime, limit: int = DEFAULT_LIST_LIMIT) -> list[Run]:
        """Runs whose ``updated_at`` is at or after ``since``, oldest change first."""
        values = {"since": format_timestamp(since), "limit": validate_limit(limit)}
        with self._db.read() as conn:
            rows = conn.execute(changes.CHANGED_RUNS, values).fetchall()
        return [_run(row) for row in rows]
