"""Schema migrations: applied once, idempotent, safe when several processes start at once."""

from __future__ import annotations

import importlib
import json
import re
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

SHIPPED = migrations("sqlite")
VERSIONS = [m.version for m in SHIPPED]
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
    assert rows == [(m.version, m.name) for m in SHIPPED]
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
from chatdebug.store._migrations import migrations
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


def _statements_before_history_sent(text: str) -> str:
    """A step statement as it was before ``request_history_sent`` (0008) existed."""
    text = re.sub(r",\n    request_history_sent\n", "\n", text)
    text = re.sub(r",\s*(:request_history_sent|%\(request_history_sent\)s::int)\n", "\n", text)
    return re.sub(r"    request_history_sent = CASE .*? END,\n", "", text, flags=re.S)


@pytest.mark.parametrize("version", [3, 5])
def test_search_finds_runs_recorded_before_its_migrations(
    database_url: str, version: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Runs written at an older schema version are indexed when the newer versions are
    # applied: every word in its own text of the run, found together.
    from chatdebug.store import RunFilter, StepUpdate
    from tests.store.support import make_step

    dialect = "sqlite" if is_sqlite(database_url) else "postgres"
    shipped = migrations(dialect)
    with monkeypatch.context() as patch:
        patch.setattr(f"chatdebug.store._{dialect}.migrations", lambda _: shipped[:version])
        # What the code of that version wrote: the step statements without the columns
        # of later versions.
        statements = importlib.import_module(f"chatdebug.store._{dialect}_sql")
        for name in ("INSERT_STEP", "UPDATE_STEP"):
            old_text = _statements_before_history_sent(getattr(statements, name))
            assert "request_history_sent" not in old_text
            patch.setattr(statements, name, old_text)
        with closing(open_store(database_url)) as old:
            run = make_run(old, "c-1", summary={"first_message": "parcel"})
            step = make_step(
                old,
                run,
                model="gpt-x",
                normalized_request={"messages": [{"parts": [{"text": "cancelled order"}]}]},
            )
            old.update_step(
                StepUpdate(
                    id=step.id,
                    chat_id="c-1",
                    normalized_response={"content": [{"type": "text", "text": "refunded"}]},
                )
            )
            other = make_run(old, "c-2", summary={"first_message": "parcel cancelled"})
    with closing(open_store(database_url)) as store:
        assert store.pending_migrations() == []
        found = store.list_recent_runs(RunFilter(text="parcel cancel refund"))
        assert [r.id for r in found] == [run.id]
        assert {r.id for r in store.list_recent_runs(RunFilter(text="parcel"))} == {
            run.id,
            other.id,
        }
        assert [r.id for r in store.list_recent_runs(RunFilter(model="gpt-x"))] == [run.id]
