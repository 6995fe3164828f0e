"""``open_store``: from a database URL to a ready store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from ._contract import Store
from ._database_url import parse_database_url, resolve_url

__all__ = ["open_store"]


def open_store(
    url: str | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    migrate: bool = True,
    unreachable_ok: bool = False,
) -> Store:
    """Open the store a database URL names, creating or upgrading its schema.

    ``url`` defaults to ``$CHATDEBUG_DATABASE_URL``, else ``sqlite:///chatdebug.db`` (a
    file in the working directory). Accepted: ``sqlite:///relative/path.db``,
    ``sqlite:////absolute/path.db``, ``sqlite:///:memory:``, ``postgresql://…`` and
    ``postgres://…``.

    ``clock`` gives every "now" the store writes (default: the current UTC time); tests
    pass a fake one. With ``migrate`` (the default) missing migrations are applied
    before this returns.

    With ``unreachable_ok``, a PostgreSQL server that cannot be reached yet, or an SQLite
    file on a file system that refuses writes (read-only or full), is not an error: the
    store connects and migrates once it can, and its operations raise
    :class:`~chatdebug.store.StoreUnavailable` until then.

    Raises :class:`~chatdebug.store.StoreConfigError` for a URL it cannot use and
    :class:`~chatdebug.store.StoreUnavailable` when the database cannot be reached;
    neither message contains the URL's password. Close the store when done
    (``store.close()``, or use it as a context manager).
    """
    parsed = parse_database_url(resolve_url(url))
    if parsed.backend == "sqlite":
        from ._sqlite import SQLiteStore

        return SQLiteStore(
            parsed.target, clock=clock, migrate=migrate, unwritable_ok=unreachable_ok
        )
    from ._postgres import PostgresStore

    return PostgresStore(parsed.target, clock=clock, migrate=migrate, unreachable_ok=unreachable_ok)
