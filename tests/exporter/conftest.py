"""Fixtures of the exporter tests: a migrated store on each backend, a private metrics
registry and real tracer providers. The span helpers are in :mod:`tests.exporter.support`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry

from chatdebug.metrics import Metrics
from chatdebug.store import Store, open_store


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated store on each backend."""
    opened = open_store(database_url)
    opened.migrate()
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    """A provider without an ``atexit`` hook; shut down after the test."""
    tp = TracerProvider(shutdown_on_exit=False)
    try:
        yield tp
    finally:
        tp.shutdown()


@pytest.fixture
def recorded() -> Iterator[tuple[Tracer, InMemorySpanExporter]]:
    """A tracer whose ended spans land in memory (for pure conversion tests)."""
    exporter = InMemorySpanExporter()
    tp = TracerProvider(shutdown_on_exit=False)
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    yield tp.get_tracer("test"), exporter
    tp.shutdown()
