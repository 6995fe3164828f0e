"""Finding a conversation: list, chat filter, text search and model filter latency of a
real ``chatdebug serve`` over a database of ``--runs`` runs (100,000 by default), what
the search index costs the writer, and how long its migrations take on a full database.

For each backend this fills a fresh database through the store's bulk write path (the
writer's own path, so the search index is built by the database triggers exactly as
when recording): every run has a first message and one step with a request of two
messages and a reply, about 700 characters of words from a 2,000-word vocabulary, in
``--chats`` chats, 97 users; one run in fifty failed, one in a thousand also mentions a
rare word. It then starts ``chatdebug serve`` on a loopback port and times ``--repeat``
requests of each case over HTTP with a keep-alive client, printing p50 and p95 (and the
number of runs the first page returned, at most 100).

Then, on fresh databases:

* the writer's cost of the index: ``--write-runs`` runs written through the bulk path
  with the search triggers (everything the migrations create) and without them (the
  same schema with the search and model triggers dropped), ``--rounds`` times each,
  interleaved; the medians in runs per second and the difference per run (a run is one
  run, one step and three texts here);
* the migrations over existing data: ``--backfill-runs`` runs written at schema
  version 3 (before the search index), then each later version applied on its own and
  timed (``0004_search`` indexes what was recorded before it).

It measures; it asserts nothing.

    python benchmarks/search_bench.py                     # 100,000 runs, both backends
    python benchmarks/search_bench.py --runs 10000 --backend sqlite --write-runs 0
"""

from __future__ import annotations

import argparse
import importlib
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlencode

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.api_bench import database, serve
from chatdebug.store import BulkWrites, NewRun, NewStep, RunUpdate, bulk_writer, open_store
from chatdebug.store._migrations import migrations

VOCABULARY = [f"w{n:04d}" for n in range(2000)]
COMMON = ["refund", "invoice", "weather", "password", "delivery"]
RARE = "zanzibar"
BATCH = 1000
CHAT = "chat-7"
START = datetime(2025, 1, 1, tzinfo=UTC)


def _text(rng: random.Random, words: int) -> str:
    picked = rng.choices(VOCABULARY, k=words)
    picked[rng.randrange(words)] = rng.choice(COMMON)
    return " ".join(picked)


def _message(role: str, text: str) -> dict[str, object]:
    return {"role": role, "parts": [{"type": "text", "text": text}]}


def batches(runs: int, chats: int) -> Iterator[BulkWrites]:
    """The runs to write, :data:`BATCH` at a time (the same every time: seeded)."""
    rng = random.Random(7)
    for first in range(0, runs, BATCH):
        writes = BulkWrites()
        for i in range(first, min(first + BATCH, runs)):
            question = _text(rng, 12)
            if i % 1000 == 500:
                question += f" {RARE}"
            moment = START + timedelta(seconds=i)
            run = NewRun(
                chat_id=f"chat-{i % chats}",
                user_id=f"user-{i % 97}",
                started_at=moment,
                summary={"first_message": question[:200]},
            )
            writes.new_runs.append(run)
            writes.run_updates.append(
                RunUpdate(
                    id=run.id,
                    chat_id=run.chat_id,
                    status="error" if i % 50 == 0 else "completed",
                    summary={"first_message": question[:200], "step_count": 1},
                    finished_at=moment + timedelta(seconds=2),
                )
            )
            writes.new_steps.append(
                NewStep(
                    id=uuid.uuid4(),
                    run_id=run.id,
                    chat_id=run.chat_id,
                    operation="generate",
                    step_number=1,
                    status="completed",
                    provider="openai",
                    model=f"gpt-4o-2024-08-0{i % 5}",
                    normalized_request={
                        "model": "gpt-4o" if i % 5 else "gpt-4o-mini",
                        "messages": [
                            _message("system", _text(rng, 30)),
                            _message("user", question),
                        ],
                    },
                    normalized_response={
                        "content": [{"type": "text", "text": _text(rng, 40)}],
                        "finish_reason": "stop",
                    },
                    started_at=moment,
                    finished_at=moment + timedelta(seconds=1),
                )
            )
        yield writes


def load(url: str, runs: int, chats: int) -> float:
    """Write the runs through the bulk path of a migrated store; the seconds the writes
    took (the runs' preparation excluded)."""
    spent = 0.0
    with closing(open_store(url, migrate=False)) as store:
        writer = bulk_writer(store)
        assert writer is not None
        for writes in batches(runs, chats):
            began = time.perf_counter()
            with store.batch():
                if not writer.write_bulk(writes):
                    raise RuntimeError("bulk write refused")
            spent += time.perf_counter() - began
    return spent


def analyze(url: str) -> None:
    """On PostgreSQL, what autovacuum does soon after a load this size: the planner
    needs the statistics of the new rows."""
    if url.startswith("postgresql"):
        with psycopg.connect(url, autocommit=True) as conn:
            tables = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            ).fetchall()
            for (table,) in tables:
                conn.execute(f'ANALYZE "{table}"')


@contextmanager
def schema_up_to(backend: str, version: int) -> Iterator[None]:
    """Stores opened meanwhile know only the migrations up to ``version``."""
    dialect = "sqlite" if backend == "sqlite" else "postgres"
    module = importlib.import_module(f"chatdebug.store._{dialect}")
    shipped = migrations(dialect)
    with mock.patch.object(module, "migrations", lambda _: shipped[:version]):
        yield


