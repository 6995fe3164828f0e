"""Events written in store batches: one transaction per batch, every event accounted
for once, however often an unavailable store made the batch be retried."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chatdebug.exporter import StoreSpanExporter
from chatdebug.exporter._events import (
    CreateRun,
    CreateStep,
    Event,
    FinishRun,
    TouchRun,
    TouchStep,
    UpdateStep,
    apply_event,
)
from chatdebug.exporter._health import ExporterHealth
from chatdebug.exporter._writer import BackgroundWriter
from chatdebug.metrics import Metrics
from chatdebug.store import (
    NewRun,
    NewStep,
    PostgresStore,
    RunFinalized,
    RunUpdate,
    SQLiteStore,
    StepUpdate,
    Store,
    open_store,
)
from tests.exporter.support import (
    finished_step_attributes,
    sample,
    start_run,
    start_step,
    wait_for,
    writes_blocked,
)
from tests.fakes.tcp_proxy import TCPProxy
from tests.store.support import T0
from tests.support import postgres_dsn, require_postgres


def _writer(store: Store, metrics: Metrics) -> BackgroundWriter:
    # Nothing is written until a flush asks for it: every event put before goes into
    # one batch.
    return BackgroundWriter(store, health=ExporterHealth(metrics), schedule_delay=60)


def _write_errors(metrics: Metrics) -> float:
    kinds = ("run_create", "run_finish", "run_touch", "step_create", "step_update", "step_touch")
    return sum(
        sample(metrics, "chatdebug_exporter_write_errors_total", kind=kind) for kind in kinds
    )


def _written(metrics: Metrics, kind: str) -> float:
    return sample(metrics, "chatdebug_exporter_events_written_total", kind=kind)


def _turn(chat_id: str = "chat-1") -> tuple[uuid.UUID, list[Event]]:
    """A run with two completed steps, as events."""
    run_id = uuid.uuid4()
    events: list[Event] = [CreateRun(NewRun(chat_id=chat_id, id=run_id))]
    for number in (1, 2):
        step_id = uuid.uuid4()
        events.append(
            CreateStep(
                NewStep(
                    run_id=run_id,
                    chat_id=chat_id,
                    operation="generate",
                    step_number=number,
                    id=step_id,
                )
            )
        )
        events.append(TouchStep(step_id, run_id, chat_id))
        events.append(
            UpdateStep(
                StepUpdate(
                    id=step_id,
                    chat_id=chat_id,
                    status="completed",
                    usage={"input_tokens": 10, "output_tokens": 5},
                ),
                run_id=run_id,
            )
        )
    events.append(TouchRun(run_id, chat_id))
    events.append(FinishRun(RunUpdate(id=run_id, chat_id=chat_id, status="completed")))
    return run_id, events


def _orphan_step(chat_id: str = "chat-1") -> list[Event]:
    """A step whose run was never recorded: both events are dropped as run_not_found."""
    run_id, step_id = uuid.uuid4(), uuid.uuid4()
    return [
        CreateStep(NewStep(run_id=run_id, chat_id=chat_id, operation="generate", id=step_id)),
        TouchStep(step_id, run_id, chat_id),
        UpdateStep(StepUpdate(id=step_id, chat_id=chat_id, status="completed"), run_id=run_id),
    ]


def _assert_turn_written(store: Store, run_id: uuid.UUID) -> None:
    run = store.get_run(run_id)
    assert run is not None and run.status == "completed"
    assert run.summary["step_count"] == 2
    assert run.summary["total_input_tokens"] == 20
    assert [s.status for s in store.list_steps(run_id)] == ["completed", "completed"]


def test_rejected_events_do_not_stop_the_rest_of_their_batch(
    store: Store, metrics: Metrics
) -> None:
    taken = store.create_run(NewRun(chat_id="chat-other"))
    finished, finished_events = _turn()
    writer = _writer(store, metrics)
    # The run id exists in another chat: the run is rejected and its events follow it.
    clash: list[Event] = [
        CreateRun(NewRun(chat_id="chat-1", id=taken.id)),
        CreateStep(NewStep(run_id=taken.id, chat_id="chat-1", operation="x")),
        TouchRun(taken.id, "chat-1"),
        FinishRun(RunUpdate(id=taken.id, chat_id="chat-1", status="completed")),
    ]
    late_step = CreateStep(NewStep(run_id=finished, chat_id="chat-1", operation="late"))
    ok, ok_events = _turn()
    for event in [*finished_events, late_step, *clash, *_orphan_step(), *ok_events]:
        assert writer.put(event)
    assert writer.flush(30)

    _assert_turn_written(store, finished)
    _assert_turn_written(store, ok)
    assert len(store.list_steps(finished)) == 2  # the late step found its run finished
    assert store.list_steps(taken.id) == []
    assert writer._health.dropped == {
        "run_finalized": 1,
        "store_error": 1,
        "run_dropped": 2,  # the clashing run's step and end (its touch is silent)
        "run_not_found": 2,  # the orphan step's create and update
    }
    assert _written(metrics, "run_create") == 2
    assert _written(metrics, "step_update") == 4
    assert _written(metrics, "run_finish") == 2
    assert _write_errors(metrics) == 1
    writer.shutdown(5)


@pytest.mark.slow
def test_sqlite_outage_retries_the_batch_and_counts_each_event_once(
    sqlite_url: str, metrics: Metrics
) -> None:
    store = SQLiteStore(sqlite_url.removeprefix("sqlite:///"), busy_timeout=0.02)
    writer = _writer(store, metrics)
    try:
        run_id, events = _turn()
        with writes_blocked(sqlite_url):
            for event in [*events, *_orphan_step()]:
                assert writer.put(event)
            assert not writer.flush(0.3)  # the writer has the batch and cannot write it
            wait_for(lambda: _write_errors(metrics) >= 3, what="retried batches")
        assert writer.flush(30)
        _assert_turn_written(store, run_id)
        assert writer._health.dropped == {"run_not_found": 2}
        for kind, count in [("run_create", 1), ("step_create", 2), ("run_finish", 1)]:
            assert _written(metrics, kind) == count
    finally:
        writer.shutdown(5)
        store.close()


@pytest.fixture
def proxied_pg(pg_url: str) -> Iterator[tuple[TCPProxy, str]]:
    require_postgres()
    open_store(pg_url).close()  # the schema, before the proxy goes anywhere
    target = urlsplit(postgres_dsn())
    with TCPProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        yield proxy, proxy.rewrite_url(pg_url)


@pytest.mark.slow
def test_postgres_outage_retries_the_batch_and_counts_each_event_once(
    proxied_pg: tuple[TCPProxy, str], metrics: Metrics
) -> None:
    proxy, url = proxied_pg
    store = PostgresStore(url, timeout=0.5)
    writer = _writer(store, metrics)
    try:
        run_id, events = _turn()
        for event in [*events, *_orphan_step()]:
            assert writer.put(event)
        proxy.stop()
        assert not writer.flush(0.3)
        wait_for(lambda: _write_errors(metrics) >= 2, timeout=20, what="retried batches")
        proxy.start()
        assert writer.flush(30)
        _assert_turn_written(store, run_id)
        assert writer._health.dropped == {"run_not_found": 2}
        for kind, count in [("run_create", 1), ("step_create", 2), ("run_finish", 1)]:
            assert _written(metrics, kind) == count
    finally:
        writer.shutdown(5)
        store.close()


@pytest.mark.slow
def test_shutdown_during_an_outage_drops_the_batch_once(sqlite_url: str, metrics: Metrics) -> None:
    store = SQLiteStore(sqlite_url.removeprefix("sqlite:///"), busy_timeout=0.02)
    writer = _writer(store, metrics)
    try:
        _, events = _turn()
        with writes_blocked(sqlite_url):
            for event in events:
                assert writer.put(event)
            assert not writer.flush(0.2)
            wait_for(lambda: _write_errors(metrics) >= 2, what="retried batches")
            assert not writer.shutdown(0.1)
        # Heartbeats are dropped like any other event here: the writer is gone.
        assert writer._health.dropped == {"shutdown": len(events)}
        assert store.get_run(events[0].run_id) is None
    finally:
        store.close()


def test_a_closed_store_drops_each_event_once(database_url: str, metrics: Metrics) -> None:
    store = open_store(database_url)
    store.close()
    writer = _writer(store, metrics)
    _, events = _turn()
    for event in events:
        assert writer.put(event)
    assert writer.flush(30)
    # The run failed; everything else of it followed (its heartbeats silently).
    assert writer._health.dropped == {"store_error": 1, "run_dropped": 5}
    assert _write_errors(metrics) == 1
    writer.shutdown(5)


def test_an_export_call_of_many_spans_is_written_and_counted_once(
    store: Store, metrics: Metrics
) -> None:
    recorder = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    tracer = provider.get_tracer("test")
    run_ids = [uuid.uuid4() for _ in range(3)]
    for run_id in run_ids:
        run = start_run(tracer, run_id)
        for number in (1, 2):
            step, _ = start_step(tracer, run, run_id, number)
            step.set_attributes(finished_step_attributes())
            step.end()
        run.end()
    provider.shutdown()

    exporter = StoreSpanExporter(store, metrics)
    assert exporter.export(recorder.get_finished_spans()) is SpanExportResult.SUCCESS
    for run_id in run_ids:
        run = store.get_run(run_id)
        assert run is not None and run.summary["step_count"] == 2
    assert _written(metrics, "step_create") == 6
    assert _written(metrics, "run_finish") == 3
    labels = {"provider": "openai", "model": "gpt-4o", "operation": "chat", "error_type": ""}
    count = metrics.registry.get_sample_value(
        "gen_ai_client_operation_duration_seconds_count", labels
    )
    assert count == 6
    assert sum(exporter.health.dropped.values()) == 0


def test_export_that_cannot_commit_is_counted_write_by_write(
    sqlite_url: str, metrics: Metrics
) -> None:
    store = SQLiteStore(sqlite_url.removeprefix("sqlite:///"), busy_timeout=0.02)
    recorder = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    tracer = provider.get_tracer("test")
    run_id = uuid.uuid4()
    run = start_run(tracer, run_id)
    step, _ = start_step(tracer, run, run_id, 1)
    step.set_attributes(finished_step_attributes())
    step.end()
    run.end()
    provider.shutdown()
    exporter = StoreSpanExporter(store, metrics)
    try:
        with writes_blocked(sqlite_url):
            result = exporter.export(recorder.get_finished_spans())
        assert result is SpanExportResult.FAILURE
        # As without batches: the run failed, its held step (two events) and its end
        # depended on it.
        assert exporter.health.dropped == {"store_error": 1, "run_dropped": 3}
        assert _write_errors(metrics) == 1
        assert store.get_run(run_id) is None
        # Its GenAI metrics were recorded once.
        labels = {"provider": "openai", "model": "gpt-4o", "operation": "chat", "error_type": ""}
        count = metrics.registry.get_sample_value(
            "gen_ai_client_operation_duration_seconds_count", labels
        )
        assert count == 1
    finally:
        store.close()


def test_reapplying_a_committed_batch_changes_nothing(store: Store) -> None:
    """What makes retrying a whole batch safe, even when its commit may have happened:
    every event is idempotent (creates by id, overwrites, a summary recomputed)."""
    run_id, events = _turn()
    auto_id = uuid.uuid4()
    events[-1:-1] = [
        CreateStep(NewStep(run_id=run_id, chat_id="chat-1", operation="tool", id=auto_id)),
        UpdateStep(
            StepUpdate(id=auto_id, chat_id="chat-1", status="error", error={"message": "x"}),
            run_id=run_id,
        ),
    ]
    late = CreateStep(NewStep(run_id=run_id, chat_id="chat-1", operation="late"))

    def state() -> tuple[Any, ...]:
        run = store.get_run(run_id)
        assert run is not None
        steps = [replace(s, updated_at=T0) for s in store.list_steps(run_id)]
        return replace(run, updated_at=T0), steps

    outcomes: list[list[str]] = []
    snapshots = []
    for _ in range(2):
        results = []
        with store.batch():
            for event in [*events, late]:
                try:
                    apply_event(store, event)
                    results.append("written")
                except RunFinalized:
                    results.append("run_finalized")
        outcomes.append(results)
        snapshots.append(state())
    assert outcomes[0] == outcomes[1] == ["written"] * len(events) + ["run_finalized"]
    assert snapshots[0] == snapshots[1]
    run, steps = snapshots[0]
    assert run.summary["step_count"] == 3 and run.summary["has_error"] is True
    assert [s.step_number for s in steps] == [1, 2, 3]
