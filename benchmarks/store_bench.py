"""Store write throughput: the store API against the database's bulk-load limit.

For each backend this writes ``--runs`` runs of ``--steps`` steps, each step with a
``--payload-kb`` JSON request and response, three times into a fresh database:

* through the store API, as the exporter does: ``create_run``, then per step
  ``create_step`` (request payload) and ``update_step`` (final response, usage,
  attempts, status), then ``update_run`` (finished, summary), each call its own
  transaction;
* the same calls, the calls of each run inside one ``store.batch()`` (one transaction
  per run, each call in a savepoint);
* the same final rows in one transaction with the fastest path the driver has:
  ``COPY … FROM STDIN`` on PostgreSQL, ``executemany`` on SQLite (rows prepared
  beforehand, so only the database work is timed). That is the physical limit.

It prints rows per second (a run and each step are one row each) for each, the API's
store calls per second, and the ratios, as medians over ``--repeat`` repetitions. It
measures; it asserts nothing.

    python benchmarks/store_bench.py                       # 10,000 runs x 5 steps, 3 repeats
    python benchmarks/store_bench.py --runs 500 --repeat 1 # a quick check

PostgreSQL: ``$CHATDEBUG_TEST_POSTGRES_DSN`` (default the local server, database
``test``); every repetition uses a new schema that is dropped afterwards. SQLite: a file
in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql as pgsql

from chatdebug.store import NewRun, NewStep, RunUpdate, StepUpdate, Store, open_store
from chatdebug.store._codec import dump_json, format_timestamp

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
WORDS = (
    "the model answered with a long explanation about tokens streams retries tools "
    "latency cost cache reasoning system user assistant message function call result "
    "error timeout provider request response chunk delta usage finish stop length"
).split()

RUN_COLUMNS = (
    "id, chat_id, user_id, kind, status, provider, model, summary, started_at, updated_at, "
    "finished_at"
)
STEP_COLUMNS = (
    "id, run_id, chat_id, step_number, operation, status, normalized_request, "
    "normalized_response, usage, attempts, error, metadata, started_at, updated_at, "
    "finished_at"
)


@dataclass(frozen=True)
class Workload:
    runs: int
    steps: int
    payload_kb: float


def text_of(rng: random.Random, size: int) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:size]


def payloads(work: Workload, seed: int = 7) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A few distinct request and response payloads of about ``payload_kb`` each."""
    rng = random.Random(seed)
    size = int(work.payload_kb * 1024)
    requests = [
        {
            "messages": [
                {"role": "system", "parts": [{"type": "text", "text": text_of(rng, size // 4)}]},
                {"role": "user", "parts": [{"type": "text", "text": text_of(rng, size // 2)}]},
            ],
            "options": {"temperature": 0.2, "max_output_tokens": 1024},
        }
        for _ in range(16)
    ]
    responses = [
        {
            "content": [{"type": "text", "text": text_of(rng, size - 200)}],
            "finish_reason": "stop",
            "usage": {"input_tokens": 812, "output_tokens": 301, "total_tokens": 1113},
        }
        for _ in range(16)
    ]
    return requests, responses


USAGE = {"input_tokens": 812, "output_tokens": 301, "total_tokens": 1113}
ATTEMPTS = [
    {
        "number": 1,
        "status": "completed",
        "method": "POST",
        "path": "/v1/chat/completions",
        "response_status": 200,
        "duration_ms": 412,
    }
]


def api_write(url: str, work: Workload, batched: bool = False) -> tuple[float, int]:
    """Seconds and store calls to write the workload through the store API; with
    ``batched``, the calls of each run in one ``store.batch()``."""
    requests, responses = payloads(work)
    calls = 0
    with closing(open_store(url)) as store:
        start = time.perf_counter()
        for i in range(work.runs):
            with store.batch() if batched else nullcontext():
                calls += _write_run(store, work, i, requests, responses)
        return time.perf_counter() - start, calls


def _write_run(
    store: Store,
    work: Workload,
    i: int,
    requests: list[dict[str, Any]],
    responses: list[dict[str, Any]],
) -> int:
    run = store.create_run(
        NewRun(
            chat_id=f"chat-{i % 500}",
            user_id="user-1",
            provider="openai",
            model="gpt-4o",
            summary={"first_message": "benchmark turn"},
        )
    )
    for n in range(1, work.steps + 1):
        step = store.create_step(
            NewStep(
                run_id=run.id,
                chat_id=run.chat_id,
                operation="stream",
                step_number=n,
                normalized_request=requests[(i + n) % 16],
            )
        )
        store.update_step(
            StepUpdate(
                id=step.id,
                chat_id=run.chat_id,
                status="completed",
                normalized_response=responses[(i + n) % 16],
                usage=USAGE,
                attempts=ATTEMPTS,
            )
        )
    store.update_run(
        RunUpdate(
            id=run.id,
            chat_id=run.chat_id,
            status="completed",
            summary={"first_message": "benchmark turn", "step_count": work.steps},
        )
    )
    return 2 + 2 * work.steps


def final_rows(work: Workload) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows the API path ends with, ready for a bulk load."""
    requests, responses = payloads(work)
    now = datetime.now(UTC)
    done = now + timedelta(seconds=1)
    summary = dump_json({"first_message": "benchmark turn", "step_count": work.steps})
    request_json = [dump_json(r) for r in requests]
    response_json = [dump_json(r) for r in responses]
    usage, attempts = dump_json(USAGE), dump_json(ATTEMPTS)
    runs, steps = [], []
    for i in range(work.runs):
        run_id, chat_id = uuid.uuid4(), f"chat-{i % 500}"
        runs.append(
            (
                run_id,
                chat_id,
                "user-1",
                "chat_turn",
                "completed",
                "openai",
                "gpt-4o",
                summary,
                now,
                done,
                done,
            )
        )
        for n in range(1, work.steps + 1):
            steps.append(
                (
                    uuid.uuid4(),
                    run_id,
                    chat_id,
                    n,
                    "stream",
                    "completed",
                    request_json[(i + n) % 16],
                    response_json[(i + n) % 16],
                    usage,
                    attempts,
                    None,
                    "{}",
                    now,
                    done,
                    done,
                )
            )
    return runs, steps


def _text_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        str(v)
        if isinstance(v, uuid.UUID)
        else format_timestamp(v)
        if isinstance(v, datetime)
        else v
        for v in row
    )


def raw_write_sqlite(url: str, work: Workload) -> float:
    import sqlite3

    open_store(url).close()  # same schema, indexes and PRAGMAs as the API path
    runs, steps = final_rows(work)
    runs, steps = [_text_row(r) for r in runs], [_text_row(s) for s in steps]
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            f"INSERT INTO chat_debug_runs ({RUN_COLUMNS}) VALUES ({', '.join('?' * 11)})", runs
        )
        conn.executemany(
            f"INSERT INTO chat_debug_steps ({STEP_COLUMNS}) VALUES ({', '.join('?' * 15)})", steps
        )
        conn.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        conn.close()


def raw_write_postgres(url: str, work: Workload) -> float:
    open_store(url).close()
    runs, steps = final_rows(work)
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(f"COPY chat_debug_runs ({RUN_COLUMNS}) FROM STDIN") as copy:
                for row in runs:
                    copy.write_row(row)
            with cur.copy(f"COPY chat_debug_steps ({STEP_COLUMNS}) FROM STDIN") as copy:
                for row in steps:
                    copy.write_row(row)
        return time.perf_counter() - start


@contextmanager
def fresh_sqlite() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="chatdebug-bench-") as folder:
        yield f"sqlite:///{Path(folder) / 'bench.db'}"


@contextmanager
def fresh_postgres(dsn: str) -> Iterator[str]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(pgsql.SQL("CREATE SCHEMA {}").format(pgsql.Identifier(schema)))
    parts = urllib.parse.urlsplit(dsn)
    query = [*urllib.parse.parse_qsl(parts.query), ("options", f"-csearch_path={schema}")]
    try:
        yield urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(pgsql.SQL("DROP SCHEMA {} CASCADE").format(pgsql.Identifier(schema)))


def bench(
    name: str,
    fresh: Callable[[], Any],
    raw: Callable[[str, Workload], float],
    work: Workload,
    repeat: int,
) -> None:
    rows = work.runs * (1 + work.steps)
    rates: dict[str, list[float]] = {"single": [], "batched": [], "raw": []}
    call_rates: dict[str, list[float]] = {"single": [], "batched": []}
    for i in range(repeat):
        timings = []
        for path in ("single", "batched"):
            with fresh() as url:
                seconds, calls = api_write(url, work, batched=path == "batched")
            rates[path].append(rows / seconds)
            call_rates[path].append(calls / seconds)
            timings.append(f"{path} {seconds:.2f}s")
        with fresh() as url:
            raw_seconds = raw(url, work)
        rates["raw"].append(rows / raw_seconds)
        print(
            f"  {name} repetition {i + 1}/{repeat}: API {', '.join(timings)}, "
            f"raw {raw_seconds:.2f}s",
            file=sys.stderr,
            flush=True,
        )
    single, batched, raw_rate = (statistics.median(rates[k]) for k in ("single", "batched", "raw"))
    print(
        f"{name:<11} store API   {single:>10,.0f} rows/s   "
        f"({statistics.median(call_rates['single']):,.0f} store calls/s, one transaction each)"
    )
    print(
        f"{name:<11} batched     {batched:>10,.0f} rows/s   "
        f"({statistics.median(call_rates['batched']):,.0f} store calls/s, one batch() per run)"
    )
    print(
        f"{name:<11} raw bulk    {raw_rate:>10,.0f} rows/s   "
        f"({'COPY' if name == 'postgresql' else 'executemany'}, one transaction)"
    )
    print(
        f"{name:<11} ratio       {single / raw_rate:>10.3f}        (API / raw; raw is "
        f"{raw_rate / single:.1f}x faster)"
    )
    print(
        f"{name:<11} ratio       {batched / raw_rate:>10.3f}        (batched / raw; raw is "
        f"{raw_rate / batched:.1f}x faster; batched is {batched / single:.1f}x the API)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--payload-kb", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--dsn",
        default=os.environ.get("CHATDEBUG_TEST_POSTGRES_DSN", DEFAULT_DSN),
        help="PostgreSQL server (default: $CHATDEBUG_TEST_POSTGRES_DSN or the local one)",
    )
    args = parser.parse_args(argv)
    work = Workload(args.runs, args.steps, args.payload_kb)
    print(
        f"{work.runs:,} runs x {work.steps} steps, ~{work.payload_kb:g} KB request and "
        f"response per step, {work.runs * (1 + work.steps):,} rows, median of {args.repeat}"
    )
    if args.backend in ("sqlite", "both"):
        bench("sqlite", fresh_sqlite, raw_write_sqlite, work, args.repeat)
    if args.backend in ("postgresql", "both"):
        bench("postgresql", lambda: fresh_postgres(args.dsn), raw_write_postgres, work, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
