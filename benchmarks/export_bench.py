"""Exporter throughput and its cost to the application.

1. **Persisted steps/s**: runs of ``--steps`` steps with realistic attributes
   (~``--payload-kb`` JSON request and response per step, attempts, usage) are recorded
   as real spans through a ``StoreSpanProcessor``; the store events it produces are
   captured, then handed to a fresh background writer (default batch settings) writing
   to a fresh SQLite file / PostgreSQL schema. The clock runs from the first event
   queued until ``flush`` returns, i.e. until every row is written. Next to it, in the
   same repetition, the **same rows** (read back from that database) bulk-loaded into
   another fresh database by the fastest path the driver has (``COPY`` binary on
   PostgreSQL, ``executemany`` in one transaction on SQLite), timing only the load: the
   physical limit. Also shown: the end-to-end rate when the spans are created while the
   writer runs (application and writer sharing the interpreter).
2. **Application-side cost per call**: the same ``openai`` SDK call to a loopback server,
   bare (no chatdebug at all: the baseline), and inside ``chatdebug.run`` on
   ``chatdebug.httpx2_client()`` with the exporter detached (everything captured, spans
   dropped) and attached (captured and written to SQLite); interleaved rounds in a
   rotating order, medians of the per-round differences from the bare arm.

It measures; it asserts nothing::

    python benchmarks/export_bench.py                  # 1,000 runs x 5 steps, 3 repeats
    python benchmarks/export_bench.py --runs 200 --repeat 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from store_bench import (
    DEFAULT_DSN,
    Workload,
    fresh_postgres,
    fresh_sqlite,
    payloads,
)

from chatdebug import _spans as attr
from chatdebug.exporter import StoreSpanProcessor
from chatdebug.exporter._events import Event
from chatdebug.exporter._health import ExporterHealth
from chatdebug.exporter._writer import BackgroundWriter
from chatdebug.store import open_store


def _attempts() -> str:
    return json.dumps(
        [
            {
                "number": 1,
                "status": "completed",
                "method": "POST",
                "url": "https://api.openai.com/v1/chat/completions",
                "path": "/v1/chat/completions",
                "request_headers": {
                    "authorization": "[REDACTED]",
                    "content-type": "application/json",
                },
                "response_status": 200,
                "response_headers": {"content-type": "application/json"},
                "duration_ms": 412,
                "ttfb_ms": 380.5,
            }
        ]
    )


def record_spans(tracer: trace.Tracer, work: Workload) -> None:
    requests, responses = payloads(work)
    attempts = _attempts()
    usage = json.dumps({"input_tokens": 812, "output_tokens": 301, "total_tokens": 1113})
    request_json = [json.dumps(r) for r in requests]
    response_json = [json.dumps(r) for r in responses]
    for i in range(work.runs):
        run_id, chat_id = str(uuid.uuid4()), f"chat-{i % 100}"
        run = tracer.start_span(
            attr.RUN_SPAN,
            attributes={
                attr.RUN_ID: run_id,
                attr.CHAT_ID: chat_id,
                attr.RUN_KIND: "chat_turn",
                attr.RUN_FIRST_MESSAGE: "How do I tune my retries?",
            },
        )
        context = trace.set_span_in_context(run)
        for n in range(1, work.steps + 1):
            k = (i * work.steps + n) % len(requests)
            step = tracer.start_span(
                attr.STEP_SPAN,
                context=context,
                attributes={
                    attr.RUN_ID: run_id,
                    attr.CHAT_ID: chat_id,
                    attr.STEP_ID: str(uuid.uuid4()),
                    attr.STEP_NUMBER: n,
                    attr.STEP_OPERATION: "generate",
                    attr.STEP_NORMALIZED_REQUEST: request_json[k],
                },
            )
            step.set_attributes(
                {
                    attr.STEP_STATUS: "completed",
                    attr.STEP_NORMALIZED_RESPONSE: response_json[k],
                    attr.STEP_USAGE: usage,
                    attr.STEP_ATTEMPTS: attempts,
                }
            )
            step.end()
        run.set_attribute(attr.RUN_STATUS, "completed")
        run.end()


def _events(work: Workload) -> list[Event]:
    """The store events the processor makes of the benchmark's spans."""
    events: list[Event] = []
    processor = StoreSpanProcessor(open_store("sqlite:///:memory:"))
    processor._writer.put = lambda event: events.append(event) or True  # type: ignore[method-assign]
    provider = TracerProvider()
    provider.add_span_processor(processor)
    record_spans(provider.get_tracer("bench"), work)
    provider.shutdown()
    return events


