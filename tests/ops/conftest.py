"""Fixtures of the purge and stale finalizer tests (both backends): a store whose clock
the test controls (the ``clock`` and ``store`` fixtures of tests/conftest.py, as in the
store contract suite), and a private metrics registry."""

from __future__ import annotations

import pytest

from chatdebug.metrics import Metrics


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()
