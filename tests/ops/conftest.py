"""Fixtures of the purge and stale finalizer tests (both backends): the store contract
suite's ``clock`` and ``store``, plus a private metrics registry."""

from __future__ import annotations

import pytest

from chatdebug.metrics import Metrics
from tests.store.conftest import clock, store

__all__ = ["clock", "metrics", "store"]


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()
