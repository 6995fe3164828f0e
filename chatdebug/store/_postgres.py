"""The production store: PostgreSQL through psycopg 3 and a ``psycopg_pool`` pool."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Final

from psycopg import errors as pg_errors

from . import _postgres_changes as changes
from . import _postgres_multirow as multirow
from . import _postgres_sql as sql
from ._changes import postgres_publish_summary
from ._codec import utc
from ._contract import DEFAULT_LIST_LIMIT, PURGE_BATCH_SIZE, Backend, BulkWriter, Store
from ._errors import RunNotFound, StoreError, StoreUnavailable
from ._migrations import migrations
from ._postgres_changes import PostgresChangeFeed
from ._postgres_conn import PostgresConnections
from ._postgres_multirow import MultiRow
from ._postgres_search import search_rows
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

__all__ = ["PostgresStore"]

_STEP_NUMBER_INDEX: Final = "idx_chat_debug_steps_run_step"
_PIPELINE_PART: Final = 32  # rows per executemany call of the bulk path
_MULTIROW_PART: Final = 64  # rows per multi-row statement of the bulk path


class _NotApplied(Exception):
    """A bulk write that did not apply to every row (rolled back by the block)."""


def _nothing() -> None:
    return None


def _same_uuid(value: uuid.UUID) -> uuid.UUID:
    return value


def _run(row: Any) -> Run:
    return run_from_row(row, _same_uuid, utc)


def _step(row: Any) -> Step:
    return step_from_row(row, _same_uuid, utc)


class PostgresStore(Store, BulkWriter):
    """:class:`~chatdebug.store.Store` on PostgreSQL.

    Connections come from a pool that checks each one before lending it, so a restarted
    server costs a reconnect rather than an error. Single statements run in autocommit,
    operations of several statements in one transaction. A server that cannot be
    reached raises :class:`~chatdebug.store.StoreUnavailable` within ``connect_timeout``
    seconds (at least 2, libpq's minimum), as does losing the server mid-operation;
    error messages never contain the password. ``location`` is the URL with the
    password masked.

    Inside :meth:`batch` the connection is in pipeline mode: every operation fetches the
    result of its last statement, so that its errors are raised by the operation itself.
    """

    backend: Backend = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] | None = None,
        migrate: bool = True,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 5.0,
        timeout: float = 10.0,
        unreachable_ok: bool = False,
    ) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        # With ``unreachable_ok`` a server that does not answer yet is not an error: the
        # store connects, and migrates, at its first use once the server answers; until
        # then every operation raises StoreUnavailable.
        self._db = PostgresConnections(
            url,
            min_size=min_size,
            max_size=max_size,
            connect_timeout=connect_timeout,
            timeout=timeout,
            on_first_connect=(self.migrate if migrate else _nothing) if unreachable_ok else None,
        )
        self.location = self._db.location
        if migrate and not self._db.waiting_for_server:
            try:
                self.migrate()
            except BaseException:
                self.close()
                raise

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r})"

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _now(self) -> datetime:
        return utc(self._clock())

    def _one(self, query: str, values: dict[str, Any]) -> tuple[Any, ...] | None:
        with self._db.connection() as conn:
            return conn.execute(query, values).fetchone()

    def close(self) -> None:
        """Close the pool and its connections. Idempotent."""
        self._db.close()

    def batch(self) -> AbstractContextManager[None]:
        """One transaction for the block's operations on this thread; see
        :meth:`Store.batch <chatdebug.store.Store.batch>`."""
        return self._db.batch()

    # schema -------------------------------------------------------------------------
    def migrate(self) -> list[int]:
        """Apply the missing migrations in one transaction under an advisory lock, so
        processes starting together apply each version once; returns the versions."""
        known = migrations("postgres")
        # A migration is a script of several statements: not possible in pipeline mode.
        with self._db.connection(pipeline=False) as conn:
            exists = conn.execute(sql.MIGRATIONS_TABLE_EXISTS).fetchone()
            if exists and exists[0]:
                applied = {row[0] for row in conn.execute(sql.APPLIED_VERSIONS)}
                if all(m.version in applied for m in known):
                    return []
            done: list[int] = []
            with self._db.atomic(conn):
                conn.execute(sql.MIGRATION_LOCK)
                conn.execute(sql.CREATE_MIGRATIONS_TABLE)
                applied = {row[0] for row in conn.execute(sql.APPLIED_VERSIONS)}
                for migration in known:
                    if migration.version in applied:
                        continue
                    conn.execute(migration.sql.encode())  # several statements, no parameters
                    conn.execute(
                        sql.RECORD_VERSION,
                        {
                            "version": migration.version,
                            "name": migration.name,
                            "applied_at": self._now(),
                        },
                    )
                    done.append(migration.version)
        return done

    def pending_migrations(self) -> list[int]:
        known = migrations("postgres")
        applied: set[int] = set()
        with self._db.connection(pipeline=False) as conn:
            exists = conn.execute(sql.MIGRATIONS_TABLE_EXISTS).fetchone()
            if exists and exists[0]:
                applied = {row[0] for row in conn.execute(sql.APPLIED_VERSIONS)}
        return [m.version for m in known if m.version not in applied]

    # runs ---------------------------------------------------------------------------
    def create_run(self, params: NewRun) -> Run:
        values = new_run_params(params, self._now())
        with self._db.connection() as conn:
            row = conn.execute(sql.INSERT_RUN, values).fetchone()
            if row is None:  # the id exists: a retried create
                row = conn.execute(sql.GET_RUN, values).fetchone()
        if row is None:  # deleted in between; the caller may retry
            raise StoreError(f"chatdebug: run {params.id} vanished while being created")
        run = _run(row)
        if run.chat_id != params.chat_id:
            raise StoreError(f"chatdebug: run {run.id} already exists in another chat")
        return run

    def update_run(self, params: RunUpdate) -> Run:
        row = self._one(sql.UPDATE_RUN, run_update_params(params, self._now()))
        if row is None:
            raise RunNotFound(f"chatdebug: run {params.id} not found in chat {params.chat_id!r}")
        return _run(row)

    def touch_run(self, run_id: uuid.UUID, chat_id: str) -> None:
        values = {"run_id": run_id, "chat_id": chat_id, "now": self._now()}
        with self._db.connection() as conn:
            conn.execute(sql.TOUCH_RUN, values).fetchall()

    def get_run(self, run_id: uuid.UUID) -> Run | None:
        row = self._one(sql.GET_RUN, {"id": run_id})
        return None if row is None else _run(row)

    def list_runs(self, chat_id: str, limit: int = DEFAULT_LIST_LIMIT) -> list[Run]:
        with self._db.connection() as conn:
            rows = conn.execute(
                sql.LIST_RUNS, {"chat_id": chat_id, "limit": validate_limit(limit)}
            ).fetchall()
        return [_run(row) for row in rows]

    def list_recent_runs(
        self,
        filters: RunFilter | None = None,
        *,
        after: RunPosition | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
    ) -> list[Run]:
        names, values = recent_runs_parameters(
            filters, after, validate_limit(limit), match=sql.search_word
        )
        with self._db.connection() as conn:
            if any(name.startswith("text:") for name in names):
                rows = search_rows(conn, names, values)
            else:
                rows = conn.execute(sql.recent_runs(names), values).fetchall()
        return [_run(row) for row in rows]

    def chat_totals(self, chat_id: str, limit: int) -> ChatTotals:
        row = self._one(sql.CHAT_TOTALS, {"chat_id": chat_id, "limit": validate_limit(limit)})
        if row is None:  # an aggregate always has its row
            raise StoreError("chatdebug: the chat's totals came back empty")
        return chat_totals_from_row(row, list(row[8]), utc)

    # steps --------------------------------------------------------------------------
    def create_step(self, params: NewStep) -> Step:
        base = new_step_params(params, self._now())

        def attempt(step_number: int | None, floor: int) -> Step | None:
            values = {**base, "step_number": step_number, "floor": floor}
            with self._db.connection() as conn:
                try:
                    if step_number is None:
                        with self._db.atomic(conn):
                            conn.execute(sql.LOCK_RUN, values)
                            row = conn.execute(sql.INSERT_STEP, values).fetchone()
                    else:
                        row = conn.execute(sql.INSERT_STEP, values).fetchone()
                except pg_errors.UniqueViolation as exc:
                    if exc.diag.constraint_name == _STEP_NUMBER_INDEX:
                        raise DuplicateStepNumber from exc
                    raise
                if row is not None:
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
        row = self._one(sql.UPDATE_STEP, step_update_params(params, self._now()))
        if row is None:
            raise RunNotFound(f"chatdebug: step {params.id} not found in chat {params.chat_id!r}")
        return _step(row)

    def touch_step(self, step_id: uuid.UUID, run_id: uuid.UUID, chat_id: str) -> None:
        values = {"step_id": step_id, "run_id": run_id, "chat_id": chat_id, "now": self._now()}
        with self._db.connection() as conn:
            conn.execute(sql.TOUCH_STEP, values).fetchall()

    def write_bulk(self, writes: BulkWrites, pace: Callable[[], None] | None = None) -> bool:
        """The bulk write path (see :class:`~chatdebug.store.BulkWriter`): runs and steps
        created, steps updated and runs ended by multi-row statements
        (:mod:`._postgres_multirow`), heartbeats by one ``executemany`` each, all of them
        pipelined in one round trip; all or nothing."""
        values = bulk_parameters(writes, self._now(), None, pace)
        # A step without a number is numbered from the rows already there, which a
        # multi-row statement cannot see for its own rows: those go one at a time.
        numbered = all(row["step_number"] is not None for row in values.steps)
        statements: list[tuple[MultiRow | str, list[dict[str, Any]]]] = [
            (multirow.MULTI_INSERT_RUN, values.runs),
            (multirow.MULTI_INSERT_STEP if numbered else sql.INSERT_STEP_BULK, values.steps),
            (multirow.MULTI_UPDATE_STEP, values.updates),
            (sql.TOUCH_STEP_BULK, values.step_touches),
            (sql.TOUCH_RUN_BULK, values.run_touches),
            (multirow.MULTI_UPDATE_RUN, values.run_updates),
        ]
        try:
            with self._db.connection() as conn, self._db.atomic(conn):
                sent = []
                with conn.pipeline():  # nested in a batch's: leaving it syncs
                    for statement, rows in statements:
                        if isinstance(statement, MultiRow):
                            for part in multirow.parts(rows, _MULTIROW_PART):
                                cursor = conn.cursor()
                                cursor.execute(statement.text, statement.parameters(part))
                                sent.append((cursor, len(part)))
                                if pace is not None:
                                    pace()
                            continue
                        checked = statement is not sql.TOUCH_STEP_BULK and (
                            statement is not sql.TOUCH_RUN_BULK
                        )
                        # psycopg prepares each row in Python: in parts, with a
                        # chance to pause between them.
                        for start in range(0, len(rows), _PIPELINE_PART):
                            part = rows[start : start + _PIPELINE_PART]
                            cursor = conn.cursor()
                            cursor.executemany(statement, part)
                            if checked:
                                sent.append((cursor, len(part)))
                            if pace is not None:
                                pace()
                if any(cursor.rowcount != count for cursor, count in sent):
                    raise _NotApplied
        except StoreUnavailable:
            raise
        except (_NotApplied, StoreError):
            return False  # rolled back: the caller goes one by one
        return True

    def steps_of_runs(self, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Step]]:
        """Bulk path: the steps of several runs without payloads, in one query."""
        with self._db.connection() as conn:
            rows = conn.execute(sql.LIST_STEPS_OF_RUNS, {"run_ids": list(run_ids)}).fetchall()
        found: dict[uuid.UUID, list[Step]] = {}
        for row in rows:
            step = _step(row)
            found.setdefault(step.run_id, []).append(step)
        return found

    def list_steps(self, run_id: uuid.UUID, *, payloads: bool = True) -> list[Step]:
        query = sql.LIST_STEPS if payloads else sql.LIST_STEPS_WITHOUT_PAYLOADS
        with self._db.connection() as conn:
            rows = conn.execute(query, {"run_id": run_id}).fetchall()
        return [_step(row) for row in rows]

    # deletion, purge, stale finalization ----------------------------------------------
    def delete_by_chat(self, chat_id: str, started_before: datetime) -> int:
        values = {"chat_id": chat_id, "started_before": utc(started_before)}
        row = self._one(sql.DELETE_BY_CHAT, values)
        return int(row[0]) if row is not None else 0

    def delete_after_message(self, chat_id: str, message_id: int, started_before: datetime) -> int:
        values = {
            "chat_id": chat_id,
            "message_id": message_id,
            "started_before": utc(started_before),
        }
        row = self._one(sql.DELETE_AFTER_MESSAGE, values)
        return int(row[0]) if row is not None else 0

    def delete_old_runs(self, before: datetime, limit: int = PURGE_BATCH_SIZE) -> PurgeResult:
        values = {"before": utc(before), "limit": validate_limit(limit)}
        with self._db.connection() as conn, self._db.atomic(conn):
            locked = conn.execute(sql.PURGE_TRY_LOCK).fetchone()
            if not (locked and locked[0]):
                return PurgeResult(runs_removed=0, steps_removed=0, skipped=True)
            row = conn.execute(sql.PURGE, values).fetchone()
            runs, steps = row if row is not None else (0, 0)
            if runs:
                postgres_publish_summary(conn, "purge", {"runs": int(runs), "steps": int(steps)})
        return PurgeResult(runs_removed=int(runs), steps_removed=int(steps))

    def finalize_stale(self, updated_before: datetime) -> FinalizeResult:
        values = {"cutoff": utc(updated_before), "now": self._now()}
        with self._db.connection() as conn, self._db.atomic(conn):
            row = conn.execute(sql.FINALIZE_STALE, values).fetchone()
            runs, steps = row if row is not None else (0, 0)
            if runs or steps:
                counts = {"runs": int(runs), "steps": int(steps)}
                postgres_publish_summary(conn, "finalize", counts)
        return FinalizeResult(runs_finalized=int(runs), steps_finalized=int(steps))

    # settings -----------------------------------------------------------------------
    def _get_setting(self, key: str) -> str | None:
        row = self._one(sql.GET_SETTING, {"key": key})
        return None if row is None else str(row[0])

    def _set_setting(self, key: str, value: str) -> None:
        self._one(sql.SET_SETTING, {"key": key, "value": value, "now": self._now()})

    def get_allow_users(self) -> bool:
        return self._get_setting(SETTING_ALLOW_USERS) == "true"

    def set_allow_users(self, allowed: bool) -> None:
        self._set_setting(SETTING_ALLOW_USERS, "true" if allowed else "false")

    def get_user_enabled(self, user_id: str) -> bool:
        row = self._one(sql.GET_USER_ENABLED, {"user_id": user_id})
        return bool(row and row[0])

    def set_user_enabled(self, user_id: str, enabled: bool) -> None:
        self._one(
            sql.SET_USER_ENABLED,
            {"user_id": user_id, "enabled": bool(enabled), "now": self._now()},
        )

    def get_retention_days(self, *, strict: bool = False) -> int:
        return parse_retention_days(self._get_setting(SETTING_RETENTION_DAYS), strict=strict)

    def set_retention_days(self, days: int) -> None:
        self._set_setting(SETTING_RETENTION_DAYS, str(validate_retention_days(days)))

    # change events (see chatdebug.store.open_change_feed) -------------------------------
    def change_feed(self) -> PostgresChangeFeed:
        """The change events of this schema committed from now on, by any process."""
        return PostgresChangeFeed(self._db._target, dict(self._db._kwargs), self._db._password)

    def get_step(self, run_id: uuid.UUID, step_number: int) -> Step | None:
        """Step ``step_number`` of the run, or ``None``."""
        row = self._one(changes.STEP_BY_NUMBER, {"run_id": run_id, "step_number": step_number})
        return None if row is None else _step(row)

    def list_changed_runs(self, since: datetime, limit: int = DEFAULT_LIST_LIMIT) -> list[Run]:
        """Runs whose ``updated_at`` is at or after ``since``, oldest change first."""
        with self._db.connection() as conn:
            rows = conn.execute(
                changes.CHANGED_RUNS, {"since": utc(since), "limit": validate_limit(limit)}
            ).fetchall()
        return [_run(row) for row in rows]
