"""``chatdebug finalize-stale``, ``chatdebug purge`` and ``chatdebug purge --all``, in
this process and as real commands, on both backends."""

from __future__ import annotations

import os
import pty
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from chatdebug.cli import main
from chatdebug.store import NewRun, NewStep, RunUpdate, open_store
from tests.cli.support import chatdebug, cli_env
from tests.ops.support import NOW, runs_aged
from tests.store.support import FakeClock, count


def test_finalize_stale_and_purge(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(sqlite_url, clock=lambda: datetime.now(UTC) - timedelta(days=40))
    try:
        old = store.create_run(NewRun(chat_id="old"))
        store.create_step(NewStep(run_id=old.id, chat_id="old", operation="stream"))
        done = store.create_run(NewRun(chat_id="done"))
        store.create_step(NewStep(run_id=done.id, chat_id="done", operation="generate"))
        store.update_run(RunUpdate(id=done.id, chat_id="done", status="completed"))
    finally:
        store.close()
    assert main(["--database-url", sqlite_url, "finalize-stale", "--threshold", "10m"]) == 0
    # the open run and its step, plus the step left open under the finished run
    assert "finalized 1 run(s) and 2 step(s)" in capsys.readouterr().out
    assert main(["--database-url", sqlite_url, "settings", "retention-days", "30"]) == 0
    capsys.readouterr()
    assert main(["--database-url", sqlite_url, "purge"]) == 0
    out = capsys.readouterr().out
    # the finished 40-day-old run goes with its step; finalize-stale bumped the other
    # run's updated_at to now, so that one is recent again
    assert "purged 1 run(s) and 1 step(s)" in out
    assert main(["--database-url", sqlite_url, "settings", "retention-days", "0"]) == 0
    capsys.readouterr()
    assert main(["--database-url", sqlite_url, "purge"]) == 0
    assert "retention is disabled" in capsys.readouterr().out


def test_a_bad_duration_is_one_line_and_exit_2(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--database-url", sqlite_url, "finalize-stale", "--threshold", "soon"]) == 2
    err = capsys.readouterr().err
    assert "invalid duration" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_purge_all_drains_the_backlog_batch_after_batch(database_url: str) -> None:
    clock = FakeClock(NOW)
    with open_store(database_url, clock=clock) as store:
        store.set_retention_days(10)
        runs_aged(store, clock, days=20, count=11, steps=2, finished=True)
        runs_aged(store, clock, days=5, count=2, steps=1, finished=True)

    once = chatdebug("purge", "--database-url", database_url, "--batch-size", "4")
    assert once.returncode == 0, once.stderr
    assert once.stdout.strip() == "purged 4 run(s) and 8 step(s) not updated in 10 day(s)"

    drained = chatdebug("purge", "--all", "--database-url", database_url, "--batch-size", "3")
    assert drained.returncode == 0, drained.stderr
    # Not a terminal: no progress line, only the final count.
    assert drained.stdout.strip() == "purged 7 run(s) and 14 step(s) not updated in 10 day(s)"
    assert count(database_url, "chat_debug_runs") == 2


@pytest.mark.slow
def test_purge_with_an_invalid_stored_retention_fails_in_one_line(sqlite_url: str) -> None:
    with open_store(sqlite_url) as store:
        store.set_retention_days(5)
    conn = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    conn.execute("UPDATE chat_debug_settings SET value = 'soon' WHERE key = 'retention_days'")
    conn.commit()
    conn.close()
    result = chatdebug("purge", "--all", "--database-url", sqlite_url)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1
    assert "retention_days" in result.stderr


@pytest.mark.slow
def test_purge_all_shows_progress_on_a_terminal(sqlite_url: str) -> None:
    clock = FakeClock(NOW)
    with open_store(sqlite_url, clock=clock) as store:
        store.set_retention_days(10)
        runs_aged(store, clock, days=20, count=5, steps=1, finished=True)
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chatdebug", "purge", "--all", "--batch-size", "2",
             "--database-url", sqlite_url],
            stdout=follower,
            stderr=subprocess.DEVNULL,
            env=cli_env(),
        )  # fmt: skip
        os.close(follower)
        output = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            output += chunk
        assert proc.wait(60) == 0
    finally:
        os.close(leader)
    text = output.decode()
    assert "\rpurged 2 run(s) and 2 step(s)…" in text
    assert "\rpurged 4 run(s) and 4 step(s)…" in text
    assert text.rstrip().endswith("purged 5 run(s) and 5 step(s) not updated in 10 day(s)")
