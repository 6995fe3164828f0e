"""Read API latency: a real ``chatdebug serve`` over a database of ``--runs`` runs.

For each backend this fills a fresh database (runs spread over ``--chats`` chats, one run
in a hundred an error, the newest run with three steps of a few KB each), starts
``chatdebug serve`` on a loopback port and times, over HTTP with a keep-alive client,
the median of ``--repeat`` requests of:

* the first page of runs across chats (``/api/debug/runs?limit=100``), the next page by
  cursor, and a filter that matches nothing (the worst case: the whole time range is
  scanned);
* a chat's runs, one run with its steps, and a chat's export.

It measures; it asserts nothing.

    python benchmarks/api_bench.py                 # 50,000 runs, both backends
    python benchmarks/api_bench.py --runs 5000 --backend sqlite
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chatdebug.store import NewRun, NewStep, Run, RunUpdate, open_store

TOKEN = "bench-token-0123456789"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@contextmanager
def database(backend: str) -> Iterator[str]:
    """A URL of an empty database of ``backend``, removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    dsn = os.environ.get("CHATDEBUG_TEST_POSTGRES_DSN", DEFAULT_DSN)
    schema = f"api_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{dsn}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def fill(url: str, runs: int, chats: int) -> Run:
    """Write the runs; returns the newest (the one with steps)."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with closing(open_store(url)) as store, store.batch():
        for i in range(runs):
            run = store.create_run(
                NewRun(
                    chat_id=f"chat-{i % chats}",
                    user_id=f"user-{i % 50}",
                    model=f"model-{i % 5}",
                    status="in_progress"
                    if i == runs - 1
                    else "error"
                    if i % 100 == 0
                    else "completed",
                    started_at=start + timedelta(seconds=i),
                    summary={"first_message": "hello " * 10, "step_count": 3},
                )
            )
        for _ in range(3):
            store.create_step(
                NewStep(
                    run_id=run.id,
                    chat_id=run.chat_id,
                    operation="generate",
                    normalized_request={
                        "messages": [
                            {"role": "user", "parts": [{"type": "text", "text": "x" * 2000}]}
                        ]
                    },
                    attempts=[{"number": 1, "status": "completed", "request_body": "eA==" * 500}],
                )
            )
        store.update_run(RunUpdate(id=run.id, chat_id=run.chat_id, status="completed"))
    return run


@contextmanager
def serve(url: str) -> Iterator[httpx.Client]:
    """``chatdebug serve`` on ``url``; a client with the read token."""
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "chatdebug", "serve", "--database-url", url, "--listen",
         f"127.0.0.1:{port}", "--no-purge", "--no-finalize", "--token", TOKEN],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    try:
        for _ in range(200):
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(10)


def median_ms(client: httpx.Client, path: str, repeat: int) -> tuple[float, int]:
    times = []
    size = 0
    for _ in range(repeat):
        began = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
        size = len(response.content)
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50_000)
    parser.add_argument("--chats", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        with database(backend) as url:
            newest = fill(url, args.runs, args.chats)
            with serve(url) as client:
                cursor = client.get("/api/debug/runs?limit=100").json()["next_cursor"]
                chat = newest.chat_id
                cases = [
                    ("runs across chats, first page", "/api/debug/runs?limit=100"),
                    ("runs across chats, next page", f"/api/debug/runs?limit=100&cursor={cursor}"),
                    ("filter matching nothing", "/api/debug/runs?model=none"),
                    ("a chat's runs", f"/api/chats/{chat}/debug/runs"),
                    ("one run with 3 steps", f"/api/chats/{chat}/debug/runs/{newest.id}"),
                    ("a chat's export", f"/api/chats/{chat}/debug/export"),
                ]
                print(f"{backend}, {args.runs:,} runs:")
                for label, path in cases:
                    ms, size = median_ms(client, path, args.repeat)
                    print(f"  {label:32} {ms:8.2f} ms  {size:>8,} bytes")


if __name__ == "__main__":
    main()
