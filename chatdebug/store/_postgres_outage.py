"""Outages of the PostgreSQL server, for :class:`~._postgres_conn.PostgresConnections`:
telling the driver errors that mean the server is unavailable from the others, noting
that it went away, and starting over with a new pool once a connection of our own works.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Final, NoReturn

import psycopg
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from ._errors import StoreError, StoreUnavailable

if TYPE_CHECKING:
    from ._postgres_conn import Connection

__all__ = [
    "PROBE_CONNECT_TIMEOUT",
    "PROBE_INTERVAL_SECONDS",
    "OutageHandling",
    "first_line",
    "probe",
]


# SQLSTATE classes meaning "the server or the connection is not usable right now" (or a
# transaction lost a race), worth retrying: connection exception, transaction rollback,
# insufficient resources, operator intervention (shutdown, cancel).
_UNAVAILABLE_CLASSES: Final = frozenset({"08", "40", "53", "57"})

# SQLSTATE classes meaning the server went away (connection exception, operator
# intervention such as a shutdown): the pool's connections are suspect from then on.
_LOST_CLASSES: Final = frozenset({"08", "57"})
PROBE_INTERVAL_SECONDS: Final = 0.5
"""While the server is unreachable, how often an operation may try a connection of its
own; the others in between fail at once."""
PROBE_CONNECT_TIMEOUT: Final = 2  # seconds, libpq's minimum


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def probe(target: str, kwargs: dict[str, Any]) -> str | None:
    """Why no connection can be made, or ``None``. One direct connection fails fast and
    says why, where a pool would only time out."""
    try:
        psycopg.connect(target, **kwargs).close()
    except psycopg.Error as exc:
        return first_line(exc)
    return None


class OutageHandling:
    """The outage side of the connections: a driver error translated to a store error
    (noting a lost server), and the recovery every use of the pool goes through first."""

    location: str
    _timeout: float
    _target: str
    _kwargs: dict[str, Any]
    _lock: threading.Lock
    _closed: bool
    _pool: ConnectionPool[Connection] | None
    _lost: str | None
    _probe_lock: threading.Lock
    _last_probe: float

    if TYPE_CHECKING:

        def _new_pool(self) -> ConnectionPool[Connection]: ...

        def _scrub(self, text: str) -> str: ...

    def _note_lost(self, reason: str) -> None:
        """The server was found unreachable: recover through :meth:`_recover`."""
        self._lost = reason

    def _recover(self) -> None:
        """Before using the pool after an outage was seen: try one connection of our own
        (at most every :data:`PROBE_INTERVAL_SECONDS`, other callers failing at once
        meanwhile); once it works, start over with a new pool.

        The pool's own reconnection backs off exponentially (to minutes) and a borrower
        waits for its whole ``timeout``; this way writes resume within about a second
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
                    problem = probe(self._target, kwargs)
                    if problem is None:
                        self._replace_pool()
                        self._lost = None
                        return
                    problem = self._scrub(problem)
                    self._lost = problem
            finally:
                self._probe_lock.release()
        raise StoreUnavailable(
            f"chatdebug: PostgreSQL at {self.location} is unavailable: {problem}"
        )

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
        message = self._scrub(first_line(exc))
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
