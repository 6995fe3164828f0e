"""Queue overflow under a stalled store: every event not written is counted, exactly."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ._driver import (
    EVENTS_PER_RUN,
    EVENTS_PER_STEP,
    RunsOutcome,
    Stall,
    StartApp,
    figure,
    missing_events,
    stored_rows,
)

pytestmark = pytest.mark.slow  # application processes and store stalls

QUEUE_SIZE = 100
RUNS = 100
STEPS = 2


def test_dropped_events_equal_the_events_not_written(
    stall: Stall, start_app: StartApp, record_property: Callable[[str, object], None]
) -> None:
    app = start_app(stall.url, configure={"queue_size": QUEUE_SIZE})
    stall.begin()
    try:
        app.send(cmd="runs", count=RUNS, steps=STEPS, threads=4, prefix="overflow")
        outcome = RunsOutcome(app.wait_for("runs_done", timeout=120)["runs"])
    finally:
        stall.end()
    flushed = app.request("flushed", wait=90, cmd="flush", timeout=60)
    report = app.request("metrics", cmd="metrics")

    produced = RUNS * (EVENTS_PER_RUN + EVENTS_PER_STEP * STEPS)
    runs, steps = stored_rows(stall.direct_url, "overflow")
    missing = missing_events(outcome, STEPS, runs, steps)
    dropped = {reason: int(n) for reason, n in report["dropped"].items() if n}
    written = int(sum(report["written"].values()))
    figure(
        record_property,
        f"queue_overflow_{stall.url.split(':')[0]}",
        queue_size=QUEUE_SIZE,
        events=produced,
        not_in_database=missing,
        dropped_total=sum(dropped.values()),
        written_total=written,
        dropped_by_reason=dropped,
    )
    assert outcome.errors == []
    assert flushed["ok"]
    assert missing > 0 and dropped.get("queue_full", 0) > 0  # the queue did overflow
    assert sum(dropped.values()) == missing, (dropped, missing)
    assert written == produced - missing
