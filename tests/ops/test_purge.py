"""The purge tick on both backends: what it deletes, what it records, and when it records
nothing (another process holds the purge lock)."""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
import uuid

import psycopg
import pytest

from chatdebug.metrics import Metrics
from chatdebug.ops import PurgeOutcome, Purger, Ticker
from chatdebug.store import Store, open_store
from tests.ops.support import iterations, removed, runs_aged, sample
from tests.store.support import FakeClock, count, is_sqlite, raw
from tests.support import postgres_dsn, with_search_path


def test_a_tick_deletes_exactly_the_runs_older_than_the_retention(
    store: Store, clock: FakeClock, metrics: Metrics, database_url: str
) -> None:
    store.set_retention_days(7)
    old = runs_aged(store, clock, days=8, count=3, steps=2)
    # No finished_at guard: an abandoned in-progress run goes too.
    abandoned = runs_aged(store, clock, days=9, count=1, steps=1)
    kept = runs_aged(store, clock, days=6, count=2, steps=3)
    assert abandoned[0].finished_at is None

    tick = Purger(store, metrics).tick()

    assert tick.outcome is PurgeOutcome.PURGED
    assert (tick.runs_removed, tick.steps_removed) == (4, 7)
    assert {r.id for r in kept} == {
        r.id for r in (store.get_run(k.id) for k in kept) if r is not None
    }
    assert all(store.get_run(r.id) is None for r in [*old, *abandoned])
    assert count(database_url, "chat_debug_steps") == 6
    assert removed(metrics, "chat_debug_runs") == 4
    assert removed(metrics, "chat_debug_steps") == 7
    assert iterations(metrics, "true") == 1
    assert iterations(metrics, "false") == 0
    assert time.time() - sample(metrics, "chatdebug_purge_last_success_timestamp_seconds") < 60
    assert sample(metrics, "chatdebug_purge_retention_seconds") == 7 * 86400


def test_at_most_one_batch_per_tick_oldest_first(
    store: Store, clock: FakeClock, metrics: Metrics
) -> None:
    store.set_retention_days(1)
    oldest = runs_aged(store, clock, days=30, count=3, steps=1)
    newer = runs_aged(store, clock, days=20, count=3, steps=1)
    purger = Purger(store, metrics, batch_size=4)

    first = purger.tick()
    assert first.runs_removed == 4
    assert all(store.get_run(r.id) is None for r in oldest)
    assert sum(store.get_run(r.id) is not None for r in newer) == 2
    second = purger.tick()
    assert (second.runs_removed, second.steps_removed) == (2, 2)
    assert removed(metrics, "chat_debug_runs") == 6
    assert iterations(metrics, "true") == 2


def test_retention_zero_deletes_nothing_and_counts_as_success(
    store: Store, clock: FakeClock, metrics: Metrics
) -> None:
    store.set_retention_days(0)
    old = runs_aged(store, clock, days=90, count=2, steps=1)
    tick = Purger(store, metrics).tick()
    assert tick.outcome is PurgeOutcome.DISABLED
    assert all(store.get_run(r.id) is not None for r in old)
    assert iterations(metrics, "true") == 1
    assert removed(metrics, "chat_debug_runs") == 0
    assert sample(metrics, "chatdebug_purge_retention_seconds") == 0


def test_the_retention_is_read_again_every_tick(
    store: Store, clock: FakeClock, metrics: Metrics
) -> None:
    runs_aged(store, clock, days=10, count=1, steps=0)
    purger = Purger(store, metrics)
    assert purger.tick().runs_removed == 0  # default 30 days
    store.set_retention_days(5)
    assert purger.tick().runs_removed == 1


@pytest.mark.parametrize("stored", ["abc", "-1", "3651", ""])
def test_an_invalid_stored_retention_fails_the_tick(
    store: Store, clock: FakeClock, metrics: Metrics, database_url: str, stored: str
) -> None:
    old = runs_aged(store, clock, days=400, count=1, steps=1)
    store.set_retention_days(30)
    raw(
        database_url,
        "UPDATE chat_debug_settings SET value = %s WHERE key = 'retention_days'",
        (stored,),
    )
    purger = Purger(store, metrics)
    tick = purger.tick()
    assert tick.outcome is PurgeOutcome.FAILED
    assert tick.error is not None and "retention_days" in tick.error
    assert store.get_run(old[0].id) is not None
    assert iterations(metrics, "false") == 1
    assert iterations(metrics, "true") == 0
    assert removed(metrics, "chat_debug_runs") == 0
    # The loop goes on: fixed, the next tick purges.
    store.set_retention_days(30)
    assert purger.tick().runs_removed == 1


