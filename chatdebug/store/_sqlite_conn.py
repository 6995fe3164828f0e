"""Connections of the SQLite store: set up, pooled between threads, errors translated,
grouped into batches, replaced after ``fork``."""

from __future__ import annotations

import errno
import os
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from typing import Any, Final

from .._diskspace import read_only, storage_problem
from .._lifecycle import ForkStage, abandon, register_fork_safe
from ._database_url import MEMORY
from ._errors import StoreConfigError, StoreError, StoreUnavailable

__all__ = ["SQLiteConnections"]

_MIN_VERSION: Final = (3, 35, 0)  # RETURNING
_MAX_IDLE: Final = 8
# Primary result codes meaning "cannot get at the database now", worth retrying:
# BUSY, LOCKED, READONLY (a file system remounted read-only), IOERR, FULL, CANTOPEN,
# PROTOCOL.
_UNAVAILABLE_CODES: Final = frozenset({5, 6, 8, 10, 13, 14, 15})
_SAVEPOINT: Final = "chatdebug_op"
_BUSY_CODES: Final = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
# READONLY, IOERR, CANTOPEN: what SQLite answers for a file on a read-only file system
# (a database in WAL mode cannot even be opened there).
_READ_ONLY_CODES: Final = frozenset({8, 10, 14})


class _Batch:
    """The state of one thread's open batch: its connection, and the error that made
    the batch unusable (the transaction is then lost and is rolled back at the end)."""

    __slots__ = ("conn", "failed", "pid")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.failed: StoreUnavailable | None = None
        self.pid = os.getpid()