def exporter_rate(url: str, work: Workload, events: list[Event]) -> float:
    """Steps/s from the first event queued until every row is written."""
    store = open_store(url)
    writer = BackgroundWriter(store, health=ExporterHealth(None), max_queue_size=len(events) + 100)
    try:
        start = time.perf_counter()
        for event in events:
            writer.put(event)
        if not writer.flush(600):
            raise RuntimeError("the exporter did not finish in time")
        return work.runs * work.steps / (time.perf_counter() - start)
    finally:
        writer.shutdown(10)
        store.close()


def end_to_end_rate(url: str, work: Workload) -> float:
    """Steps/s with the spans created while the writer runs, until all is written."""
    store = open_store(url)
    processor = StoreSpanProcessor(
        store,
        max_queue_size=work.runs * (work.steps + 1) * 2 + 100,
        stale_threshold=timedelta(minutes=5),
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    try:
        start = time.perf_counter()
        record_spans(provider.get_tracer("bench"), work)
        if not processor.force_flush(600_000):
            raise RuntimeError("the exporter did not finish in time")
        return work.runs * work.steps / (time.perf_counter() - start)
    finally:
        provider.shutdown()
        store.close()


def raw_load_sqlite(source: str, target: str) -> float:
    """Seconds to bulk-load every row of ``source`` into the empty ``target``."""
    open_store(target).close()  # same schema, indexes and PRAGMAs as the exporter's
    with closing(sqlite3.connect(source.removeprefix("sqlite:///"))) as conn:
        runs = conn.execute("SELECT * FROM chat_debug_runs").fetchall()
        steps = conn.execute("SELECT * FROM chat_debug_steps").fetchall()
    conn = sqlite3.connect(target.removeprefix("sqlite:///"), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        for table, rows in (("chat_debug_runs", runs), ("chat_debug_steps", steps)):
            marks = ", ".join("?" * len(rows[0]))
            conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        conn.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        conn.close()


def raw_load_postgres(source: str, target: str) -> float:
    """Seconds to bulk-load every row of ``source`` into the empty ``target``."""
    open_store(target).close()
    dumps: list[tuple[str, bytes]] = []
    with psycopg.connect(source) as conn, conn.cursor() as cur:
        for table in ("chat_debug_runs", "chat_debug_steps"):
            with cur.copy(f"COPY {table} TO STDOUT (FORMAT BINARY)") as copy:
                dumps.append((table, b"".join(bytes(block) for block in copy)))
    with psycopg.connect(target) as conn:
        start = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            for table, data in dumps:
                with cur.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(data)
        return time.perf_counter() - start


def throughput(
    name: str,
    fresh: Callable[[], Any],
    raw: Callable[[str, str], float],
    work: Workload,
    repeat: int,
) -> None:
    events = _events(work)
    rates, raw_rates, ratios, end_to_end = [], [], [], []
    for _ in range(repeat):
        with fresh() as url:
            rate = exporter_rate(url, work, events)
            with fresh() as target:
                raw_rate = work.runs * work.steps / raw(url, target)
        rates.append(rate)
        raw_rates.append(raw_rate)
        ratios.append(rate / raw_rate)
        with fresh() as url:
            end_to_end.append(end_to_end_rate(url, work))
    rate, raw_rate = statistics.median(rates), statistics.median(raw_rates)
    print(
        f"{name:<11} exporter    {rate:>9,.0f} steps/s persisted "
        f"({rate * (work.steps + 1) / work.steps:,.0f} rows/s)"
    )
    print(
        f"{name:<11} raw bulk    {raw_rate:>9,.0f} steps/s (the same rows)   "
        f"ratio {statistics.median(ratios):.3f} (median of per-repetition ratios)"
    )
    print(
        f"{name:<11} end to end  {statistics.median(end_to_end):>9,.0f} steps/s "
        "(spans created while the writer runs)"
    )


def app_cost(rounds: int, calls: int) -> None:
    import openai

    import chatdebug
    from chatdebug.instrument import InstrumentSettings, install
    from tests.fakes import wire
    from tests.fakes.server import FakeServer

    server = FakeServer()
    server.handler = lambda request: wire.openai_reply("x" * 800)
    settings: dict[str, Any] = {
        "base_url": server.url + "/v1",
        "api_key": "sk-bench",
        "max_retries": 0,
    }
    recording = openai.OpenAI(**settings, http_client=chatdebug.httpx2_client())
    bare = openai.OpenAI(**settings)
    messages: Any = [{"role": "user", "content": "hello " * 100}]
    arms = ("bare", "detached", "attached")
    with fresh_sqlite() as url:
        store = open_store(url)
        attached = TracerProvider()
        processor = StoreSpanProcessor(store, max_queue_size=1_000_000)
        attached.add_span_processor(processor)
        providers = {"detached": TracerProvider(), "attached": attached}
        results: dict[str, list[float]] = {arm: [] for arm in arms}

        def one_round(arm: str) -> float:
            if arm == "bare":
                start = time.perf_counter()
                for _ in range(calls):
                    with contextlib.nullcontext():
                        bare.chat.completions.create(model="m", messages=messages)
                return (time.perf_counter() - start) / calls * 1e6
            install(InstrumentSettings(tracer_provider=providers[arm], force_enabled=True))
            start = time.perf_counter()
            for _ in range(calls):
                with chatdebug.run("bench"):
                    recording.chat.completions.create(model="m", messages=messages)
            return (time.perf_counter() - start) / calls * 1e6

        for arm in arms:
            one_round(arm)  # warm up
        for number in range(rounds):
            # The order rotates so that a slow phase of the machine hits every arm alike.
            for arm in arms[number % 3 :] + arms[: number % 3]:
                results[arm].append(one_round(arm))
        processor.force_flush(60_000)
        attached.shutdown()
        store.close()
    server.close()
    install(InstrumentSettings())

    def delta(arm: str, base: str) -> float:
        return statistics.median(a - b for a, b in zip(results[arm], results[base], strict=True))

    bare_us = statistics.median(results["bare"])
    print(f"per call, bare SDK           {bare_us:8.0f} µs (no chatdebug)")
    print(
        f"per call, exporter detached  {statistics.median(results['detached']):8.0f} µs "
        f"(captured, spans dropped)   delta vs bare {delta('detached', 'bare'):+.0f} µs"
    )
    print(
        f"per call, exporter attached  {statistics.median(results['attached']):8.0f} µs "
        f"(captured, written to SQLite)   delta vs bare {delta('attached', 'bare'):+.0f} µs, "
        f"vs detached {delta('attached', 'detached'):+.0f} µs"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--payload-kb", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds for the cost")
    parser.add_argument("--calls", type=int, default=100, help="calls per round")
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args(argv)
    work = Workload(args.runs, args.steps, args.payload_kb)
    print(
        f"{args.runs} runs x {args.steps} steps, ~{args.payload_kb:g} KB request + response "
        f"per step, medians of {args.repeat}"
    )
    throughput("sqlite", fresh_sqlite, raw_load_sqlite, work, args.repeat)
    if not args.skip_postgres:
        throughput(
            "postgresql", lambda: fresh_postgres(args.dsn), raw_load_postgres, work, args.repeat
        )
    app_cost(args.rounds, args.calls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
