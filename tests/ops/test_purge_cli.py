"""``chatdebug purge`` and ``chatdebug purge --all`` as real commands on both backends."""

from __future__ import annotations

import os
import pty
import sqlite3
import subprocess
import sys

from chatdebug.store import open_store
from tests.ops.serve_process import ROOT
from tests.ops.support import NOW, runs_aged
from tests.store.support import FakeClock, count


def chatdebug(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATDEBUG_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "chatdebug", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


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


def test_purge_all_shows_progress_on_a_terminal(sqlite_url: str) -> None:
    clock = FakeClock(NOW)
    with open_store(sqlite_url, clock=clock) as store:
        store.set_retention_days(10)
        runs_aged(store, clock, days=20, count=5, steps=1, finished=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATDEBUG_")}
    env["PYTHONPATH"] = str(ROOT)
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chatdebug", "purge", "--all", "--batch-size", "2",
             "--database-url", sqlite_url],
            stdout=follower,
            stderr=subprocess.DEVNULL,
            env=env,
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