class SQLiteConnections:
    """Connections to one SQLite database, lent to one operation at a time.

    A connection is never used by two threads at once, but may serve different threads
    one after the other. An in-memory database is a named shared-cache database (so
    every connection sees it) kept alive by one extra connection; its operations are
    serialized, because shared-cache locks fail at once instead of waiting.

    :meth:`batch` lends one connection to a thread for a whole block, whose operations
    then share one transaction. In a forked child the connections inherited from the
    parent are abandoned (never used, never closed) and new ones opened on demand; an
    in-memory database is the child's copy of the parent's.
    """

    def __init__(self, path: str, busy_timeout: float, *, unwritable_ok: bool = False) -> None:
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
        self._lent: set[sqlite3.Connection] = set()  # to abandon them after a fork
        self._lock = threading.Lock()
        self._serial: AbstractContextManager[Any] = (
            threading.Lock() if self.memory else nullcontext()
        )
        self._local = threading.local()
        self._closed = False
        self._setup_lock = threading.Lock()
        self.pending_setup: Callable[[], object] | None = None
        """Run before the next operation (a migration deferred while the file system
        refused writes); kept for the one after when it fails."""
        self._keeper: sqlite3.Connection | None = None
        try:
            with self.errors():
                # Keeps an in-memory database alive; for a file, reports a bad path at once.
                self._keeper = self._connect()
        except StoreUnavailable:
            # With ``unwritable_ok``, a file on a file system that refuses writes (read-only
            # or full) is opened at the first operation that finds it writable again.
            if not (unwritable_ok and self.unwritable):
                raise
        register_fork_safe(self, ForkStage.CONNECTIONS)

    @property
    def unwritable(self) -> bool:
        """Whether the database's file system is read-only or full now."""
        return not self.memory and storage_problem(self.location, "database") is not None

    def _setup_if_pending(self) -> None:
        if self.pending_setup is None:
            return
        with self._setup_lock:
            setup, self.pending_setup = self.pending_setup, None
            if setup is None:
                return
            try:
                setup()
            except BaseException:
                self.pending_setup = setup
                raise

    def _after_fork_in_child(self) -> None:
        # The parent's threads (and their locks and batches) do not exist here.
        self._lock = threading.Lock()
        self._setup_lock = threading.Lock()
        if self.memory:
            self._serial = threading.Lock()
        self._local = threading.local()
        inherited: list[object] = [*self._idle, *self._lent]
        if self._keeper is not None:
            # An in-memory database stays alive through the abandoned keeper.
            inherited.append(self._keeper)
        self._idle, self._lent, self._keeper = [], set(), None
        abandon(*inherited)

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
                self._enable_wal(conn)
                # Under WAL, NORMAL still survives an application crash and saves an
                # fsync per commit; only a power loss can drop the last commits.
                conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL, waiting out other processes doing the same.

        Switching needs an exclusive lock, and when several connections try at once
        SQLite answers "database is locked" at once instead of calling the busy handler
        (each holds the shared lock the other needs to give up: waiting would deadlock).
        So this retries with a jittered backoff, up to the busy timeout.
        """
        deadline = time.monotonic() + self._busy_timeout
        delay = 0.002
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() == "wal":
                    return
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() == "wal":
                    return
            except sqlite3.OperationalError as exc:
                code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
                if code not in _BUSY_CODES:
                    raise
                if time.monotonic() + delay > deadline:
                    raise
            else:
                if time.monotonic() + delay > deadline:
                    raise sqlite3.OperationalError(
                        f"could not switch {self.location} to WAL (journal mode {mode})"
                    )
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.1)

    @contextmanager
    def _borrow(self) -> Iterator[sqlite3.Connection]:
        with self._serial:
            with self._lock:
                if self._closed:
                    raise StoreError("chatdebug: the store is closed")
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = self._connect()
            with self._lock:
                self._lent.add(conn)
            pid = os.getpid()
            reusable = True
            try:
                yield conn
            finally:
                if os.getpid() == pid:  # else forked meanwhile: the parent's connection
                    if conn.in_transaction:
                        try:
                            conn.execute("ROLLBACK")
                        except sqlite3.Error:
                            reusable = False
                    with self._lock:
                        self._lent.discard(conn)
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
                cause: BaseException = exc
                if code in _READ_ONLY_CODES and not self.memory and read_only(self.location):
                    # Said as the file system says it, so the failure is counted and
                    # reported as a read-only file system rather than a file not found.
                    cause = OSError(errno.EROFS, f"read-only file system: {self.location}")
                    cause.__cause__ = exc
                raise StoreUnavailable(
                    f"chatdebug: SQLite database {self.location} is unavailable: {exc}"
                ) from cause
            raise StoreError(f"chatdebug: SQLite error on {self.location}: {exc}") from exc

    def _current_batch(self) -> _Batch | None:
        batch: _Batch | None = getattr(self._local, "batch", None)
        return batch

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection for statements that only read (each one is atomic). Inside a
        batch, the batch's connection, which sees the batch's own writes."""
        batch = self._current_batch()
        if batch is not None:
            with self._in_batch(batch, None) as conn:
                yield conn
            return
        self._setup_if_pending()
        with self.errors(), self._borrow() as conn:
            yield conn

    @contextmanager
    def write(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """A connection inside a transaction that holds the write lock from the start,
        committed at the end of the block, rolled back on an exception.

        Inside a batch: a savepoint of the batch's transaction (begun with ``begin`` by
        its first write), released at the end of the block, rolled back to on an
        exception, so a failed operation leaves the batch's other writes in place."""
        batch = self._current_batch()
        if batch is not None:
            with self._in_batch(batch, begin) as conn:
                yield conn
            return
        self._setup_if_pending()
        with self.errors(), self._borrow() as conn:
            conn.execute(begin)
            yield conn  # on an exception _borrow rolls back
            conn.execute("COMMIT")

    @contextmanager
    def _in_batch(self, batch: _Batch, begin: str | None) -> Iterator[sqlite3.Connection]:
        """One operation inside ``batch``: a write (``begin`` given) in a savepoint, a
        read as it is. A :class:`StoreUnavailable`, losing the transaction or failing
        to undo an operation makes the batch fail: its remaining operations and its
        commit raise :class:`StoreUnavailable`."""
        if batch.failed is not None:
            raise StoreUnavailable(
                f"chatdebug: an earlier operation of this batch failed: {batch.failed}"
            )
        conn = batch.conn
        began = conn.in_transaction
        try:
            with self.errors():
                if begin is None:
                    yield conn
                    return
                if not began:
                    conn.execute(begin)
                    began = True
                conn.execute(f"SAVEPOINT {_SAVEPOINT}")
                try:
                    yield conn
                except BaseException:
                    self._undo(batch)
                    raise
                self._step(batch, f"RELEASE {_SAVEPOINT}")
        except BaseException as exc:
            if isinstance(exc, StoreUnavailable):
                batch.failed = exc
            elif began and not conn.in_transaction and batch.failed is None:
                batch.failed = StoreUnavailable(
                    f"chatdebug: the batch's transaction on {self.location} was rolled back: {exc}"
                )
            raise

    def _undo(self, batch: _Batch) -> None:
        """Roll the batch back to the operation's savepoint (unless SQLite has rolled
        the whole transaction back already, which fails the batch)."""
        if batch.conn.in_transaction:
            self._step(batch, f"ROLLBACK TO {_SAVEPOINT}")
            self._step(batch, f"RELEASE {_SAVEPOINT}")

    def _step(self, batch: _Batch, statement: str) -> None:
        try:
            batch.conn.execute(statement)
        except sqlite3.Error as exc:
            batch.failed = StoreUnavailable(
                f"chatdebug: {statement} failed on {self.location}: {exc}"
            )
            raise

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Lend one connection to this thread for the block; the writes of the block
        share its transaction, committed at the end (rolled back on an exception).
        Inside another batch of the same thread, just part of that one."""
        if self._current_batch() is not None:
            yield
            return
        self._setup_if_pending()
        with ExitStack() as stack:
            with self.errors():
                conn = stack.enter_context(self._borrow())  # rolls back unless committed
            batch = _Batch(conn)
            self._local.batch = batch
            try:
                yield
            finally:
                self._local.batch = None
            if os.getpid() != batch.pid:
                return  # forked inside the block: the transaction is the parent's
            if batch.failed is not None:
                raise StoreUnavailable(
                    f"chatdebug: batch not committed, an operation failed: {batch.failed}"
                )
            if conn.in_transaction:
                with self.errors():
                    conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection not in use (the others close when given back)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
            keeper, self._keeper = self._keeper, None
        for conn in [*idle, *([keeper] if keeper is not None else [])]:
            conn.close()
