"""Upkeep operations of the SQLite store, for :class:`~._sqlite.SQLiteStore`: deleting a
chat's runs, purging old runs, finalizing stale ones, and the settings (user opt-in,
retention) that govern recording and the purge.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

from . import _sqlite_sql as sql
from ._base import PURGE_BATCH_SIZE, FinalizeResult, PurgeResult
from ._codec import format_timestamp
from ._params import (
    SETTING_ALLOW_USERS,
    SETTING_RETENTION_DAYS,
    parse_retention_days,
    validate_limit,
    validate_retention_days,
)
from ._sqlite_conn import SQLiteConnections

__all__ = ["SQLiteUpkeep"]


class SQLiteUpkeep:
    """Deletion, purge, stale finalization and settings on the store's connections."""

    _db: SQLiteConnections

    if TYPE_CHECKING:

        def _now(self) -> datetime: ...

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
        return PurgeResult(runs_removed=runs, steps_removed=steps)

    def finalize_stale(self, updated_before: datetime) -> FinalizeResult:
        values = {
            "cutoff": format_timestamp(updated_before),
            "now": format_timestamp(self._now()),
        }
        with self._db.write() as conn:
            steps = conn.execute(sql.FINALIZE_STALE_STEPS, values).rowcount
            runs = conn.execute(sql.FINALIZE_STALE_RUNS, values).rowcount
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
