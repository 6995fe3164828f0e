"""PostgreSQL cut for 30 s, through a TCP proxy, under 1,000 runs of a real application."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.fakes.tcp_proxy import TCPProxy

from ._driver import (
    RunsOutcome,
    StartApp,
    assert_all_written,
    completed_counts,
    figure,
    since,
    status_counts,
    wait_until,
)

OUTAGE_SECONDS = 30.0
RUNS = 1_000
STEPS = 3


@pytest.mark.slow
def test_postgres_cut_for_30_seconds_loses_nothing(
    pg_url: str,
    pg_proxy: tuple[TCPProxy, str],
    start_app: StartApp,
    record_property: Callable[[str, object], None],
) -> None:
    proxy, proxied_url = pg_proxy
    # 1,000 runs of 3 steps are 8,000 events: within the default queue of 10,000.
    app = start_app(proxied_url)
    app.send(cmd="runs", count=RUNS, steps=STEPS, threads=8, prefix="outage")
    app.wait_progress(100, timeout=120)  # written as they happen; then the cut
    cut_at = time.time()
    proxy.stop()
    time.sleep(OUTAGE_SECONDS)  # the outage itself: its length is the scenario
    during = app.request("metrics", cmd="metrics")
    runs_before, steps_before = completed_counts(pg_url, "outage")
    restored_at = time.time()
    proxy.start()
    resumed_at = wait_until(
        lambda: completed_counts(pg_url, "outage") != (runs_before, steps_before), timeout=60
    )
    outcome = RunsOutcome(app.wait_for("runs_done", timeout=180)["runs"])
    written_at = wait_until(
        lambda: completed_counts(pg_url, "outage") == (RUNS, RUNS * STEPS), timeout=60
    )
    runs_after, steps_after = completed_counts(pg_url, "outage")
    figure(
        record_property,
        "postgres_cut_30s",
        runs=RUNS,
        steps=RUNS * STEPS,
        written_when_restored=f"{runs_before}/{steps_before}",
        written_at_end=f"{runs_after}/{steps_after}",
        caller_exceptions=len(outcome.errors),
        slowest_call_during_outage_ms=outcome.slowest_call(cut_at, restored_at) * 1000,
        seconds_to_first_write_after_recovery=since(restored_at, resumed_at),
        seconds_to_write_all_after_recovery=since(restored_at, written_at),
        seconds_to_write_all_after_last_run=since(max(restored_at, outcome.last_end), written_at),
        oldest_queued_event_age_s=during["max_oldest_age"],
        store_reachable_min=during["min_reachable"],
    )

    assert outcome.errors == []
    assert len(outcome.run_ids) == RUNS and outcome.calls == RUNS * STEPS
    assert runs_before < RUNS  # the outage really held writes back
    assert written_at is not None, (
        "not everything was written within 60 s of recovery",
        status_counts(pg_url, "outage"),
    )
    assert_all_written(outcome, STEPS, pg_url, "outage")
    flushed = app.request("flushed", cmd="flush", timeout=10)
    report = app.request("metrics", cmd="metrics")
    assert flushed["ok"]
    assert sum(report["dropped"].values()) == 0, report["dropped"]
    # The exporter's metrics showed the outage while it lasted.
    assert during["min_reachable"] == 0
    assert during["max_oldest_age"] >= OUTAGE_SECONDS / 2
    assert report["queue_depth"] == 0
