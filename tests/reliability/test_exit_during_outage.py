"""SIGTERM while PostgreSQL is down, with the spill journal on: the process exits within a
bounded time (its exit flush stops waiting once the store is found down), what it could
not write stays in its journal, and the next process writes all of it once the
database is back, across a second process that also started, recorded and was stopped
during the outage."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fakes.tcp_proxy import TCPProxy

from ._driver import AppProcess, RunsOutcome, StartApp, assert_all_written, figure

RUNS = 150
STEPS = 2
EXIT_FLUSH_TIMEOUT = 10.0
EXIT_BOUND = 60.0
"""How long the test waits for a process to end; chatdebug's own bound is the exit flush
timeout plus a grace of 4 s (the figure shows the real time)."""


def _record_then_terminate(app: AppProcess, prefix: str) -> tuple[RunsOutcome, float]:
    """Record ``RUNS`` runs, then SIGTERM the process; the outcome and the seconds from
    the signal to the end of the process."""
    app.send(cmd="runs", count=RUNS, steps=STEPS, threads=4, prefix=prefix, rate=100.0)
    outcome = RunsOutcome(app.wait_for("runs_done", timeout=120)["runs"])
    term_at = time.monotonic()
    app.proc.send_signal(signal.SIGTERM)
    app.proc.wait(timeout=EXIT_BOUND)
    return outcome, time.monotonic() - term_at


@pytest.mark.slow
def test_sigterm_during_an_outage_exits_and_the_next_process_writes_everything(
    pg_url: str,
    pg_proxy: tuple[TCPProxy, str],
    start_app: StartApp,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    proxy, proxied_url = pg_proxy
    options = {"spill_path": str(tmp_path / "spill.db"), "exit_flush_timeout": EXIT_FLUSH_TIMEOUT}
    # chatdebug's own SIGTERM handler: it flushes, then lets the signal end the process.
    first = start_app(proxied_url, configure=options)
    proxy.stop()
    first_outcome, first_exit = _record_then_terminate(first, "term-a")
    # The next one starts while the database is still down: it adopts the first one's
    # journal and retries it, then gets SIGTERM through the application's own handler
    # (sys.exit, a normal exit).
    second = start_app(proxied_url, migrated=False, configure=options, sigterm_exit=True)
    second_outcome, second_exit = _record_then_terminate(second, "term-b")
    exited = second.received("exited")
    # The database is back: a third process writes both journals.
    proxy.start()
    third = start_app(proxied_url, migrated=False, configure=options)
    flushed = third.request("flushed", cmd="flush", timeout=120)
    report = third.request("metrics", cmd="metrics", wait=60)
    events = RUNS * (2 + 2 * STEPS)
    figure(
        record_property,
        "sigterm_during_outage",
        events_per_process=events,
        exit_flush_timeout_s=EXIT_FLUSH_TIMEOUT,
        seconds_to_exit_chatdebug_handler=first_exit,
        seconds_to_exit_app_handler=second_exit,
        events_kept_by_the_second=exited["spilled"] if exited else None,
        events_replayed_by_the_third=report["replayed"],
        seconds_to_replay=flushed["seconds"],
    )

    assert first.proc.returncode == -signal.SIGTERM, first.log()
    assert second.proc.returncode == 0, second.log()
    assert first_outcome.errors == [] and second_outcome.errors == []
    assert exited is not None and sum(exited["dropped"].values()) == 0, exited
    assert flushed["ok"]
    assert_all_written(first_outcome, STEPS, pg_url, "term-a")
    assert_all_written(second_outcome, STEPS, pg_url, "term-b")
    assert report["replayed"] >= 2 * events
    assert sum(report["dropped"].values()) == 0, report["dropped"]
    assert report["journal_events"] == 0
    assert "kept in the spill journal" in second.log()
