"""Connections of the SQLite store: set up, pooled between threads, errors translated."""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Final

from ._errors import StoreConfigError, StoreError, StoreUnavailable
from ._url import MEMORY

__all__ = ["SQLiteConnections"]

_MIN_VERSION: Final = (3, 35, 0)  # RETURNING
_MAX_IDLE: Final = 8
# Primary result codes meaning "cannot get at the database now", worth retrying:
# BUSY, LOCKED, IOERR, FULL, CANTOPEN, PROTOCOL.
_UNAVAILABLE_CODES: Final = frozenset({5, 6, 10, 13, 14, 15})


class SQLiteConnections:
    """Connections to one SQLite database, lent to one operation at a time.

    A connection is never used by two threads at once, but may serve different threads
    one after the other. An in-memory database is a named shared-cache database (so
    every connection sees it) kept alive by one extra connection; its operations are
    serialized, because shared-cache locks fail at once instead of waiting.
    """

    def __init__(self, path: str, busy_timeout: float) -> None:
        if sqlite3.sqlite_version_info < _MIN_VERSION:
            raise StoreConfigError(
                f"chatdebug: SQLite {'.'.join(map(str, _MIN_VERSION))} or newer is needed, "
                f"this Python has {sqlite3.sqlite_version}"
            )
        self.memory = path == MEMORY
        self.location = path if self.memory else os.path.abspath(os.path.expanduser(path))
        self._target = (
            f"file:chatdebug-{uuid.uuid4().hex}?mode=memory&cache=shared"
            if self.memory
            else self.location
        )
        self._busy_timeout = busy_timeout
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._serial: AbstractContextManager[Any] = (
            threading.Lock() if self.memory else nullcontext()
        )
        self._closed = False
        with self.errors():
            # Keeps an in-memory database alive; for a file, reports a bad path at once.
            self._keeper = self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._target,
            uri=self.memory,
            timeout=self._busy_timeout,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,  # lent to one thread at a time, see the class doc
        )
        try:
            # Wait for another connection's write lock instead of failing at once with
            # "database is locked" (several threads and processes write the same file).
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            # Off by default in SQLite; the run/chat foreign key and its ON DELETE
            # CASCADE (steps go with their run) depend on it.
            conn.execute("PRAGMA foreign_keys = ON")
            if not self.memory:
                # Readers (CLI, dashboards) never block the writer and the writer never
                # blocks them; the setting persists in the file.
                conn.execute("PRAGMA journal_mode = WAL").fetchall()
                # Under WAL, NORMAL still survives an application crash and saves an
                # fsync per commit; only a power loss can drop the last commits.
                conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _borrow(self) -> Iterator[sqlite3.Connection]:
        with self._serial:
            with self._lock:
                if self._closed:
                    raise StoreError("chatdebug: the store is closed")
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = self._connect()
            reusable = True
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        reusable = False
                with self._lock:
                    keep = reusable and not self._closed and len(self._idle) < _MAX_IDLE
                    if keep:
                        self._idle.append(conn)
                if not keep:
                    conn.close()

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Translate ``sqlite3`` errors into store errors."""
        try:
            yield
        except sqlite3.Error as exc:
            code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
            if code in _UNAVAILABLE_CODES or "unable to open" in str(exc):
                raise StoreUnavailable(
                    f"chatdebug: SQLite database {self.location} is unavailable: {exc}"
                ) from exc
            raise StoreError(f"chatdebug: SQLite error on {self.location}: {exc}") from exc

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection for statements that only read (each one is atomic)."""
        with self.errors(), self._borrow() as conn:
            yield conn

    @contextmanager
    def write(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """A connection inside a transaction that holds the write lock from the start,
        committed at the end of the block, rolled back on an exception."""
        with self.errors(), self._borrow() as conn:
            conn.execute(begin)
            yield conn  # on an exception _borrow rolls back
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection not in use (the others close when given back)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in [*idle, self._keeper]:
            conn.close()
