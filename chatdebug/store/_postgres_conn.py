"""Connections of the PostgreSQL store: a checked pool, errors translated and scrubbed,
operations grouped into batches, a new pool after ``fork``."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Final

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg.types.string import TextLoader
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from ._errors import StoreConfigError, StoreError, StoreUnavailable
from ._fork import abandon, register_fork_safe
from ._postgres_batch import Batch
from ._postgres_outage import OutageHandling, first_line, probe
from ._url import parse_database_url, scrub

__all__ = ["Connection", "PostgresConnections"]

Connection = psycopg.Connection[TupleRow]

_POOL_ERRORS: Final = (PoolClosed, PoolTimeout, psycopg.Error)

BATCH_CONNECTION_WAIT: Final = 2.0
"""Longest wait of a batch for a pooled connection."""


_SAVEPOINT: Final = b"SAVEPOINT chatdebug_op"
_RELEASE: Final = b"RELEASE SAVEPOINT chatdebug_op"
_ROLLBACK_TO: Final = b"ROLLBACK TO SAVEPOINT chatdebug_op"


def _configure(conn: Connection) -> None:
    # JSONB as text: decoded by our tolerant decoder, exactly like SQLite's JSON text.
    conn.adapters.register_loader("jsonb", TextLoader)


def _parse_conninfo(target: str) -> tuple[str | None, dict[str, Any]]:
    try:
        return None, conninfo_to_dict(target)
    except psycopg.Error as exc:
        return first_line(exc), {}


class PostgresConnections(OutageHandling):
    """A pool of autocommit connections to one database.

    Each connection is checked before it is lent, so connections a restarted server
    dropped are replaced instead of failing an operation. Every error message has the
    URL's password scrubbed; ``location`` is the URL with the password masked.

    :meth:`batch` lends one connection to a thread for a whole block (checked once),
    whose operations then share one transaction, each in a savepoint. In a forked
    child the parent's pool is abandoned (its connections are never used nor closed:
    they are the parent's sessions) and a new pool is opened on first use.
    """

    def __init__(
        self, url: str, *, min_size: int, max_size: int, connect_timeout: float, timeout: float
    ) -> None:
        parsed = parse_database_url(url)
        if parsed.backend != "postgresql":
            raise StoreConfigError(f"chatdebug: not a PostgreSQL URL: {parsed.display}")
        self.location = parsed.display
        self._password = parsed.password
        self._timeout = timeout
        # Errors are raised outside ``except`` blocks so that no chained exception
        # carries a driver message, which may quote the URL.
        problem, given = _parse_conninfo(parsed.target)
        if problem is not None:
            raise StoreConfigError(
                f"chatdebug: invalid PostgreSQL URL {self.location}: {self._scrub(problem)}"
            )
        kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in given:
            kwargs["connect_timeout"] = max(2, round(connect_timeout))  # libpq's minimum
        if "application_name" not in given:
            kwargs["application_name"] = "chatdebug"
        problem = probe(parsed.target, kwargs)
        if problem is not None:
            raise StoreUnavailable(
                f"chatdebug: cannot connect to PostgreSQL at {self.location}: "
                f"{self._scrub(problem)}"
            )
        self._target = parsed.target
        self._kwargs = kwargs
        self._min_size = min_size
        self._max_size = max_size
        self._lock = threading.Lock()
        self._local = threading.local()
        self._closed = False
        pool = self._new_pool()
        opened = True
        try:
            pool.open(wait=True, timeout=timeout)
        except PoolTimeout:
            opened = False
        if not opened:
            pool.close()
            raise StoreUnavailable(
                f"chatdebug: cannot connect to PostgreSQL at {self.location}: "
                f"no connection within {timeout:g}s"
            )
        self._pool: ConnectionPool[Connection] | None = pool
        # Outage handling: see _recover().
        self._lost: str | None = None  # why the server was last found unreachable
        self._probe_lock = threading.Lock()
        self._last_probe = 0.0
        register_fork_safe(self)

    def _new_pool(self) -> ConnectionPool[Connection]:
        return ConnectionPool(
            self._target,
            kwargs=self._kwargs,
            min_size=self._min_size,
            max_size=self._max_size,
            open=False,
            configure=_configure,
            check=ConnectionPool.check_connection,
            timeout=self._timeout,
            name="chatdebug",
        )

    def _after_fork_in_child(self) -> None:
        # The parent's pool threads do not exist here and its connections are the
        # parent's sessions: keep them untouched, open a new pool when first needed.
        self._lock = threading.Lock()
        self._local = threading.local()
        self._probe_lock = threading.Lock()
        if self._pool is not None:
            abandon(self._pool)
            self._pool = None

    def _current_pool(self) -> ConnectionPool[Connection]:
        self._recover()
        pool = self._pool
        if pool is not None:
            return pool
        with self._lock:
            if self._closed:
                raise StoreError("chatdebug: the store is closed")
            if self._pool is None:  # first use in a forked child
                pool = self._new_pool()
                pool.open(wait=False)
                self._pool = pool
            return self._pool

    def _scrub(self, text: str) -> str:
        return scrub(text, self._password)

    def _current_batch(self) -> Batch | None:
        batch: Batch | None = getattr(self._local, "batch", None)
        return batch

    @contextmanager
    def connection(self, *, pipeline: bool = True) -> Iterator[Connection]:
        """A connection for one operation; driver errors become store errors.

        Inside a batch: the batch's connection, the operation in a savepoint. The
        connection is then in pipeline mode, so the operation must fetch the result of
        its last statement (which collects those of the earlier ones) before it ends;
        ``pipeline=False`` leaves pipeline mode for the operation (a script of several
        statements needs that)."""
        batch = self._current_batch()
        if batch is not None:
            with self._in_batch(batch, pipeline) as conn:
                yield conn
            return
        try:
            with self._current_pool().connection() as conn:
                yield conn
        except _POOL_ERRORS as exc:
            self._raise_pool_error(exc)

    def atomic(self, conn: Connection) -> AbstractContextManager[Any]:
        """A transaction around several statements of one operation; inside a batch,
        the batch's transaction already is one."""
        return nullcontext() if self._current_batch() is not None else conn.transaction()

    @contextmanager
    def _in_batch(self, batch: Batch, pipeline: bool) -> Iterator[Connection]:
        """One operation inside ``batch``, in a savepoint that is rolled back to when
        it raises. A :class:`StoreUnavailable`, or an error that leaves the batch's
        transaction unusable, makes the batch fail: its remaining operations and its
        end raise :class:`StoreUnavailable`."""
        if batch.failed is not None:
            raise StoreUnavailable(
                f"chatdebug: an earlier operation of this batch failed: {batch.failed}"
            )
        conn = batch.conn
        try:
            if not pipeline:
                batch.exit_pipeline()
            try:
                # Queued with the operation's first statement: no round trip of their own.
                if batch.savepoint:
                    conn.execute(_RELEASE, prepare=False)
                conn.execute(_SAVEPOINT, prepare=False)
                batch.savepoint = True
                try:
                    yield conn
                except BaseException:
                    self._undo(batch)
                    raise
            finally:
                if not pipeline and batch.failed is None and not conn.broken:
                    batch.enter_pipeline()
        except psycopg.Error as exc:
            error = self._translate(exc)
            self._note_failure(batch, error)
            raise error from exc
        except BaseException as exc:
            self._note_failure(batch, exc)
            raise

    def _note_failure(self, batch: Batch, error: BaseException) -> None:
        if batch.conn.broken:
            self._note_lost(f"lost the connection: {error}")
        if batch.failed is not None:
            return
        if isinstance(error, StoreUnavailable):
            batch.failed = error
        elif batch.conn.broken:
            batch.failed = StoreUnavailable(
                f"chatdebug: lost the connection to PostgreSQL at {self.location}: {error}"
            )

    def _undo(self, batch: Batch) -> None:
        """Roll the batch back to the start of the failed operation. Commands after an
        error were skipped by the server: wait for them first."""
        conn = batch.conn
        if conn.broken:
            return
        try:
            try:
                batch.sync()
            except psycopg.Error:
                pass  # the operation's own error again, or "pipeline aborted"
            conn.execute(_ROLLBACK_TO, prepare=False)
            batch.sync()
        except psycopg.Error as exc:
            batch.failed = StoreUnavailable(
                f"chatdebug: could not undo an operation on PostgreSQL at {self.location}: "
                f"{self._scrub(first_line(exc))}"
            )
            return
        if conn.info.transaction_status != TransactionStatus.INTRANS:
            batch.failed = StoreUnavailable(
                f"chatdebug: the batch's transaction on PostgreSQL at {self.location} was lost"
            )

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Lend one connection to this thread for the block, in one transaction that is
        committed at the end (rolled back on an exception). Inside another batch of the
        same thread, just part of that one."""
        if self._current_batch() is not None:
            yield
            return
        pool = self._current_pool()
        try:
            # Not the pool's whole timeout: a pool that cannot connect must be noticed
            # (and recovered from, see _recover) within seconds, not after its backoff.
            conn = pool.getconn(timeout=min(self._timeout, BATCH_CONNECTION_WAIT))
        except _POOL_ERRORS as exc:
            self._raise_pool_error(exc)
        batch = Batch(conn)
        try:
            transaction = conn.transaction()
            try:
                transaction.__enter__()
                batch.enter_pipeline()
            except psycopg.Error as exc:
                raise self._translate(exc) from exc
            self._local.batch = batch
            try:
                yield
            except BaseException as exc:
                self._local.batch = None
                if os.getpid() == batch.pid:
                    # Rolls back; psycopg logs (and ignores) a failure to do so.
                    batch.exit_pipeline(exc)
                    transaction.__exit__(type(exc), exc, exc.__traceback__)
                raise
            self._local.batch = None
            if os.getpid() != batch.pid:
                return  # forked inside the block: the transaction is the parent's
            failure: StoreError
            cause: BaseException
            if batch.failed is None:
                try:
                    batch.exit_pipeline()
                    transaction.__exit__(None, None, None)  # COMMIT
                    return
                except psycopg.Error as exc:
                    failure, cause = self._translate(exc), exc
            else:
                cause = batch.failed
                failure = StoreUnavailable(
                    f"chatdebug: batch not committed, an operation failed: {batch.failed}"
                )
            if not conn.broken:
                batch.exit_pipeline(failure)
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    transaction.__exit__(type(failure), failure, None)  # rollback
            raise failure from cause
        finally:
            if os.getpid() == batch.pid:
                pool.putconn(conn)  # a broken connection is discarded by the pool

    def close(self) -> None:
        """Close the pool and its connections. Idempotent."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
