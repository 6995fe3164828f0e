"""Helpers shared by the whole suite: the PostgreSQL server under test and the external
tools some tests drive. Test modules import these from here, never from a conftest.

PostgreSQL tests use ``CHATDEBUG_TEST_POSTGRES_DSN`` (default: the local server on
127.0.0.1:5432, database ``test``). When it cannot be reached they are skipped with a
clear reason, unless ``CHATDEBUG_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), which turns
the skip into a failure.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest

__all__ = [
    "DEFAULT_PG_DSN",
    "postgres_dsn",
    "require_postgres",
    "require_tool",
    "with_search_path",
]

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_dsn() -> str:
    return os.environ.get("CHATDEBUG_TEST_POSTGRES_DSN", DEFAULT_PG_DSN)


def _postgres_required() -> bool:
    return os.environ.get("CHATDEBUG_REQUIRE_POSTGRES", "") not in ("", "0", "false")


_pg_reachable: bool | None = None
_pg_error = ""


def require_postgres() -> str:
    """Return the DSN of a reachable server, or skip (fail in CI) with the reason."""
    global _pg_reachable, _pg_error
    if _pg_reachable is None:
        import psycopg

        try:
            with psycopg.connect(postgres_dsn(), connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _pg_reachable = True
        except Exception as exc:  # any failure means "not usable here"
            _pg_reachable = False
            _pg_error = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    if not _pg_reachable:
        message = (
            f"PostgreSQL not reachable at {postgres_dsn()} ({_pg_error}); "
            "set CHATDEBUG_TEST_POSTGRES_DSN to run the PostgreSQL half of the suite"
        )
        if _postgres_required():
            pytest.fail(message + " [CHATDEBUG_REQUIRE_POSTGRES=1]", pytrace=False)
        pytest.skip(message)
    return postgres_dsn()


def with_search_path(dsn: str, schema: str) -> str:
    """The DSN with ``options=-csearch_path=<schema>`` added."""
    parts = urllib.parse.urlsplit(dsn)
    query = urllib.parse.parse_qsl(parts.query)
    query.append(("options", f"-csearch_path={schema}"))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def require_tool(name: str) -> str:
    """The path of an executable the test drives for real (``promtool``, ``prometheus``,
    ``chromium``, ``chromedriver``), or skip with the reason; under
    ``CHATDEBUG_REQUIRE_TOOLS=1`` (set by ``.ci/run``) a missing one fails the test."""
    import shutil

    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian package: see .ci/run)"
        if os.environ.get("CHATDEBUG_REQUIRE_TOOLS", "") not in ("", "0", "false"):
            pytest.fail(message + " [CHATDEBUG_REQUIRE_TOOLS=1]", pytrace=False)
        pytest.skip(message)
    return path


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``predicate`` every 50 ms until it returns something truthy or ``timeout``
    seconds pass; its last value either way."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)
