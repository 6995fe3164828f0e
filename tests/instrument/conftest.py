"""Fixtures for instrumentation tests: spans go to an in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chatdebug.instrument import InstrumentSettings, install
from tests.instrument.support import Spans


@pytest.fixture
def spans() -> Iterator[Spans]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    install(InstrumentSettings(tracer_provider=provider, force_enabled=True))
    try:
        yield Spans(exporter, provider)
    finally:
        install(InstrumentSettings())
        provider.shutdown()
