"""StoreSpanExporter: end-only persistence behind OTel's own span processors."""

from __future__ import annotations

import logging
import uuid

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chatdebug import _spans as attr
from chatdebug.exporter import StoreSpanExporter
from chatdebug.metrics import Metrics
from chatdebug.store import Store, open_store
from tests.exporter.support import (
    finished_step_attributes,
    sample,
    start_run,
    start_step,
    user_request,
)


def _record_run(provider: TracerProvider, run_id: uuid.UUID, steps: int = 2) -> None:
    tracer = provider.get_tracer("test")
    run = start_run(tracer, run_id, {attr.RUN_KIND: "compaction"})
    for number in range(1, steps + 1):
        step, _ = start_step(
            tracer, run, run_id, number, {attr.STEP_NORMALIZED_REQUEST: user_request("hey")}
        )
        step.set_attributes(finished_step_attributes(input_tokens=3, output_tokens=2))
        step.end()
    run.end()


def test_batch_span_processor_writes_ended_runs(
    store: Store, provider: TracerProvider, metrics: Metrics
) -> None:
    provider.add_span_processor(BatchSpanProcessor(StoreSpanExporter(store, metrics)))
    run_id = uuid.uuid4()
    _record_run(provider, run_id)
    assert provider.force_flush(10_000)

    run = store.get_run(run_id)
    assert run is not None
    assert (run.kind, run.status) == ("compaction", "completed")
    assert run.finished_at is not None
    assert run.summary["first_message"] == "hey"
    assert run.summary["step_count"] == 2
    assert run.summary["total_input_tokens"] == 6
    assert run.summary["endpoint_label"] == "POST /v1/chat/completions"
    assert "duration_ms" in run.summary
    steps = store.list_steps(run_id)
    assert [(s.step_number, s.status) for s in steps] == [(1, "completed"), (2, "completed")]
    assert all(s.trace_id == run.trace_id for s in steps)
    assert sample(metrics, "chatdebug_exporter_events_written_total", kind="step_create") == 2
    labels = {"provider": "openai", "model": "gpt-4o", "operation": "chat", "error_type": ""}
    count = metrics.registry.get_sample_value(
        "gen_ai_client_operation_duration_seconds_count", labels
    )
    assert count == 2


def test_steps_wait_for_their_run(store: Store, provider: TracerProvider) -> None:
    provider.add_span_processor(SimpleSpanProcessor(StoreSpanExporter(store)))
    tracer = provider.get_tracer("test")
    run_id = uuid.uuid4()
    run = start_run(tracer, run_id)
    step, _ = start_step(tracer, run, run_id, 1)
    step.set_attributes(finished_step_attributes())
    step.end()
    # The step ended first: nothing is written until its run arrives.
    assert store.get_run(run_id) is None
    run.end()
    stored = store.get_run(run_id)
    assert stored is not None and stored.status == "completed"
    assert stored.summary["step_count"] == 1
    assert len(store.list_steps(run_id)) == 1


def test_buffer_overflow_creates_placeholder_run(store: Store, provider: TracerProvider) -> None:
    exporter = StoreSpanExporter(store, max_buffered_steps=1)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    run_id = uuid.uuid4()
    run = start_run(tracer, run_id)
    for number in (1, 2):
        step, _ = start_step(tracer, run, run_id, number)
        step.end()
    # Two held steps exceed the bound: the run is created from their ids.
    placeholder = store.get_run(run_id)
    assert placeholder is not None and placeholder.kind == "unknown"
    assert len(store.list_steps(run_id)) == 2
    run.end()
    final = store.get_run(run_id)
    assert final is not None and final.status == "completed"
    assert final.summary["step_count"] == 2


def test_shutdown_writes_held_steps_and_refuses_more(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    tracer = provider.get_tracer("test")
    run_id = uuid.uuid4()
    run = start_run(tracer, run_id)
    step, _ = start_step(tracer, run, run_id, 1)
    step.end()
    run.end()
    step_span, run_span = recorder.get_finished_spans()
    provider.shutdown()

    exporter = StoreSpanExporter(store)
    assert exporter.export([step_span]) is SpanExportResult.SUCCESS
    assert exporter.force_flush() is True
    exporter.shutdown()  # the orphan step is written under a placeholder run
    held = store.get_run(run_id)
    assert held is not None and held.kind == "unknown"
    assert len(store.list_steps(run_id)) == 1

    with caplog.at_level(logging.WARNING, logger="chatdebug.exporter"):
        assert exporter.export([run_span]) is SpanExportResult.FAILURE
        exporter.shutdown()
    assert "already shut down" in caplog.text
    assert "more than once" in caplog.text


def test_store_error_returns_failure(
    database_url: str, provider: TracerProvider, metrics: Metrics
) -> None:
    broken = open_store(database_url)
    broken.migrate()
    recorder = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    _record_run(provider, uuid.uuid4(), steps=1)
    spans = recorder.get_finished_spans()
    broken.close()  # every write now fails

    exporter = StoreSpanExporter(broken, metrics)
    assert exporter.export(spans) is SpanExportResult.FAILURE
    assert sample(metrics, "chatdebug_exporter_write_errors_total", kind="run_create") == 1
    assert sample(metrics, "chatdebug_exporter_events_dropped_total", reason="store_error") == 1
    # the held step and the run's end depended on the run row
    assert sample(metrics, "chatdebug_exporter_events_dropped_total", reason="run_dropped") == 3
