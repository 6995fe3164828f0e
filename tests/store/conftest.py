"""Fixtures of the store contract suite; every test runs on SQLite and PostgreSQL
through the ``database_url`` fixture of ``tests/conftest.py``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chatdebug.store import Store, open_store
from tests.store.support import FakeClock


@pytest.fixture
def pg_store(pg_url: str, clock: FakeClock) -> Iterator[Store]:
    """A migrated PostgreSQL store, for the behaviour only PostgreSQL has."""
    opened = open_store(pg_url, clock=clock)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def sqlite_store(sqlite_url: str, clock: FakeClock) -> Iterator[Store]:
    """A migrated SQLite store, for the behaviour only SQLite has."""
    opened = open_store(sqlite_url, clock=clock)
    try:
        yield opened
    finally:
        opened.close()