def drop_search_triggers(url: str) -> list[str]:
    """Drop the triggers that keep the search index and the model filter's table; their
    names."""
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            names = [
                name
                for (name,) in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                    "AND tbl_name IN ('chat_debug_runs', 'chat_debug_steps') "
                    "AND name NOT LIKE 'chat_debug_changes%'"
                )
            ]
            for name in names:
                conn.execute(f'DROP TRIGGER "{name}"')
            conn.commit()
        finally:
            conn.close()
        return names
    with psycopg.connect(url, autocommit=True) as pg:
        found = pg.execute(
            "SELECT t.tgname, c.relname FROM pg_trigger AS t "
            "JOIN pg_class AS c ON c.oid = t.tgrelid "
            "WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal "
            "AND c.relname IN ('chat_debug_runs', 'chat_debug_steps') "
            "AND t.tgname NOT LIKE 'chat_debug_changes%'"
        ).fetchall()
        for name, table in found:
            pg.execute(f'DROP TRIGGER "{name}" ON "{table}"')
    return [name for name, _ in found]


def percentiles(client: httpx.Client, path: str, repeat: int) -> tuple[float, float, int]:
    client.get(path).raise_for_status()  # warm-up
    times = []
    count = 0
    for _ in range(repeat):
        began = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
        count = len(response.json()["runs"])
    cuts = statistics.quantiles(times, n=20)
    return statistics.median(times), cuts[18], count


def search_latency(backend: str, runs: int, chats: int, repeat: int) -> None:
    with database(backend) as url:
        with closing(open_store(url)):
            pass
        seconds = load(url, runs, chats)
        analyze(url)
        print(f"  filled {runs:,} runs in {seconds:.0f} s")
        rare = len(range(500, runs, 1000))
        since = (START + timedelta(seconds=runs * 0.7)).isoformat().replace("+00:00", "Z")
        with serve(url) as client:
            first = client.get("/api/debug/runs?limit=100").json()["next_cursor"]
            cases: list[tuple[str, dict[str, Any]]] = [
                ("list, first page", {}),
                ("list, next page (cursor)", {"cursor": first}),
                ("chat_id filter", {"chat_id": CHAT}),
                (f"q: a rare word ({rare} runs)", {"q": RARE}),
                ("q: a common word (~50% of runs)", {"q": "refund"}),
                ("q: a common word, next page", {"q": "refund", "cursor": first}),
                ("q: two words", {"q": "refund w0042"}),
                ("q: word prefix", {"q": "w004"}),
                ("q + chat_id", {"q": "w0042", "chat_id": CHAT}),
                ("q: a common word + chat_id", {"q": "refund", "chat_id": CHAT}),
                ("q matching nothing", {"q": "nothingmatchesthis"}),
                ("model (requested name)", {"model": "gpt-4o-mini"}),
                ("status=error + q", {"status": "error", "q": "invoice"}),
                ("user_id + q", {"user_id": "user-3", "q": "refund"}),
                ("model + q", {"model": "gpt-4o-mini", "q": "refund"}),
                ("q: two words, since (newest 30%)", {"q": "refund w0042", "since": since}),
            ]  # fmt: skip
            for label, params in cases:
                path = "/api/debug/runs?" + urlencode({"limit": 100, **params})
                p50, p95, count = percentiles(client, path, repeat)
                print(f"  {label:34} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  ({count} runs)")


def write_cost(backend: str, runs: int, chats: int, rounds: int) -> None:
    rates: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds):
        for with_search in (True, False):
            with database(backend) as url:
                with closing(open_store(url)):
                    pass
                if not with_search:
                    drop_search_triggers(url)
                rates[with_search].append(runs / load(url, runs, chats))
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    shown = {key: ", ".join(f"{rate:,.0f}" for rate in value) for key, value in rates.items()}
    print(f"  bulk writes, {runs:,} runs (1 step, 3 texts each), runs/s:")
    print(f"    with the search triggers    {on:8,.0f}   ({shown[True]})")
    print(f"    without them                {off:8,.0f}   ({shown[False]})")
    print(f"    the triggers' cost per run  {1e6 / on - 1e6 / off:8,.0f} µs")


def backfill(backend: str, runs: int, chats: int) -> None:
    dialect = "sqlite" if backend == "sqlite" else "postgres"
    with database(backend) as url:
        with schema_up_to(backend, 3):
            with closing(open_store(url)):
                pass
            seconds = load(url, runs, chats)
        analyze(url)
        print(f"  {runs:,} runs written at schema version 3 in {seconds:.0f} s")
        for migration in migrations(dialect)[3:]:
            with schema_up_to(backend, migration.version):
                with closing(open_store(url, migrate=False)) as store:
                    began = time.perf_counter()
                    store.migrate()
                    spent = time.perf_counter() - began
            print(f"  migration {migration.version:04d}_{migration.name}: {spent:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--chats", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--write-runs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backfill-runs", type=int, default=100_000)
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends if args.runs else []:
        print(f"{backend}, {args.runs:,} runs in {args.chats:,} chats:", flush=True)
        search_latency(backend, args.runs, args.chats, args.repeat)
    for backend in backends:
        if args.write_runs:
            print(f"{backend}, the search index's cost to the writer:", flush=True)
            write_cost(backend, args.write_runs, args.chats, args.rounds)
        if args.backfill_runs:
            print(f"{backend}, migrations over existing runs:", flush=True)
            backfill(backend, args.backfill_runs, args.chats)


if __name__ == "__main__":
    main()
