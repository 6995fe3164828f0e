"""The writer's store calls raising unexpected errors (a fault-injected store)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ._driver import (
    RunsOutcome,
    StartApp,
    assert_all_written,
    figure,
    missing_events,
    stored_rows,
)

pytestmark = pytest.mark.slow  # application processes

RUNS = 60
STEPS = 2
# Every fifth chat's run cannot be created, every fifth chat's steps cannot be updated,
# and every second batch cannot be started: all with a RuntimeError, which no store may
# raise.
SUFFIXES = ["", "", "-fault-run", "", "-fault-step"]
FAULTS = {"create_run": "-fault-run", "update_step": "-fault-step", "batch_every": 2}


def test_unexpected_store_errors_are_counted_and_later_events_written(
    database_url: str, start_app: StartApp, record_property: Callable[[str, object], None]
) -> None:
    app = start_app(database_url, faults=FAULTS)
    app.send(cmd="runs", count=RUNS, steps=STEPS, threads=4, prefix="faulty", suffixes=SUFFIXES)
    faulty = RunsOutcome(app.wait_for("runs_done", timeout=120)["runs"])
    assert app.request("flushed", cmd="flush", timeout=30)["ok"]
    app.send(cmd="runs", count=RUNS, steps=STEPS, threads=4, prefix="later")
    later = RunsOutcome(
        app.wait_for("runs_done", timeout=120, where=lambda m: "later" in m["runs"][0]["chat_id"])[
            "runs"
        ]
    )
    assert app.request("flushed", cmd="flush", timeout=30)["ok"]
    report = app.request("metrics", cmd="metrics")

    runs, steps = stored_rows(database_url, "faulty")
    missing = missing_events(faulty, STEPS, runs, steps)
    injected = report["injected"]
    dropped = {reason: int(n) for reason, n in report["dropped"].items() if n}
    figure(
        record_property,
        f"store_faults_{database_url.split(':')[0]}",
        injected=injected,
        dropped_by_reason=dropped,
        not_in_database=missing,
        internal_errors=int(report["internal_errors"]),
        caller_exceptions=len(faulty.errors) + len(later.errors),
    )
    assert faulty.errors == [] and later.errors == []  # the application never noticed
    assert injected["create_run"] > 0 and injected["update_step"] > 0 and injected["batch"] > 0
    # Each failed call is one event dropped with reason store_error, logged as our own
    # error; what depended on a run that could not be created is dropped as run_dropped.
    assert dropped.get("store_error", 0) == injected["create_run"] + injected["update_step"]
    assert report["internal_errors"] >= injected["create_run"] + injected["update_step"]
    assert sum(dropped.values()) == missing, (dropped, missing)
    # Chats without an injected fault lost nothing, even in batches that failed to start.
    clean = RunsOutcome(
        [r for r in faulty.runs if not r["chat_id"].endswith(("-fault-run", "-fault-step"))]
    )
    assert_all_written(clean, STEPS, database_url, "faulty")
    assert_all_written(later, STEPS, database_url, "later")
