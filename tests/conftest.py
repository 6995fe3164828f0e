"""Shared fixtures: the store under test on both backends, and the loopback provider.

PostgreSQL comes from ``CHATDEBUG_TEST_POSTGRES_DSN`` (see :mod:`tests.support`, which
holds the helpers test modules import).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

import chatdebug
from chatdebug.metrics import Metrics
from chatdebug.store import Store, open_store
from tests.fakes.server import FakeServer
from tests.store.support import FakeClock
from tests.support import require_postgres, with_search_path

# Internal errors of chatdebug are logged and swallowed in production; in tests they
# must surface.
os.environ.setdefault("CHATDEBUG_RAISE_INTERNAL_ERRORS", "1")


@pytest.fixture(autouse=True)
def _no_default_spill_journal(monkeypatch: pytest.MonkeyPatch) -> None:
    """No spill journal unless a test asks for one (``spill_path=…``): the default one
    for PostgreSQL lives in the working directory, where tests running one after the
    other would replay each other's leftovers. Application processes inherit this."""
    monkeypatch.setenv("CHATDEBUG_SPILL_PATH", "off")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL schema, dropped after the test."""
    import psycopg

    dsn = require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_search_path(dsn, schema)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a new SQLite file in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'chatdebug.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on both backends."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'chatdebug.db'}"
    else:
        yield request.getfixturevalue("pg_url")


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    """A loopback HTTP server that plays queued :class:`~tests.fakes.server.Reply`."""
    server = FakeServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(database_url: str, clock: FakeClock) -> Iterator[Store]:
    """A migrated store on a fresh database whose clock the test controls."""
    opened = open_store(database_url, clock=clock)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def configured(database_url: str) -> Iterator[chatdebug.Configuration]:
    """chatdebug recording into the test's database (each store), with its own metrics."""
    config = chatdebug.configure(database_url, enabled=True, metrics=Metrics(CollectorRegistry()))
    try:
        yield config
    finally:
        chatdebug.shutdown()
