"""Two ``chatdebug serve`` processes on one PostgreSQL schema: they never purge at once
(the advisory lock), a tick that did not get the lock records nothing, and what both
report adds up to exactly the rows removed."""

from __future__ import annotations

import math
import time

import psycopg
import pytest

from chatdebug.store import open_store
from tests.ops.serve_process import ServeProcess, wait_for
from tests.ops.support import NOW, runs_aged
from tests.store.support import FakeClock, count

RUNS = 60
STEPS = 2
BATCH = 7


def _hold_purge_lock(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url)
    row = conn.execute(
        "SELECT pg_try_advisory_xact_lock(hashtext('chatdebug.purge'), "
        "hashtext(COALESCE(current_schema(), '')))"
    ).fetchone()
    assert row is not None and row[0]
    return conn


@pytest.mark.slow
def test_two_replicas_drain_a_backlog_together_and_their_totals_add_up(pg_url: str) -> None:
    clock = FakeClock(NOW)
    with open_store(pg_url, clock=clock) as store:
        store.set_retention_days(30)
        runs_aged(store, clock, days=45, count=RUNS, steps=STEPS)

    holder = _hold_purge_lock(pg_url)  # a third replica is purging right now
    args = ("--purge-interval", "1s", "--purge-batch-size", str(BATCH), "--no-finalize")
    with ServeProcess(pg_url, *args) as first, ServeProcess(pg_url, *args) as second:
        replicas = (first, second)
        # Both tick, neither gets the lock (each says so once): nothing is recorded.
        for serve in replicas:
            serve.wait_for(lambda s=serve: "holds the purge lock" in s.log(), what="a tick")
        # Two more intervals with the lock held: a chance to record wrongly, not a race.
        time.sleep(2.5)
        for serve in replicas:
            assert serve.iterations("true") == serve.iterations("false") == 0
            assert serve.removed("chat_debug_runs") == 0
            assert serve.value("chatdebug_purge_last_success_timestamp_seconds") == 0
            assert serve.value("chatdebug_purge_retention_seconds") == 0
        assert count(pg_url, "chat_debug_runs") == RUNS
        holder.rollback()
        holder.close()

        wait_for(lambda: count(pg_url, "chat_debug_runs") == 0, timeout=120, what="the drain")
        # Each replica's counters are final once its next tick finds nothing left.
        baseline = [s.iterations("true") for s in replicas]
        for serve, seen in zip(replicas, baseline, strict=True):
            wait_for(lambda s=serve, n=seen: s.iterations("true") > n, what="a later tick")
        runs = [s.removed("chat_debug_runs") for s in replicas]
        steps = [s.removed("chat_debug_steps") for s in replicas]
        successes = [s.iterations("true") for s in replicas]
        failures = [s.iterations("false") for s in replicas]

    assert sum(runs) == RUNS
    assert sum(steps) == RUNS * STEPS
    assert failures == [0, 0]
    # At most one batch per successful tick, however the ticks fell between the two.
    assert sum(successes) >= math.ceil(RUNS / BATCH)
    assert all(r <= BATCH * n for r, n in zip(runs, successes, strict=True))


@pytest.mark.slow
def test_two_processes_on_one_sqlite_file_purge_in_turn(sqlite_url: str) -> None:
    clock = FakeClock(NOW)
    with open_store(sqlite_url, clock=clock) as store:
        store.set_retention_days(30)
        runs_aged(store, clock, days=45, count=RUNS, steps=STEPS)
    args = ("--purge-interval", "1s", "--purge-batch-size", str(BATCH), "--no-finalize")
    with ServeProcess(sqlite_url, *args) as first, ServeProcess(sqlite_url, *args) as second:
        replicas = (first, second)
        wait_for(lambda: count(sqlite_url, "chat_debug_runs") == 0, timeout=120, what="the drain")
        baseline = [s.iterations("true") for s in replicas]
        for serve, seen in zip(replicas, baseline, strict=True):
            serve.wait_for(lambda s=serve, n=seen: s.iterations("true") > n, what="a later tick")
        runs = [s.removed("chat_debug_runs") for s in replicas]
        steps = [s.removed("chat_debug_steps") for s in replicas]
        failures = [s.iterations("false") for s in replicas]
    assert sum(runs) == RUNS
    assert sum(steps) == RUNS * STEPS
    assert failures == [0, 0]
