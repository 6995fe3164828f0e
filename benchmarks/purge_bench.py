"""Retention purge throughput on both backends, next to a raw ``DELETE`` of the same rows.

``--runs`` runs (default 100,000) of ``--steps`` steps each (default 5) are seeded with
SQL straight into a fresh SQLite file / PostgreSQL schema (~1 KB of JSON per step
request and response), all last updated 60 days ago, retention 30 days. Then:

* **purge**: ``Store.delete_old_runs`` batch after batch (``--batch-size``, default
  1,000, each batch its own transaction under the purge lock), as ``chatdebug purge
  --all`` and successive ``serve`` ticks do, until the backlog is gone;
* **raw**: the same rows seeded again, then one ``DELETE FROM chat_debug_runs WHERE
  updated_at < …`` (steps by cascade) in one transaction: the physical limit.

Runs and steps removed per second for each. It measures; it asserts nothing::

    python benchmarks/purge_bench.py                       # both backends
    python benchmarks/purge_bench.py --runs 20000 --backend postgres
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from store_bench import DEFAULT_DSN, fresh_postgres, fresh_sqlite

from chatdebug.store import open_store

_REQUEST = (
    '{"model": "gpt-4o", "messages": ['
    + ", ".join(f'{{"role": "user", "content": "message {i} {"x" * 80}"}}' for i in range(8))
    + "]}"
)
_RESPONSE = '{"content": "' + "y" * 900 + '", "finish_reason": "stop"}'

_PG_SEED_RUNS = """
INSERT INTO chat_debug_runs (chat_id, user_id, kind, status, started_at, updated_at, finished_at)
SELECT 'chat-' || (i %% 5000), 'user-' || (i %% 100), 'chat_turn', 'completed',
       %(old)s + i * interval '1 millisecond', %(old)s + i * interval '1 millisecond',
       %(old)s + i * interval '1 millisecond'
FROM generate_series(1, %(runs)s) AS i"""
_PG_SEED_STEPS = """
INSERT INTO chat_debug_steps (run_id, chat_id, step_number, operation, status,
    normalized_request, normalized_response, started_at, updated_at, finished_at)
SELECT r.id, r.chat_id, n, 'stream', 'completed', %(request)s::jsonb, %(response)s::jsonb,
       r.started_at, r.updated_at, r.finished_at
FROM chat_debug_runs AS r CROSS JOIN generate_series(1, %(steps)s) AS n"""

_SQLITE_SEED_RUNS = """
WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < :runs)
INSERT INTO chat_debug_runs (chat_id, user_id, kind, status, started_at, updated_at, finished_at)
SELECT 'chat-' || (i % 5000), 'user-' || (i % 100), 'chat_turn', 'completed',
       strftime('%Y-%m-%dT%H:%M:%f', :old, '+' || i || ' seconds') || '000Z',
       strftime('%Y-%m-%dT%H:%M:%f', :old, '+' || i || ' seconds') || '000Z',
       strftime('%Y-%m-%dT%H:%M:%f', :old, '+' || i || ' seconds') || '000Z'
FROM seq"""
_SQLITE_SEED_STEPS = """
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :steps)
INSERT INTO chat_debug_steps (run_id, chat_id, step_number, operation, status,
    normalized_request, normalized_response, started_at, updated_at, finished_at)
SELECT r.id, r.chat_id, n, 'stream', 'completed', :request, :response,
       r.started_at, r.updated_at, r.finished_at
