"""Finding a conversation: list, chat filter, text search and model filter latency of a
real ``chatdebug serve`` over a database of ``--runs`` runs (100,000 by default).

For each backend this fills a fresh database through the store's bulk write path (the
writer's own path, so the search index is built by the database triggers exactly as
when recording): every run has a first message and one step with a request of two
messages and a reply, about 700 characters of words from a 2,000-word vocabulary, in
``--chats`` chats; one run in a thousand also mentions a rare word. It then starts
``chatdebug serve`` on a loopback port and times ``--repeat`` requests of each case
over HTTP with a keep-alive client, printing p50 and p95 (and the number of runs the
first page returned, at most 100).

It measures; it asserts nothing.

    python benchmarks/search_bench.py                     # 100,000 runs, both backends
    python benchmarks/search_bench.py --runs 10000 --backend sqlite
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.api_bench import database, serve
from chatdebug.store import BulkWrites, NewRun, NewStep, RunUpdate, bulk_writer, open_store

VOCABULARY = [f"w{n:04d}" for n in range(2000)]
COMMON = ["refund", "invoice", "weather", "password", "delivery"]
RARE = "zanzibar"
BATCH = 1000


def _text(rng: random.Random, words: int) -> str:
    picked = rng.choices(VOCABULARY, k=words)
    picked[rng.randrange(words)] = rng.choice(COMMON)
    return " ".join(picked)


def _message(role: str, text: str) -> dict[str, object]:
    return {"role": role, "parts": [{"type": "text", "text": text}]}


def fill(url: str, runs: int, chats: int) -> tuple[str, int]:
    """Write the runs; returns a chat id and how many runs mention the rare word."""
    rng = random.Random(7)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    rare = 0
    began = time.perf_counter()
    with closing(open_store(url)) as store:
        writer = bulk_writer(store)
        assert writer is not None
        for first in range(0, runs, BATCH):
            writes = BulkWrites()
            for i in range(first, min(first + BATCH, runs)):
                question = _text(rng, 12)
                if i % 1000 == 500:
                    question += f" {RARE}"
                    rare += 1
                moment = start + timedelta(seconds=i)
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
            with store.batch():
                if not writer.write_bulk(writes):
                    raise RuntimeError("bulk write refused")
        if store.backend == "postgresql":
            # What autovacuum does soon after a load this size: the planner needs the
            # statistics of the new rows to choose the index of a search.
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    "ANALYZE chat_debug_runs, chat_debug_steps, chat_debug_search, "
                    "chat_debug_run_models"
                )
    print(f"  filled {runs:,} runs in {time.perf_counter() - began:.0f} s")
    return "chat-7", rare


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--chats", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        print(f"{backend}, {args.runs:,} runs in {args.chats:,} chats:")
        with database(backend) as url:
            chat, rare = fill(url, args.runs, args.chats)
            with serve(url) as client:
                first = client.get("/api/debug/runs?limit=100").json()["next_cursor"]
                cases = [
                    ("list, first page", {}),
                    ("list, next page (cursor)", {"cursor": first}),
                    ("chat_id filter", {"chat_id": chat}),
                    (f"q: a rare word ({rare} runs)", {"q": RARE}),
                    ("q: a common word (~50% of runs)", {"q": "refund"}),
                    ("q: two words", {"q": "refund w0042"}),
                    ("q: word prefix", {"q": "w004"}),
                    ("q + chat_id", {"q": "w0042", "chat_id": chat}),
                    ("q matching nothing", {"q": "nothingmatchesthis"}),
                    ("model (requested name)", {"model": "gpt-4o-mini"}),
                    ("status=error + q", {"status": "error", "q": "invoice"}),
                ]
                for label, params in cases:
                    path = "/api/debug/runs?" + urlencode({"limit": 100, **params})
                    p50, p95, count = percentiles(client, path, args.repeat)
                    print(f"  {label:34} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  ({count} runs)")


if __name__ == "__main__":
    main()
