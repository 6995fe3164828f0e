"""PostgreSQL cut for 120 s under 50 calls a second with a write queue of 2,000 events:
the spill journal keeps everything, and the same when the application is restarted in
the middle of the outage."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fakes.tcp_proxy import TCPProxy

from ._driver import (
    RunsOutcome,
    StartApp,
    assert_all_written,
    completed_counts,
    connect,
    figure,
    since,
    status_counts,
    wait_until,
)

OUTAGE_SECONDS = 120.0
CALLS_PER_SECOND = 50.0
STEPS = 2  # a run is 2 + 2 × 2 = 6 events: 150 events a second
QUEUE_SIZE = 2_000  # 13 s of traffic: without the journal, most of the outage is lost


def _runs_for(seconds: float) -> int:
    return int(seconds * CALLS_PER_SECOND / STEPS)


@pytest.mark.slow
def test_a_120_second_outage_goes_through_the_journal(
    pg_url: str,
    pg_proxy: tuple[TCPProxy, str],
    start_app: StartApp,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    proxy, proxied_url = pg_proxy
    spill = tmp_path / "spill.db"
    app = start_app(proxied_url, configure={"queue_size": QUEUE_SIZE, "spill_path": str(spill)})
    # Traffic from 5 s before the cut to 10 s after the database is back.
    runs = _runs_for(5 + OUTAGE_SECONDS + 10)
    app.send(cmd="runs", count=runs, steps=STEPS, threads=8, prefix="spill", rate=CALLS_PER_SECOND)
    app.wait_progress(100, timeout=60)
    proxy.stop()
    cut_at = time.time()
    time.sleep(OUTAGE_SECONDS)  # the outage itself: its length is the scenario
    during = app.request("metrics", cmd="metrics")
    restored_at = time.time()
    proxy.start()
    outcome = RunsOutcome(app.wait_for("runs_done", timeout=120)["runs"])
    # What was recorded before the return is the journal's backlog.
    backlog = {r["run_id"] for r in outcome.runs if r["run_block"][1] < restored_at}

    def backlog_written() -> bool:
        runs_now = status_counts(pg_url, "spill")["runs"].get("completed", 0)
        return runs_now >= len(backlog) and _all_completed(pg_url, backlog)

    backlog_at = wait_until(backlog_written, timeout=120)
    written_at = wait_until(
        lambda: completed_counts(pg_url, "spill") == (runs, runs * STEPS), timeout=120
    )
    flushed = app.request("flushed", cmd="flush", timeout=30)
    report = app.request("metrics", cmd="metrics")
    figure(
        record_property,
        "postgres_cut_120s_journal",
        runs=runs,
        calls_per_second=CALLS_PER_SECOND,
        queue_size=QUEUE_SIZE,
        events_spilled=report["spilled"],
        events_replayed=report["replayed"],
        journal_bytes_at_most=during["max_journal_bytes"],
        dropped=sum(report["dropped"].values()),
        caller_exceptions=len(outcome.errors),
        slowest_call_during_outage_ms=outcome.slowest_call(cut_at, restored_at) * 1000,
        seconds_to_write_the_backlog=since(restored_at, backlog_at),
        seconds_to_write_all_after_last_run=since(max(restored_at, outcome.last_end), written_at),
        replay_lag_during_outage_s=during["replay_lag"],
    )

    assert outcome.errors == []
    assert len(outcome.run_ids) == runs
    assert backlog_at is not None and written_at is not None, status_counts(pg_url, "spill")
    assert_all_written(outcome, STEPS, pg_url, "spill")
    assert flushed["ok"]
    assert sum(report["dropped"].values()) == 0, report["dropped"]
    # The outage went through the journal, which is empty again.
    assert during["min_reachable"] == 0
    assert during["journal_events"] > QUEUE_SIZE
    assert report["replayed"] >= during["journal_events"]
    assert report["journal_events"] == 0 and report["journal_bytes"] == 0
    assert report["queue_depth"] == 0


def _all_completed(url: str, run_ids: set[str]) -> bool:
    from ._driver import stored_rows

    runs, _ = stored_rows(url, "spill")
    return all(runs.get(run_id) == "completed" for run_id in run_ids)


@pytest.mark.slow
def test_an_application_restarted_during_an_outage_loses_nothing(
    pg_url: str,
    pg_proxy: tuple[TCPProxy, str],
    start_app: StartApp,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    proxy, proxied_url = pg_proxy
    options = {"queue_size": QUEUE_SIZE, "spill_path": str(tmp_path / "spill.db")}
    first = start_app(proxied_url, configure=options)
    proxy.stop()
    cut_at = time.monotonic()
    # The first process records through half of the outage, then exits (a deploy): what
    # it could not write stays in its journal.
    before = _runs_for(OUTAGE_SECONDS / 2)
    first.send(cmd="runs", count=before, steps=STEPS, threads=8, prefix="restart-a",
               rate=CALLS_PER_SECOND)  # fmt: skip
    first_outcome = RunsOutcome(first.wait_for("runs_done", timeout=OUTAGE_SECONDS)["runs"])
    first.send(cmd="exit")
    exited = first.received("exited", timeout=60)
    assert first.proc.wait(timeout=60) == 0
    # The next one starts while the database is still down, with the same path, and
    # records through the rest of the outage.
    second = start_app(proxied_url, migrated=False, configure=options)
    left = OUTAGE_SECONDS - (time.monotonic() - cut_at)
    after = _runs_for(left - 5)
    second.send(cmd="runs", count=after, steps=STEPS, threads=8, prefix="restart-b",
                rate=CALLS_PER_SECOND)  # fmt: skip
    second_outcome = RunsOutcome(second.wait_for("runs_done", timeout=OUTAGE_SECONDS)["runs"])
    time.sleep(max(0.0, cut_at + OUTAGE_SECONDS - time.monotonic()))  # the outage's length
    outage = time.monotonic() - cut_at
    during = second.request("metrics", cmd="metrics")
    restored_at = time.time()
    proxy.start()
    written_at = wait_until(
        lambda: (
            completed_counts(pg_url, "restart-a") == (before, before * STEPS)
            and completed_counts(pg_url, "restart-b") == (after, after * STEPS)
        ),
        timeout=180,
    )
    flushed = second.request("flushed", cmd="flush", timeout=30)
    report = second.request("metrics", cmd="metrics")
    figure(
        record_property,
        "postgres_outage_restart_journal",
        outage_seconds=outage,
        runs=before + after,
        journal_events_at_return=during["journal_events"],
        events_kept_by_the_first_process=exited["spilled"] if exited else None,
        events_replayed_by_the_second=report["replayed"],
        dropped=sum(report["dropped"].values()) + sum((exited or {}).get("dropped", {}).values()),
        seconds_to_write_all_after_recovery=since(restored_at, written_at),
    )

    assert first_outcome.errors == [] and second_outcome.errors == []
    assert exited is not None and sum(exited["dropped"].values()) == 0, exited
    assert written_at is not None, (
        status_counts(pg_url, "restart-a"),
        status_counts(pg_url, "restart-b"),
    )
    assert_all_written(first_outcome, STEPS, pg_url, "restart-a")
    assert_all_written(second_outcome, STEPS, pg_url, "restart-b")
    assert flushed["ok"]
    assert sum(report["dropped"].values()) == 0, report["dropped"]
    assert report["journal_events"] == 0
    # The second process replayed the first one's journal as well as its own.
    assert report["replayed"] >= exited["spilled"]
    # Steps that went through a journal were priced before it, like any other.
    conn = connect(pg_url)
    try:
        priced = conn.execute(
            "SELECT count(*) FROM chat_debug_steps WHERE chat_id LIKE 'restart-a-%' "
            "AND metadata ? 'cost'"
        ).fetchone()[0]
    finally:
        conn.close()
    assert priced == before * STEPS
