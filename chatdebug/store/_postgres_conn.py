"""Connections of the PostgreSQL store: a checked pool, errors translated and scrubbed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow
from psycopg.types.string import TextLoader
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from ._errors import StoreConfigError, StoreError, StoreUnavailable
from ._url import parse_database_url, scrub

__all__ = ["Connection", "PostgresConnections"]

Connection = psycopg.Connection[TupleRow]

# SQLSTATE classes meaning "the server or the connection is not usable right now" (or a
# transaction lost a race), worth retrying: connection exception, transaction rollback,
# insufficient resources, operator intervention (shutdown, cancel).
_UNAVAILABLE_CLASSES: Final = frozenset({"08", "40", "53", "57"})


def _configure(conn: Connection) -> None:
    # JSONB as text: decoded by our tolerant decoder, exactly like SQLite's JSON text.
    conn.adapters.register_loader("jsonb", TextLoader)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _parse_conninfo(target: str) -> tuple[str | None, dict[str, Any]]:
    try:
        return None, conninfo_to_dict(target)
    except psycopg.Error as exc:
        return _first_line(exc), {}


def _probe(target: str, kwargs: dict[str, Any]) -> str | None:
    """Why no connection can be made, or ``None``. One direct connection fails fast and
    says why, where a pool would only time out."""
    try:
        psycopg.connect(target, **kwargs).close()
    except psycopg.Error as exc:
        return _first_line(exc)
    return None


class PostgresConnections:
    """A pool of autocommit connections to one database.

    Each connection is checked before it is lent, so connections a restarted server
    dropped are replaced instead of failing an operation. Every error message has the
    URL's password scrubbed; ``location`` is the URL with the password masked.
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
        problem = _probe(parsed.target, kwargs)
        if problem is not None:
            raise StoreUnavailable(
                f"chatdebug: cannot connect to PostgreSQL at {self.location}: "
                f"{self._scrub(problem)}"
            )
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            parsed.target,
            kwargs=kwargs,
            min_size=min_size,
            max_size=max_size,
            open=False,
            configure=_configure,
            check=ConnectionPool.check_connection,
            timeout=timeout,
            name="chatdebug",
        )
        opened = True
        try:
            self._pool.open(wait=True, timeout=timeout)
        except PoolTimeout:
            opened = False
        if not opened:
            self._pool.close()
            raise StoreUnavailable(
                f"chatdebug: cannot connect to PostgreSQL at {self.location}: "
                f"no connection within {timeout:g}s"
            )

    def _scrub(self, text: str) -> str:
        return scrub(text, self._password)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection for one operation; driver errors become store errors."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolClosed:
            raise StoreError("chatdebug: the store is closed") from None
        except PoolTimeout as exc:
            raise StoreUnavailable(
                f"chatdebug: no PostgreSQL connection to {self.location} within {self._timeout:g}s"
            ) from exc
        except psycopg.Error as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: psycopg.Error) -> StoreError:
        message = self._scrub(_first_line(exc))
        sqlstate = exc.sqlstate or ""
        lost = isinstance(exc, psycopg.InterfaceError) or (
            isinstance(exc, psycopg.OperationalError)
            and (not sqlstate or sqlstate[:2] in _UNAVAILABLE_CLASSES)
        )
        if lost:
            return StoreUnavailable(
                f"chatdebug: PostgreSQL at {self.location} is unavailable: {message}"
            )
        return StoreError(f"chatdebug: PostgreSQL error: {message}")

    def close(self) -> None:
        """Close the pool and its connections. Idempotent."""
        self._pool.close()
