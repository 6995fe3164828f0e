"""PostgreSQL restarted (fast shutdown, then start) while a real application records."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

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
from ._pgcluster import PrivateCluster

RUNS = 500
DOWN_SECONDS = 5.0
STEPS = 3


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    cluster = PrivateCluster()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.mark.slow
def test_postgres_restart_mid_run_loses_nothing(
    cluster: PrivateCluster, start_app: StartApp, record_property: Callable[[str, object], None]
) -> None:
    app = start_app(cluster.url)
    app.send(cmd="runs", count=RUNS, steps=STEPS, threads=8, prefix="restart")
    app.wait_progress(100, timeout=120)
    down_at = time.time()
    cluster.stop()
    time.sleep(DOWN_SECONDS)  # a restart that takes a few seconds, as on a busy server
    cluster.start()
    up_at = time.time()

    outcome = RunsOutcome(app.wait_for("runs_done", timeout=180)["runs"])
    written_at = wait_until(
        lambda: completed_counts(cluster.url, "restart") == (RUNS, RUNS * STEPS), timeout=60
    )
    runs_after, steps_after = completed_counts(cluster.url, "restart")
    figure(
        record_property,
        "postgres_restart",
        runs=RUNS,
        steps=RUNS * STEPS,
        seconds_down=up_at - down_at,
        written_at_end=f"{runs_after}/{steps_after}",
        caller_exceptions=len(outcome.errors),
        slowest_call_during_outage_ms=outcome.slowest_call(down_at, up_at) * 1000,
        seconds_to_write_all_after_restart=since(up_at, written_at),
        seconds_to_write_all_after_last_run=since(max(up_at, outcome.last_end), written_at),
    )

    assert outcome.errors == []
    assert len(outcome.run_ids) == RUNS and outcome.calls == RUNS * STEPS
    assert written_at is not None, (
        "not everything was written within 60 s of the restart",
        status_counts(cluster.url, "restart"),
        app.log()[-1500:],
    )
    assert_all_written(outcome, STEPS, cluster.url, "restart")
    flushed = app.request("flushed", cmd="flush", timeout=10)
    report = app.request("metrics", cmd="metrics")
    assert flushed["ok"]
    assert sum(report["dropped"].values()) == 0, report["dropped"]
    assert report["min_reachable"] == 0  # the gauge showed the restart
