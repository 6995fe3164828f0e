"""Many processes opening, migrating and writing one new SQLite file at the same moment.

A file's first connections race to switch it to WAL (a lock SQLite's busy handler does
not wait for when several connections want it at once) and to migrate it; every process
must get through, the schema must be applied exactly once, and every write must land.
The race is sharpest on a file that already has content in rollback-journal mode (made
by another tool): switching it rewrites its header under an exclusive lock.
"""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import traceback
import uuid
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from chatdebug.store import NewRun, NewStep, open_store

PROCESSES = 16
ROUNDS = 4


def _open_and_write(url: str, start: Barrier, results: multiprocessing.SimpleQueue) -> None:  # type: ignore[type-arg]
    try:
        start.wait(timeout=30)
        store = open_store(url)
        try:
            chat = f"chat-{uuid.uuid4().hex[:8]}"
            run = store.create_run(NewRun(chat_id=chat, kind="chat_turn", status="in_progress"))
            store.create_step(
                NewStep(run_id=run.id, chat_id=chat, operation="stream", status="in_progress")
            )
        finally:
            store.close()
        results.put(json.dumps({"ok": True}))
    except BaseException:
        results.put(json.dumps({"ok": False, "error": traceback.format_exc()}))


@pytest.mark.slow
@pytest.mark.parametrize("round_number", range(ROUNDS))
@pytest.mark.parametrize("existing", [False, True], ids=["new-file", "rollback-journal-file"])
def test_sixteen_processes_open_a_file_at_once(
    tmp_path: Path, round_number: int, existing: bool
) -> None:
    path = tmp_path / f"race-{round_number}.db"
    url = f"sqlite:///{path}"
    if existing:
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE unrelated (x INTEGER)")
        conn.commit()
        conn.close()
    context = multiprocessing.get_context("fork")
    start = context.Barrier(PROCESSES)
    results = context.SimpleQueue()
    procs = [
        context.Process(target=_open_and_write, args=(url, start, results))
        for _ in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    outcomes = [json.loads(results.get()) for _ in range(PROCESSES)]
    failures = [o["error"] for o in outcomes if not o["ok"]]
    assert not failures, failures[0]
    assert all(proc.exitcode == 0 for proc in procs)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = [r[0] for r in conn.execute("SELECT version FROM chat_debug_schema_migrations")]
        assert sorted(versions) == list(range(1, len(versions) + 1))
        assert conn.execute("SELECT count(*) FROM chat_debug_runs").fetchone()[0] == PROCESSES
        assert conn.execute("SELECT count(*) FROM chat_debug_steps").fetchone()[0] == PROCESSES
    finally:
        conn.close()
