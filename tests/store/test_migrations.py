"""Schema migrations: applied once, idempotent, safe when several processes start at once."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import pytest

from chatdebug.store import open_store
from chatdebug.store._migrations import migrations
from tests.store.support import count, is_sqlite, make_run, raw

VERSIONS = [m.version for m in migrations("sqlite")]
TABLES = {
    "chat_debug_runs",
    "chat_debug_steps",
    "chat_debug_settings",
    "chat_debug_user_settings",
    "chat_debug_schema_migrations",
}


def tables(url: str) -> set[str]:
    if is_sqlite(url):
        rows = raw(url, "SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = raw(url, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return {name for (name,) in rows}


def test_migrate_applies_every_version_once(database_url: str) -> None:
    with closing(open_store(database_url, migrate=False)) as store:
        assert tables(database_url) & TABLES == set()
        assert store.migrate() == VERSIONS
        assert store.migrate() == []
    assert TABLES <= tables(database_url)
    rows = raw(database_url, "SELECT version, name FROM chat_debug_schema_migrations ORDER BY 1")
    assert rows == [(m.version, m.name) for m in migrations("sqlite")]
    assert rows[:3] == [(1, "init"), (2, "settings"), (3, "step_provider_model")]
    with closing(open_store(database_url)) as again:  # migrate on open: nothing to do
        assert again.migrate() == []
        make_run(again)
    assert count(database_url, "chat_debug_schema_migrations") == len(VERSIONS)


def test_concurrent_migrations_from_threads(database_url: str) -> None:
    workers = 6
    start = threading.Barrier(workers)

    def migrate(_: int) -> list[int]:
        with closing(open_store(database_url, migrate=False)) as store:
            start.wait()
            return store.migrate()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        applied = list(pool.map(migrate, range(workers)))

    assert sorted(v for versions in applied for v in versions) == VERSIONS
    assert count(database_url, "chat_debug_schema_migrations") == len(VERSIONS)


_MIGRATE_AT = """
import json, sys, time
from chatdebug.store import open_store
url, at = sys.argv[1], float(sys.argv[2])
store = open_store(url, migrate=False)
time.sleep(max(0.0, at - time.time()))
print(json.dumps(store.migrate()))
store.close()
"""


@pytest.mark.slow
def test_concurrent_migrations_from_two_processes(database_url: str) -> None:
    # Both processes are told to migrate at the same moment, after their start-up.
    at = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE_AT, database_url, str(at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    applied = sorted(v for out, _ in outputs for v in json.loads(out))
    assert applied == VERSIONS
    assert count(database_url, "chat_debug_schema_migrations") == len(VERSIONS)
    assert TABLES <= tables(database_url)
