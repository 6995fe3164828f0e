"""The change feed of a SQLite database, and the reads that apply a change cheaply.

Writers leave rows in the ``chat_debug_changes`` ring in their own transactions (see
:mod:`._changes`). The feed holds one connection of its own and polls
``PRAGMA data_version``, which moves only when another connection commits, every
``poll_interval`` seconds: a cheap question (no table is read) that makes another
process's commit visible within one interval. Only then it reads the rows after the
last one it handed out.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from typing import Final

from ._changes import ChangeEvent, coalesce_ring_rows
from ._rows import RUN_COLUMNS, STEP_COLUMNS

__all__ = ["CHANGED_RUNS", "STEP_BY_NUMBER", "SQLiteChangeFeed"]

logger = logging.getLogger("chatdebug.store")

POLL_INTERVAL: Final = 0.05
"""Seconds between two looks at ``PRAGMA data_version``."""
READ_LIMIT: Final = 5000
"""Ring rows read at once; more wait for the next call (which comes at once)."""

_ROWS: Final = (
    "SELECT seq, kind, chat_id, run_id, status, step_number, user_id, run_kind, model, counts "
    "FROM chat_debug_changes WHERE seq > ? ORDER BY seq LIMIT ?"
)
_BOUNDS: Final = "SELECT coalesce(min(seq), 0), coalesce(max(seq), 0) FROM chat_debug_changes"

STEP_BY_NUMBER: Final = (
    f"SELECT {STEP_COLUMNS} FROM chat_debug_steps "
    "WHERE run_id = :run_id AND step_number = :step_number"
)
CHANGED_RUNS: Final = (
    f"SELECT {RUN_COLUMNS} FROM chat_debug_runs WHERE updated_at >= :since "
    "ORDER BY updated_at, id LIMIT :limit"
)


class SQLiteChangeFeed:
    """:class:`~chatdebug.store.ChangeFeed` of one SQLite file (durable: an event's
    ``position`` is a ring ``seq``)."""

    durable = True

    def __init__(self, path: str, *, poll_interval: float = POLL_INTERVAL) -> None:
        self._path = path
        self._poll = poll_interval
        self._conn: sqlite3.Connection | None = None
        self._version: int | None = None
        self._position: int | None = None  # the last seq handed out
        self._failing = False
        self._lock = threading.Lock()  # since() may run on another thread than wait()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, timeout=5.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA busy_timeout = 5000")
        return conn

    def wait(self, timeout: float) -> list[ChangeEvent]:
        deadline = time.monotonic() + timeout
        while True:
            events = self._look()
            if events:
                return events
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            time.sleep(min(self._poll, left))

    def _look(self) -> list[ChangeEvent]:
        try:
            if self._conn is None:
                self._conn = self._connect()
                self._version = None
            conn = self._conn
            version = int(conn.execute("PRAGMA data_version").fetchone()[0])
            if version == self._version:
                return []
            low, high = conn.execute(_BOUNDS).fetchone()
            if self._position is None:  # opening: from now on
                self._position = int(high)
                self._version = version
                return []
            if self._position > high or (low > self._position + 1 and low > 1):
                # Behind the ring (or the file was replaced): changes were lost to us.
                self._position = int(high)
                self._version = version
                return [ChangeEvent("reset", position=self._position)]
            rows = conn.execute(_ROWS, (self._position, READ_LIMIT)).fetchall()
        except sqlite3.Error as exc:
            if not self._failing:
                logger.warning("chatdebug: cannot read change events from %s: %s", self._path, exc)
            self._failing = True
            self._drop()
            return []
        self._failing = False
        if len(rows) < READ_LIMIT:
            self._version = version  # else read again at once
        if not rows:
            return []
        self._position = int(rows[-1][0])
        return coalesce_ring_rows(rows)

    def since(self, position: int) -> list[ChangeEvent] | None:
        try:
            with self._lock:
                conn = self._connect()
            try:
                low, high = conn.execute(_BOUNDS).fetchone()
                if position > high or (low > position + 1 and low > 1):
                    return None
                rows = conn.execute(_ROWS, (position, READ_LIMIT)).fetchall()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            logger.warning("chatdebug: cannot read change events from %s: %s", self._path, exc)
            return None
        if len(rows) == READ_LIMIT:
            return None  # too far behind to replay in one go
        return coalesce_ring_rows(rows)

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None

    def close(self) -> None:
        self._drop()
