"""Connections of the PostgreSQL store: a checked pool, errors translated and scrubbed,
outages of the server noticed and recovered from, operations grouped into batches, a
new pool after ``fork``."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Final, NoReturn

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg.types.string import TextLoader
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from .._lifecycle import ForkStage, abandon, register_fork_safe
from ._database_url import parse_database_url, scrub
from ._errors import StoreConfigError, StoreError, StoreUnavailable

__all__ = ["Connection", "PostgresConnections"]

Connection = psycopg.Connection[TupleRow]

_POOL_ERRORS: Final = (PoolClosed, PoolTimeout, psycopg.Error)

BATCH_CONNECTION_WAIT: Final = 2.0
"""Longest wait of a batch for a pooled connection."""

# SQLSTATE classes meaning "the server or the connection is not usable right now" (or a
# transaction lost a race), worth retrying: connection exception, transaction rollback,
# insufficient resources, operator intervention (shutdown, cancel).
_UNAVAILABLE_CLASSES: Final = frozenset({"08", "40", "53", "57"})

# SQLSTATE classes meaning the server went away (connection exception, operator
# intervention such as a shutdown): the pool's connections are suspect from then on.
_LOST_CLASSES: Final = frozenset({"08", "57"})

PROBE_INTERVAL_SECONDS: Final = 0.25
"""While the server is unreachable, how often an operation may try a connection of its
own; the others in between fail at once."""
PROBE_CONNECT_TIMEOUT: Final = 2  # seconds, libpq's minimum

_SAVEPOINT: Final = b"SAVEPOINT chatdebug_op"
_RELEASE: Final = b"RELEASE SAVEPOINT chatdebug_op"
_ROLLBACK_TO: Final = b"ROLLBACK TO SAVEPOINT chatdebug_op"


def _configure(conn: Connection) -> None:
    # JSONB as text: decoded by our tolerant decoder, exactly like SQLite's JSON text.
    conn.adapters.register_loader("jsonb", TextLoader)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _probe(target: str, kwargs: dict[str, Any]) -> str | None:
    """Why no connection can be made, or ``None``. One direct connection fails fast and
    says why, where a pool would only time out."""
    try:
        psycopg.connect(target, **kwargs).close()
    except psycopg.Error as exc:
        return _first_line(exc)
    return None


def _parse_conninfo(target: str) -> tuple[str | None, dict[str, Any]]:
    try:
        return None, conninfo_to_dict(target)
    except psycopg.Error as exc:
        return _first_line(exc), {}


class _Batch:
    """The state of one thread's open batch (see :meth:`PostgresConnections.batch`).

    Its connection is in pipeline mode: commands are sent without waiting for their
    results, which arrive when a statement's rows are fetched. Every operation
    therefore costs one round trip, its savepoint included. ``failed`` is the error
    that made the batch unusable (its transaction is then rolled back at the end).
    """

    __slots__ = ("_pipeline_cm", "conn", "failed", "pid", "pipeline", "savepoint")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.failed: StoreUnavailable | None = None
        self.pid = os.getpid()
        self.savepoint = False  # whether the savepoint of an operation is open
        self._pipeline_cm: AbstractContextManager[psycopg.Pipeline] | None = None
        self.pipeline: psycopg.Pipeline | None = None

    def enter_pipeline(self) -> None:
        self._pipeline_cm = self.conn.pipeline()
        self.pipeline = self._pipeline_cm.__enter__()

    def exit_pipeline(self, exc: BaseException | None = None) -> None:
        """Leave pipeline mode, collecting every result (raising the first error,
        unless ``exc`` is already on its way)."""
        cm, self._pipeline_cm, self.pipeline = self._pipeline_cm, None, None
        if cm is not None:
            if exc is None:
                cm.__exit__(None, None, None)
            else:
                cm.__exit__(type(exc), exc, exc.__traceback__)

    def sync(self) -> None:
        """Wait for every command sent so far; raises the first error among them."""
        if self.pipeline is not None:
            self.pipeline.sync()


class PostgresConnections:
    """A pool of autocommit connections to one database.

    Each connection is checked before it is lent, so connections a restarted server
    dropped are replaced instead of failing an operation. Every error message has the
    URL's password scrubbed; ``location`` is the URL with the password masked.

    A driver error that means the server went away is noted, and from then on every use
    of the pool first goes through :meth:`_recover`, which starts over with a new pool
    once a connection of our own works.

    :meth:`batch` lends one connection to a thread for a whole block (checked once),
    whose operations then share one transaction, each in a savepoint. In a forked
    child the parent's pool is abandoned (its connections are never used nor closed:
    they are the parent's sessions) and a new pool is opened on first use.
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int,
        max_size: int,
        connect_timeout: float,
        timeout: float,
        on_first_connect: Callable[[], object] | None = None,
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
        self._target = parsed.target
        self._kwargs = kwargs
        self._min_size = min_size
        self._max_size = max_size
        self._lock = threading.Lock()
        self._local = threading.local()
        self._closed = False
        # Outage handling: see _recover().
        self._lost: str | None = None  # why the server was last found unreachable
        self._probe_lock = threading.Lock()
        self._last_probe = 0.0
        self._on_first_connect: Callable[[], object] | None = None
        self._pool: ConnectionPool[Connection] | None = None
        problem = _probe(parsed.target, kwargs)
        if problem is not None:
            if on_first_connect is None:
                raise StoreUnavailable(
                    f"chatdebug: cannot connect to PostgreSQL at {self.location}: "
                    f"{self._scrub(problem)}"
                )
            # Not reachable yet: every use fails fast until a probe connects, which
            # then opens the pool and calls ``on_first_connect`` (see _recover()).
            self._lost = self._scrub(problem)
            self._on_first_connect = on_first_connect
            register_fork_safe(self, ForkStage.CONNECTIONS)
            return
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
        self._pool = pool
        register_fork_safe(self, ForkStage.CONNECTIONS)

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

    # errors and outages -------------------------------------------------------------
    def _note_lost(self, reason: str) -> None:
        """The server was found unreachable: recover through :meth:`_recover`."""
        self._lost = reason

    def _recover(self) -> None:
        """Before using the pool after an outage was seen: try one connection of our own
        (at most every :data:`PROBE_INTERVAL_SECONDS`, other callers failing at once
        meanwhile); once it works, start over with a new pool.

        The pool's own reconnection backs off exponentially (to minutes) and a borrower
        waits for its whole ``timeout``; this way writes resume within a fraction of a second
        of the server coming back, and nobody waits on a pool that cannot connect."""
        reason = self._lost
        if reason is None:
            return
        problem: str | None = reason
        if self._probe_lock.acquire(blocking=False):
            try:
                if self._lost is None:
                    return  # another thread recovered meanwhile
                now = time.monotonic()
                if now - self._last_probe >= PROBE_INTERVAL_SECONDS:
                    self._last_probe = now
                    kwargs = {**self._kwargs, "connect_timeout": PROBE_CONNECT_TIMEOUT}
                    problem = _probe(self._target, kwargs)
                    if problem is None:
                        self._replace_pool()
                        self._lost = None
                        self._first_connect()
                        return
                    problem = self._scrub(problem)
                    self._lost = problem
            finally:
                self._probe_lock.release()
        raise StoreUnavailable(
            f"chatdebug: PostgreSQL at {self.location} is unavailable: {problem}"
        )

    @property
    def waiting_for_server(self) -> bool:
        """Opened while the server was unreachable, and not connected since."""
        return self._on_first_connect is not None

    def _first_connect(self) -> None:
        """Run ``on_first_connect`` of a store opened while the server was unreachable,
        once; if it fails, the next use tries again."""
        hook, self._on_first_connect = self._on_first_connect, None
        if hook is None:
            return
        try:
            hook()
        except BaseException:
            self._on_first_connect = hook
            self._lost = "not set up yet"
            raise

    def _replace_pool(self) -> None:
        with self._lock:
            if self._closed:
                return
            old, self._pool = self._pool, self._new_pool()
            self._pool.open(wait=False)
        if old is not None:
            # Its workers may be sleeping in a reconnect backoff: close it aside.
            threading.Thread(
                target=old.close, kwargs={"timeout": 1.0}, name="chatdebug-pool-close", daemon=True
            ).start()

    def _raise_pool_error(self, exc: PoolClosed | PoolTimeout | psycopg.Error) -> NoReturn:
        """Raise the store error for a failure to get or use a pooled connection."""
        if isinstance(exc, PoolClosed):
            raise StoreError("chatdebug: the store is closed") from None
        if isinstance(exc, PoolTimeout):
            self._note_lost(f"no connection within {self._timeout:g}s")
            raise StoreUnavailable(
                f"chatdebug: no PostgreSQL connection to {self.location} within {self._timeout:g}s"
            ) from exc
        raise self._translate(exc) from exc

    def _translate(self, exc: psycopg.Error) -> StoreError:
        message = self._scrub(_first_line(exc))
        sqlstate = exc.sqlstate or ""
        lost = isinstance(exc, psycopg.InterfaceError) or (
            isinstance(exc, psycopg.OperationalError)
            and (not sqlstate or sqlstate[:2] in _UNAVAILABLE_CLASSES)
        )
        if lost:
            if (
                isinstance(exc, psycopg.InterfaceError)
                or sqlstate[:2] in _LOST_CLASSES
                or (not sqlstate)
            ):
                self._note_lost(message)
            return StoreUnavailable(
                f"chatdebug: PostgreSQL at {self.location} is unavailable: {message}"
            )
        return StoreError(f"chatdebug: PostgreSQL error: {message}")

    # operations and batches ---------------------------------------------------------
    def _current_batch(self) -> _Batch | None:
        batch: _Batch | None = getattr(self._local, "batch", None)
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
    def _in_batch(self, batch: _Batch, pipeline: bool) -> Iterator[Connection]:
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

    def _note_failure(self, batch: _Batch, error: BaseException) -> None:
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

    def _undo(self, batch: _Batch) -> None:
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
                f"{self._scrub(_first_line(exc))}"
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
        batch = _Batch(conn)
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