FROM chat_debug_runs AS r CROSS JOIN seq"""


def seed_postgres(url: str, runs: int, steps: int, old: datetime) -> None:
    values = {"runs": runs, "steps": steps, "old": old, "request": _REQUEST, "response": _RESPONSE}
    with psycopg.connect(url, autocommit=False) as conn:
        conn.execute(_PG_SEED_RUNS, values)
        conn.execute(_PG_SEED_STEPS, values)
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE chat_debug_runs")
        conn.execute("VACUUM ANALYZE chat_debug_steps")


def seed_sqlite(url: str, runs: int, steps: int, old: datetime) -> None:
    path = url.removeprefix("sqlite:///")
    values = {
        "runs": runs,
        "steps": steps,
        "old": old.strftime("%Y-%m-%d %H:%M:%S"),
        "request": _REQUEST,
        "response": _RESPONSE,
    }
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(_SQLITE_SEED_RUNS, values)
        conn.execute(_SQLITE_SEED_STEPS, values)
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        conn.close()


def count_rows(url: str) -> tuple[int, int]:
    with open_store(url) as store:
        del store
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            runs = conn.execute("SELECT count(*) FROM chat_debug_runs").fetchone()[0]
            steps = conn.execute("SELECT count(*) FROM chat_debug_steps").fetchone()[0]
        finally:
            conn.close()
        return int(runs), int(steps)
    with psycopg.connect(url) as pg:
        runs = pg.execute("SELECT count(*) FROM chat_debug_runs").fetchone()
        steps = pg.execute("SELECT count(*) FROM chat_debug_steps").fetchone()
    return int(runs[0] if runs else 0), int(steps[0] if steps else 0)


def purge_all(url: str, before: datetime, batch_size: int) -> tuple[float, int, int]:
    store = open_store(url)
    try:
        runs = steps = 0
        started = time.perf_counter()
        while True:
            result = store.delete_old_runs(before, batch_size)
            runs += result.runs_removed
            steps += result.steps_removed
            if result.runs_removed < batch_size:
                break
        return time.perf_counter() - started, runs, steps
    finally:
        store.close()


def raw_delete(url: str, before: datetime) -> float:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "DELETE FROM chat_debug_runs WHERE updated_at < ?",
                (before.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),),
            )
            conn.execute("COMMIT")
            return time.perf_counter() - started
        finally:
            conn.close()
    with psycopg.connect(url) as pg:
        started = time.perf_counter()
        pg.execute("DELETE FROM chat_debug_runs WHERE updated_at < %s", (before,))
        pg.commit()
        return time.perf_counter() - started


def bench(
    name: str, fresh: Callable[[], AbstractContextManager[str]], args: argparse.Namespace
) -> None:
    seed = seed_sqlite if name == "sqlite" else seed_postgres
    now = datetime.now(UTC)
    old = now - timedelta(days=60)
    before = now - timedelta(days=30)
    print(f"\n{name}: {args.runs:,} runs x {args.steps} steps, batch {args.batch_size:,}")
    for attempt in range(args.repeat):
        with fresh() as url:
            with open_store(url) as store:
                store.set_retention_days(30)
            started = time.perf_counter()
            seed(url, args.runs, args.steps, old)
            seeded = time.perf_counter() - started
            elapsed, runs, steps = purge_all(url, before, args.batch_size)
            left = count_rows(url)
        with fresh() as url:
            with open_store(url):
                pass
            seed(url, args.runs, args.steps, old)
            raw = raw_delete(url, before)
            raw_left = count_rows(url)
        print(
            f"  [{attempt + 1}] seeded in {seeded:.1f} s; purge: {runs:,} runs + {steps:,} steps "
            f"in {elapsed:.2f} s = {runs / elapsed:,.0f} runs/s, {steps / elapsed:,.0f} steps/s "
            f"(left {left}); raw DELETE: {raw:.2f} s = {args.runs / raw:,.0f} runs/s, "
            f"{args.runs * args.steps / raw:,.0f} steps/s (left {raw_left})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--backend", choices=("both", "sqlite", "postgres"), default="both")
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="PostgreSQL database to use")
    args = parser.parse_args(argv)
    if args.backend in ("both", "postgres"):
        bench("postgres", lambda: fresh_postgres(args.dsn), args)
    if args.backend in ("both", "sqlite"):
        bench("sqlite", fresh_sqlite, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