def test_a_tick_on_an_unreachable_store_fails_and_reports_it(
    sqlite_url: str, metrics: Metrics
) -> None:
    store = open_store(sqlite_url)
    store.close()
    reasons: list[str | None] = []
    tick = Purger(store, metrics, on_store_status=reasons.append).tick()
    assert tick.outcome is PurgeOutcome.FAILED
    assert iterations(metrics, "false") == 1


def _hold_purge_lock(url: str) -> psycopg.Connection:
    """A transaction in ``url``'s schema holding the purge lock (as another replica)."""
    conn = psycopg.connect(url)
    row = conn.execute(
        "SELECT pg_try_advisory_xact_lock(hashtext('chatdebug.purge'), "
        "hashtext(COALESCE(current_schema(), '')))"
    ).fetchone()
    assert row is not None and row[0]
    return conn


def test_a_tick_without_the_lock_records_no_metric_at_all(
    pg_url: str, clock: FakeClock, metrics: Metrics
) -> None:
    store = open_store(pg_url, clock=clock)
    try:
        store.set_retention_days(1)
        old = runs_aged(store, clock, days=5, count=2, steps=1)
        before = metrics.registry.collect()
        snapshot = {s.name + str(s.labels): s.value for m in before for s in m.samples}
        holder = _hold_purge_lock(pg_url)
        try:
            tick = Purger(store, metrics).tick()
        finally:
            holder.rollback()
            holder.close()
        assert tick.outcome is PurgeOutcome.SKIPPED
        assert all(store.get_run(r.id) is not None for r in old)
        assert iterations(metrics, "true") == iterations(metrics, "false") == 0
        assert removed(metrics, "chat_debug_runs") == 0
        after = {
            s.name + str(s.labels): s.value
            for m in metrics.registry.collect()
            for s in m.samples
            if not s.name.endswith("_created")
        }
        assert all(snapshot[k] == v for k, v in after.items() if k in snapshot)
        assert (
            metrics.registry.get_sample_value("chatdebug_purge_last_success_timestamp_seconds") == 0
        )
        # Released: the next tick purges.
        assert Purger(store, metrics).tick().runs_removed == 2
    finally:
        store.close()


def test_the_purge_lock_is_per_schema(pg_url: str, clock: FakeClock, metrics: Metrics) -> None:
    # Another schema of the same database, as a concurrent test run would have.
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        store = open_store(with_search_path(postgres_dsn(), schema), clock=clock)
        try:
            store.set_retention_days(1)
            runs_aged(store, clock, days=5, count=1, steps=1)
            holder = _hold_purge_lock(pg_url)
            try:
                assert Purger(store, metrics).tick().runs_removed == 1
            finally:
                holder.rollback()
                holder.close()
        finally:
            store.close()
    finally:
        with psycopg.connect(postgres_dsn(), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.slow
def test_sqlite_purges_wait_for_each_other(
    sqlite_url: str, clock: FakeClock, metrics: Metrics
) -> None:
    """A purge never runs while another connection holds the file's write lock: it
    waits for it (BEGIN IMMEDIATE), then deletes what is still there."""
    assert is_sqlite(sqlite_url)
    store = open_store(sqlite_url, clock=clock)
    try:
        store.set_retention_days(1)
        runs_aged(store, clock, days=5, count=3, steps=1)
        other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute(
            "DELETE FROM chat_debug_runs WHERE rowid IN (SELECT min(rowid) FROM chat_debug_runs)"
        )
        done = threading.Event()
        result: list[int] = []

        def purge() -> None:
            result.append(Purger(store, metrics).tick().runs_removed)
            done.set()

        thread = threading.Thread(target=purge)
        thread.start()
        assert not done.wait(0.5)  # blocked behind the other writer
        other.execute("COMMIT")
        other.close()
        thread.join(10)
        assert result == [2]  # the other writer's deletion was not counted twice
    finally:
        store.close()


@pytest.mark.slow
def test_the_ticker_ticks_at_once_then_on_its_interval_and_stops(
    store: Store, metrics: Metrics
) -> None:
    ticks: list[float] = []
    purger = Purger(store, metrics)

    def tick() -> None:
        ticks.append(time.monotonic())
        purger.tick()

    ticker = Ticker("purge", 0.2, tick)
    ticker.start()
    deadline = time.monotonic() + 10
    while len(ticks) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ticker.stop(timeout=5)
    assert len(ticks) >= 3
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(ticks))
    stopped_at = len(ticks)
    time.sleep(0.3)
    assert len(ticks) == stopped_at
    assert iterations(metrics, "true") == stopped_at


def test_the_first_tick_does_not_wait_and_stop_does_not_wait_for_the_interval(
    store: Store, metrics: Metrics
) -> None:
    purger = Purger(store, metrics)
    ticker = Ticker("purge", 3600, purger.tick)
    ticker.start()
    deadline = time.monotonic() + 10
    while iterations(metrics, "true") < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert iterations(metrics, "true") == 1
    assert ticker.stop(timeout=10)  # an hour-long wait is cut short
