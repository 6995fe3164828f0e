"""Graceful exit: an application that exits normally, or on SIGTERM through its server's
graceful shutdown, writes what it queued within ``exit_flush_timeout``; what it could not
write is counted and logged once."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ._driver import (
    AppProcess,
    RunsOutcome,
    Stall,
    StartApp,
    assert_all_written,
    figure,
    missing_events,
    stored_rows,
)

pytestmark = pytest.mark.slow  # application processes and store stalls

RUNS = 40
STEPS = 2
STALL_AFTER_EXIT = 1.5  # the store comes back this long after the exit began


def _backend(stall: Stall) -> str:
    return stall.url.split(":")[0]


def _wait_exit(app: AppProcess, timeout: float, *, signalled: bool = False) -> float:
    """Wait for the process to end; its exit code must be 0 (or, when ``signalled``,
    death by the SIGTERM uvicorn raises again). Returns when it ended."""
    code = app.proc.wait(timeout=timeout)
    ended = time.time()
    assert code in ((0, -signal.SIGTERM) if signalled else (0,)), app.log()
    return ended


def _drop_lines_after_exit(log: str) -> list[str]:
    """chatdebug WARNING/ERROR lines logged after the application began to exit that
    report events not written."""
    after = log.partition("APP EXITING")[2]
    return [
        line
        for line in after.splitlines()
        if re.search(r" (WARNING|ERROR) chatdebug", line)
        and re.search(r"drop|not (be )?written|could not write|unwritten|lost", line, re.I)
    ]


def test_normal_exit_writes_everything_queued(
    stall: Stall, start_app: StartApp, record_property: Callable[[str, object], None]
) -> None:
    app = start_app(stall.url, configure={"exit_flush_timeout": 30.0})
    stall.begin()
    try:
        app.send(cmd="runs", count=RUNS, steps=STEPS, threads=4, prefix="exit")
        outcome = RunsOutcome(app.wait_for("runs_done", timeout=60)["runs"])
        exit_at = time.time()
        app.send(cmd="exit")
        time.sleep(STALL_AFTER_EXIT)  # the exit flush waits for the store meanwhile
    finally:
        stall.end()
    ended = _wait_exit(app, timeout=60)
    report = app.wait_for("exited", timeout=5)
    figure(
        record_property,
        f"normal_exit_{_backend(stall)}",
        events=RUNS * (2 + 2 * STEPS),
        store_back_after_s=STALL_AFTER_EXIT,
        seconds_to_exit=ended - exit_at,
        dropped=sum(report["dropped"].values()),
    )
    assert outcome.errors == []
    assert sum(report["dropped"].values()) == 0, report["dropped"]
    assert_all_written(outcome, STEPS, stall.direct_url, "exit")


def test_exit_with_the_store_down_counts_and_logs_what_was_not_written(
    stall: Stall, start_app: StartApp, record_property: Callable[[str, object], None]
) -> None:
    timeout = 2.0
    app = start_app(stall.url, configure={"exit_flush_timeout": timeout})
    stall.begin()
    try:
        app.send(cmd="runs", count=RUNS, steps=STEPS, threads=4, prefix="down")
        outcome = RunsOutcome(app.wait_for("runs_done", timeout=60)["runs"])
        exit_at = time.time()
        app.send(cmd="exit")
        ended = _wait_exit(app, timeout=timeout + 20)
    finally:
        stall.end()
    report = app.wait_for("exited", timeout=5)
    runs, steps = stored_rows(stall.direct_url, "down")
    missing = missing_events(outcome, STEPS, runs, steps)
    dropped = {reason: int(n) for reason, n in report["dropped"].items() if n}
    lines = _drop_lines_after_exit(app.log())
    figure(
        record_property,
        f"exit_store_down_{_backend(stall)}",
        exit_flush_timeout_s=timeout,
        seconds_to_exit=ended - exit_at,
        not_written=missing,
        dropped_by_reason=dropped,
        log_lines=len(lines),
    )
    assert outcome.errors == []
    assert missing > 0  # the store really was down at exit
    assert sum(dropped.values()) == missing, (dropped, missing)
    assert len(lines) == 1, lines  # logged once, with the number of events
    assert re.search(rf"\b{missing}\b", lines[0]), lines[0]


@pytest.mark.parametrize("exit_handler", [True, False], ids=["app_handler", "uvicorn_only"])
def test_sigterm_through_graceful_shutdown_writes_everything(
    stall: Stall,
    start_app: StartApp,
    record_property: Callable[[str, object], None],
    exit_handler: bool,
) -> None:
    """uvicorn shuts down gracefully on SIGTERM, then raises it again: into the
    application's own handler (``sys.exit(0)``), or with none, the default action."""
    app = start_app(stall.url, configure={"exit_flush_timeout": 30.0})
    app.send(cmd="serve", exit_handler=exit_handler)
    port = app.wait_for("serving", timeout=30)["port"]
    stall.begin()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

            def call(index: int) -> dict[str, object]:
                response = client.post(f"/sigterm-{index}")
                response.raise_for_status()
                result: dict[str, object] = response.json()
                return result

            with ThreadPoolExecutor(4) as pool:
                outcome = RunsOutcome(list(pool.map(call, range(RUNS))))
        term_at = time.time()
        app.proc.send_signal(signal.SIGTERM)
        time.sleep(STALL_AFTER_EXIT)
    finally:
        stall.end()
    ended = _wait_exit(app, timeout=60, signalled=not exit_handler)
    # Killed by the signal, a process runs no atexit hook and reports nothing.
    report = app.received("exited")
    dropped = sum(report["dropped"].values()) if report else "unknown"
    runs, _ = stored_rows(stall.direct_url, "sigterm")
    figure(
        record_property,
        f"sigterm_exit_{'app_handler' if exit_handler else 'uvicorn_only'}_{_backend(stall)}",
        runs=RUNS,
        store_back_after_s=STALL_AFTER_EXIT,
        seconds_from_sigterm_to_exit=ended - term_at,
        exit_code=app.proc.returncode,
        runs_completed=sum(status == "completed" for status in runs.values()),
        dropped=dropped,
    )
    assert outcome.errors == []
    assert_all_written(outcome, 1, stall.direct_url, "sigterm")
    assert dropped in (0, "unknown")
