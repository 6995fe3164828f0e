"""Change events, end to end: a real ``chatdebug serve`` streams to server-sent events
clients while this process writes.

``latency`` (per backend): a writer commits one run at a time (``--rate`` a second) in
this process, another process (``serve``) listens and streams, a client here reads the
stream; each run's latency is from the return of the committing ``create_run`` to its
``run_update`` arriving at the client (same clock). Prints p50 / p99 / max.

``fanout``: ``--subscribers`` clients (default 500, one asyncio process) on one
``serve`` while an application process writes ``--steps-per-second`` steps (each
created then finished, five per run) for ``--seconds``; then the same load with no
subscriber. Prints the application's achieved step rate and write latency for both,
how many subscribers got every change (every run with all its step numbers and its
final status), the resets, and ``serve``'s CPU (of one core) and peak RSS.

``cost``: what publishing costs the writer: the bulk write path (200 runs and their
steps created, then finished, five times) per row written, with the change-event
triggers and with them dropped, three times each, alternating.

It measures; it asserts nothing.

    python benchmarks/events_bench.py latency --backend sqlite
    python benchmarks/events_bench.py latency --backend postgresql
    python benchmarks/events_bench.py fanout --backend sqlite
    python benchmarks/events_bench.py fanout --backend postgresql [--without-first]
    python benchmarks/events_bench.py cost --backend sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chatdebug.store import (  # noqa: E402
    BulkWrites,
    NewRun,
    NewStep,
    RunUpdate,
    StepUpdate,
    bulk_writer,
    open_store,
)

TOKEN = "bench-token"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@contextmanager
def database(backend: str) -> Iterator[str]:
    """A URL of an empty, migrated database of ``backend``, removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/bench.db"
            open_store(url).close()
            yield url
        return
    dsn = os.environ.get("CHATDEBUG_TEST_POSTGRES_DSN", DEFAULT_DSN)
    schema = f"events_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        url = f"{dsn}?options=-csearch_path%3D{schema}"
        open_store(url).close()
        yield url
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def serve(url: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``chatdebug serve`` on ``url`` (its port and process)."""
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    process = subprocess.Popen(
        [sys.executable, "-m", "chatdebug", "serve", "--database-url", url, "--listen",
         f"127.0.0.1:{port}", "--no-purge", "--no-finalize", "--token", TOKEN],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    try:
        for _ in range(400):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield port, process
    finally:
        process.terminate()
        process.wait(30)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- latency ------------------------------------------------------------------------


def latency(backend: str, count: int, rate: float) -> dict[str, Any]:
    arrived: dict[str, float] = {}
    with database(backend) as url, serve(url) as (port, _):
        ready = threading.Event()

        def listen() -> None:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.stream(
                "GET", f"http://127.0.0.1:{port}/api/debug/events", headers=headers, timeout=None
            ) as response:
                ready.set()
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        data = json.loads(line[6:])
                        if data.get("run_id") and data["run_id"] not in arrived:
                            arrived[data["run_id"]] = time.perf_counter()
                    if len(arrived) >= count:
                        return

        reader = threading.Thread(target=listen, daemon=True)
        reader.start()
        ready.wait(30)
        time.sleep(0.5)
        committed: dict[str, float] = {}
        with closing(open_store(url)) as store:
            for _ in range(count):
                run = store.create_run(NewRun(chat_id="latency"))
                committed[str(run.id)] = time.perf_counter()
                time.sleep(1 / rate)
        reader.join(30)
    ms = [(arrived[r] - t) * 1000 for r, t in committed.items() if r in arrived]
    return {
        "backend": backend,
        "events": len(committed),
        "received": len(ms),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(percentile(ms, 0.99), 1),
        "max_ms": round(max(ms), 1),
    }


# -- fan-out ------------------------------------------------------------------------

_APP = """
import json, sys, time
from chatdebug.store import NewRun, NewStep, RunUpdate, StepUpdate, open_store
url, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
latencies, expected = [], {}
with open_store(url) as store:
    start = time.perf_counter()
    done = 0
    run = None
    while time.perf_counter() - start < seconds:
        if done % 5 == 0:
            if run is not None:
                store.update_run(RunUpdate(id=run.id, chat_id=run.chat_id, status="completed"))
            run = store.create_run(NewRun(chat_id=f"fanout-{done // 5 % 20}"))
            expected[str(run.id)] = 0
        t0 = time.perf_counter()
        step = store.create_step(NewStep(run_id=run.id, chat_id=run.chat_id, operation="chat"))
        store.update_step(StepUpdate(id=step.id, chat_id=run.chat_id, status="completed"))
        latencies.append((time.perf_counter() - t0) * 1000)
        expected[str(run.id)] = step.step_number
        done += 1
        pause = start + done / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    store.update_run(RunUpdate(id=run.id, chat_id=run.chat_id, status="completed"))
    elapsed = time.perf_counter() - start
print(json.dumps({"steps": done, "elapsed": elapsed, "latencies": latencies, "expected": expected}))
"""


def _app(url: str, rate: float, seconds: float) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _APP, url, str(rate), str(seconds)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout)
    lat = result.pop("latencies")
    result["steps_per_second"] = round(result["steps"] / result["elapsed"], 1)
    result["write_p50_ms"] = round(statistics.median(lat), 2)
    result["write_p99_ms"] = round(percentile(lat, 0.99), 2)
    return result


class _Subscriber:
    def __init__(self) -> None:
        self.seen: dict[str, tuple[set[int], str | None]] = {}
        self.resets = 0
        self.events = 0

    async def follow(self, port: int, stop: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /api/debug/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        buffer = b""
        while not stop.is_set():
            try:
                chunk = await asyncio.wait_for(reader.read(65536), 0.5)
            except TimeoutError:
                continue
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.startswith(b"event: reset"):
                    self.resets += 1
                if not line.startswith(b"data: "):
                    continue
                data = json.loads(line[6:])
                self.events += 1
                run_id = data.get("run_id")
                if run_id:
                    steps, _ = self.seen.get(run_id, (set(), None))
                    self.seen[run_id] = (steps | set(data["step_numbers"] or []), data["status"])
        writer.close()


def _sample(pid: int) -> tuple[float, int]:
    """CPU seconds used so far and the resident set (KiB) of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return cpu, rss


async def _fanout_phase(
    url: str, port: int, pid: int, subscribers: int, rate: float, seconds: float
) -> dict[str, Any]:
    stop = asyncio.Event()
    clients = [_Subscriber() for _ in range(subscribers)]
    tasks = [asyncio.create_task(c.follow(port, stop)) for c in clients]
    await asyncio.sleep(3.0)  # every subscriber connected
    cpu0, _ = _sample(pid)
    peak = 0
    wall0 = time.perf_counter()
    app = asyncio.get_running_loop().run_in_executor(None, _app, url, rate, seconds)
    while not app.done():
        peak = max(peak, _sample(pid)[1])
        await asyncio.sleep(0.5)
    result = await app
    expected: dict[str, int] = result.pop("expected")
    want = {r: (set(range(1, n + 1)), "completed") for r, n in expected.items()}
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        if all(all(c.seen.get(r) == w for r, w in want.items()) for c in clients):
            break
        await asyncio.sleep(0.5)
    cpu1, rss = _sample(pid)
    wall = time.perf_counter() - wall0
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    complete = sum(1 for c in clients if all(c.seen.get(r) == w for r, w in want.items()))
    return {
        **result,
        "subscribers": subscribers,
        "subscribers_with_every_change": complete,
        "resets": sum(c.resets for c in clients),
        "events_per_subscriber": round(statistics.mean(c.events for c in clients), 1)
        if clients
        else 0,
        "serve_cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / wall, 1),
        "serve_peak_rss_mib": round(max(peak, rss) / 1024, 1),
    }


def fanout(
    backend: str, subscribers: int, rate: float, seconds: float, without_first: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": backend}
    phases = [("with_subscribers", subscribers), ("without_subscribers", 0)]
    if without_first:
        phases.reverse()
    with database(backend) as url, serve(url) as (port, process):
        for name, count in phases:
            out[name] = asyncio.run(_fanout_phase(url, port, process.pid, count, rate, seconds))
    return out


# -- what publishing costs the writer --------------------------------------------------

_TRIGGERS = (
    ("chat_debug_changes_run_insert", "chat_debug_runs"),
    ("chat_debug_changes_run_update", "chat_debug_runs"),
    ("chat_debug_changes_run_delete", "chat_debug_runs"),
    ("chat_debug_changes_step_insert", "chat_debug_steps"),
    ("chat_debug_changes_step_update", "chat_debug_steps"),
)


def _drop_triggers(url: str) -> None:
    if url.startswith("sqlite:"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            for name, _ in (*_TRIGGERS, ("chat_debug_changes_trim", "")):
                conn.execute(f"DROP TRIGGER {name}")
            conn.commit()
        return
    with psycopg.connect(url, autocommit=True) as conn:
        for name, table in _TRIGGERS:
            conn.execute(f"DROP TRIGGER {name} ON {table}")


def _bulk_ms_per_row(url: str) -> float:
    times = []
    with closing(open_store(url)) as store:
        writer = bulk_writer(store)
        assert writer is not None
        for _ in range(5):
            runs = [NewRun(chat_id="cost") for _ in range(200)]
            steps = [
                NewStep(run_id=r.id, chat_id="cost", operation="chat", step_number=1) for r in runs
            ]
            started = time.perf_counter()
            writer.write_bulk(BulkWrites(new_runs=runs, new_steps=steps))
            writer.write_bulk(
                BulkWrites(
                    step_updates=[
                        StepUpdate(id=s.id, chat_id="cost", status="completed") for s in steps
                    ],
                    run_updates=[
                        RunUpdate(id=r.id, chat_id="cost", status="completed") for r in runs
                    ],
                )
            )
            times.append((time.perf_counter() - started) * 1000 / 400)
    return statistics.median(times)


def cost(backend: str) -> dict[str, Any]:
    found: dict[str, list[float]] = {"with_triggers": [], "without_triggers": []}
    for _ in range(3):
        for name in found:
            with database(backend) as url:
                if name == "without_triggers":
                    _drop_triggers(url)
                found[name].append(round(_bulk_ms_per_row(url), 3))
    return {"backend": backend, "bulk_ms_per_row": found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["latency", "fanout", "cost"])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--events", type=int, default=300, help="latency: runs written")
    parser.add_argument("--rate", type=float, default=20.0, help="latency: runs a second")
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--steps-per-second", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--without-first", action="store_true", help="fanout: the phase without subscribers first"
    )
    args = parser.parse_args()
    if args.what == "latency":
        result = latency(args.backend, args.events, args.rate)
    elif args.what == "cost":
        result = cost(args.backend)
    else:
        result = fanout(
            args.backend, args.subscribers, args.steps_per_second, args.seconds, args.without_first
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
