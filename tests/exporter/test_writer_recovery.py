"""The writer through a PostgreSQL outage: the gauges show it while it lasts, and the
queued writes go in once the server is back, without waiting on the pool's backoff."""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlsplit

import pytest
from opentelemetry.sdk.trace import TracerProvider

from chatdebug.exporter import StoreSpanProcessor
from chatdebug.metrics import Metrics
from chatdebug.store import PostgresStore
from tests.exporter.support import sample, start_run, start_step, wait_for
from tests.fakes.tcp_proxy import TCPProxy

pytestmark = pytest.mark.slow  # a PostgreSQL outage through a TCP proxy, with waits


def test_outage_is_visible_and_queued_writes_resume_when_the_server_returns(
    pg_url: str, metrics: Metrics
) -> None:
    target = urlsplit(pg_url)
    with TCPProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        store = PostgresStore(proxy.rewrite_url(pg_url), connect_timeout=2)
        provider = TracerProvider()
        processor = StoreSpanProcessor(
            store, metrics=metrics, max_queue_size=500, schedule_delay=0.01
        )
        provider.add_span_processor(processor)
        tracer = provider.get_tracer("test")
        try:
            assert sample(metrics, "chatdebug_exporter_queue_capacity") == 500
            start_run(tracer, uuid.uuid4()).end()
            assert processor.force_flush(30_000)
            assert sample(metrics, "chatdebug_store_reachable") == 1

            proxy.stop()
            during = [uuid.uuid4() for _ in range(20)]
            for run_id in during:
                run = start_run(tracer, run_id)
                step, _ = start_step(tracer, run, run_id, 1)
                step.end()
                run.end()
            wait_for(
                lambda: sample(metrics, "chatdebug_store_reachable") == 0,
                timeout=30,
                what="the outage on the reachability gauge",
            )
            # The queued events keep ageing while the store is away.
            wait_for(
                lambda: sample(metrics, "chatdebug_exporter_oldest_event_age_seconds") > 1,
                timeout=30,
                what="the oldest queued event's age",
            )
            assert not processor.force_flush(100)
            time.sleep(3)  # long enough for the pool's own reconnect backoff to grow

            proxy.start()
            assert processor.force_flush(60_000)
            assert sample(metrics, "chatdebug_store_reachable") == 1
            assert sample(metrics, "chatdebug_exporter_oldest_event_age_seconds") == 0
            assert sample(metrics, "chatdebug_exporter_queue_depth") == 0
            assert processor.health.dropped == {}
            for run_id in during:
                row = store.get_run(run_id)
                assert row is not None and row.status == "completed"
                assert row.summary["step_count"] == 1
        finally:
            provider.shutdown()
            store.close()
    assert sample(metrics, "chatdebug_exporter_queue_capacity") == 0
