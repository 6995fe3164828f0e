"""SQLite locked by another process holding an exclusive transaction for 10 s."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ._driver import (
    RunsOutcome,
    SQLiteLock,
    StartApp,
    assert_all_written,
    completed_counts,
    figure,
    since,
    wait_until,
)

LOCK_SECONDS = 10.0
RUNS = 300
STEPS = 3


@pytest.mark.slow
def test_sqlite_locked_for_10_seconds_loses_nothing_and_never_blocks_the_caller(
    tmp_path: Path, start_app: StartApp, record_property: Callable[[str, object], None]
) -> None:
    url = f"sqlite:///{tmp_path / 'chatdebug.db'}"
    app = start_app(url)
    lock = SQLiteLock(url.removeprefix("sqlite:///"))
    try:
        app.send(cmd="runs", count=RUNS, steps=STEPS, threads=4, prefix="locked")
        outcome = RunsOutcome(app.wait_for("runs_done", timeout=120)["runs"])
        finished_at = time.time()
        # Held for its 10 s: the runs above all happened inside it.
        time.sleep(max(0.0, lock.locked_at + LOCK_SECONDS - time.time()))
    finally:
        released_at = lock.release()
    written_at = wait_until(
        lambda: completed_counts(url, "locked") == (RUNS, RUNS * STEPS), timeout=60
    )
    report = app.request("metrics", cmd="metrics")
    figure(
        record_property,
        "sqlite_locked_10s",
        runs=RUNS,
        steps=RUNS * STEPS,
        runs_finished_before_unlock=finished_at < released_at,
        caller_exceptions=len(outcome.errors),
        slowest_call_while_locked_ms=outcome.slowest_call(lock.locked_at, released_at) * 1000,
        seconds_to_write_all_after_unlock=since(released_at, written_at),
        oldest_queued_event_age_s=report["max_oldest_age"],
        store_reachable_min=report["min_reachable"],
    )
    assert outcome.errors == []
    assert finished_at < released_at  # the application never waited for the lock
    assert written_at is not None, "not everything was written within 60 s of the unlock"
    assert_all_written(outcome, STEPS, url, "locked")
    assert sum(report["dropped"].values()) == 0, report["dropped"]
    # The exporter's metrics showed the backlog while the lock was held (whether a
    # locked file also counts as unreachable depends on how long a write waits on it).
    assert report["max_oldest_age"] >= LOCK_SECONDS / 2
