"""The background writer under pressure: full queue, unavailable store, shutdown, fork."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
import warnings
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from opentelemetry.sdk.trace import TracerProvider

from chatdebug.exporter import StoreSpanProcessor
from chatdebug.metrics import Metrics
from chatdebug.store import PostgresStore, Store, open_store
from tests.exporter.support import (
    finished_step_attributes,
    sample,
    start_run,
    start_step,
    wait_for,
    writes_blocked,
)
from tests.fakes.tcp_proxy import TCPProxy
from tests.support import postgres_dsn, require_postgres


def _dropped(metrics: Metrics, reason: str) -> float:
    return sample(metrics, "chatdebug_exporter_events_dropped_total", reason=reason)


def test_full_queue_drops_new_events_and_counts_them(
    store: Store, database_url: str, provider: TracerProvider, metrics: Metrics
) -> None:
    processor = StoreSpanProcessor(
        store, metrics=metrics, max_queue_size=3, max_batch_size=1, schedule_delay=0
    )
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    first = uuid.uuid4()
    with writes_blocked(database_url):
        head = start_run(tracer, first)
        # The writer has taken the first event and waits on the lock; the queue is empty.
        wait_for(lambda: sample(metrics, "chatdebug_exporter_queue_depth") == 0, what="pickup")
        queued = [uuid.uuid4() for _ in range(3)]
        dropped = [uuid.uuid4() for _ in range(4)]
        spans = [start_run(tracer, run_id) for run_id in queued + dropped]
        assert sample(metrics, "chatdebug_exporter_queue_depth") == 3
        assert _dropped(metrics, "queue_full") == 4
        for span in spans:
            span.end()
        # The queued runs' ends found the queue still full; the dropped runs' ends are
        # counted as belonging to a run that was not recorded.
        assert _dropped(metrics, "queue_full") == 4 + 3
        assert _dropped(metrics, "run_dropped") == 4
    assert processor.force_flush(30_000)  # the queue drains once the lock is released
    head.end()
    assert processor.force_flush(30_000)

    head_row = store.get_run(first)
    assert head_row is not None and head_row.status == "completed"
    for run_id in queued:
        row = store.get_run(run_id)
        assert row is not None and row.status == "in_progress"
    for run_id in dropped:
        assert store.get_run(run_id) is None
    assert processor.health.dropped == {"queue_full": 7, "run_dropped": 4}


def test_shutdown_flushes_then_drops_later_events(
    store: Store, provider: TracerProvider, metrics: Metrics
) -> None:
    processor = StoreSpanProcessor(store, metrics=metrics, schedule_delay=30)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    run_id = uuid.uuid4()
    start_run(tracer, run_id).end()
    processor.shutdown()  # flushes although the batch delay is long
    run = store.get_run(run_id)
    assert run is not None and run.status == "completed"

    late = uuid.uuid4()
    start_run(tracer, late).end()
    processor.shutdown()  # idempotent
    assert store.get_run(late) is None
    assert _dropped(metrics, "shutdown") == 2
    assert processor.force_flush(1_000)


@pytest.fixture
def proxied_pg(pg_url: str) -> Iterator[tuple[TCPProxy, str]]:
    require_postgres()
    target = urlsplit(postgres_dsn())
    with TCPProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        yield proxy, proxy.rewrite_url(pg_url)


@pytest.mark.slow
def test_store_outage_loses_nothing(
    proxied_pg: tuple[TCPProxy, str], provider: TracerProvider, metrics: Metrics
) -> None:
    proxy, url = proxied_pg
    # A short pool timeout makes each failed attempt during the outage quick.
    store = PostgresStore(url, timeout=1.0)
    try:
        processor = StoreSpanProcessor(store, metrics=metrics)
        provider.add_span_processor(processor)
        tracer = provider.get_tracer("test")
        before = uuid.uuid4()
        start_run(tracer, before).end()
        assert processor.force_flush(10_000)

        proxy.stop()
        run_ids = [uuid.uuid4() for _ in range(3)]
        for run_id in run_ids:  # the application goes on while the database is away
            run = start_run(tracer, run_id)
            for number in (1, 2):
                step, _ = start_step(tracer, run, run_id, number)
                step.set_attributes(finished_step_attributes())
                step.end()
            run.end()
        assert not processor.force_flush(300)  # nothing can be written now
        wait_for(
            lambda: sum(
                sample(metrics, "chatdebug_exporter_write_errors_total", kind=k)
                for k in ("run_create", "step_create", "step_update", "run_finish")
            ),
            timeout=20,
            what="a failed write",
        )
        proxy.start()
        assert processor.force_flush(30_000)

        for run_id in run_ids:
            run_row = store.get_run(run_id)
            assert run_row is not None and run_row.status == "completed"
            assert run_row.summary["step_count"] == 2
            assert run_row.summary["total_input_tokens"] == 20
            assert [s.status for s in store.list_steps(run_id)] == ["completed", "completed"]
        assert sum(processor.health.dropped.values()) == 0
        assert sample(metrics, "chatdebug_exporter_events_written_total", kind="run_create") == 4
    finally:
        store.close()


@pytest.mark.slow
def test_forked_child_records_its_own_runs_only(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    store.migrate()
    provider = TracerProvider(shutdown_on_exit=False)
    metrics = Metrics()
    # A long batch delay keeps the parent's events queued across the fork.
    processor = StoreSpanProcessor(store, metrics=metrics, schedule_delay=60)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    parent_run, child_run = uuid.uuid4(), uuid.uuid4()
    start_run(tracer, parent_run).end()
    assert sample(metrics, "chatdebug_exporter_queue_depth") == 2

    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking a process with threads: that is the point here.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # child
        report: dict[str, object] = {}
        try:
            report["depth_after_fork"] = sample(metrics, "chatdebug_exporter_queue_depth")
            start_run(tracer, child_run).end()
            report["flushed"] = processor.force_flush(10_000)
            report["parent_run_written"] = store.get_run(parent_run) is not None
            child = store.get_run(child_run)
            report["child_status"] = child.status if child else None
            report["run_creates"] = sample(
                metrics, "chatdebug_exporter_events_written_total", kind="run_create"
            )
            processor.shutdown()
        except BaseException as exc:
            report["error"] = repr(exc)
        finally:
            os.write(write_end, json.dumps(report).encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = json.loads(pipe.read() or "{}")
    os.waitpid(pid, 0)
    try:
        assert report == {
            "depth_after_fork": 0,
            "flushed": True,
            "parent_run_written": False,
            "child_status": "completed",
            "run_creates": 1,
        }
        assert store.get_run(parent_run) is None  # still queued in the parent
        assert processor.force_flush(10_000)
        parent = store.get_run(parent_run)
        assert parent is not None and parent.status == "completed"
        assert sample(metrics, "chatdebug_exporter_events_written_total", kind="run_create") == 1
    finally:
        provider.shutdown()
        store.close()


@pytest.mark.slow
def test_queued_events_are_flushed_at_exit(sqlite_url: str) -> None:
    run_id = uuid.uuid4()
    script = textwrap.dedent(
        f"""
        import uuid
        from opentelemetry.sdk.trace import TracerProvider
        from chatdebug.exporter import StoreSpanProcessor
        from chatdebug.store import open_store
        from tests.exporter.support import start_run

        provider = TracerProvider(shutdown_on_exit=False)  # only our own atexit hook
        provider.add_span_processor(
            StoreSpanProcessor(open_store({sqlite_url!r}), schedule_delay=60)
        )
        start_run(provider.get_tracer("t"), uuid.UUID({str(run_id)!r})).end()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    store = open_store(sqlite_url)
    try:
        run = store.get_run(run_id)
    finally:
        store.close()
    assert run is not None and run.status == "completed"
