"""Fixtures of the purge and stale finalizer tests (both backends): a store whose clock
the test controls, as in the store contract suite, and a private metrics registry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chatdebug.metrics import Metrics
from chatdebug.store import Store, open_store
from tests.store.support import FakeClock


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
def metrics() -> Metrics:
    return Metrics()
