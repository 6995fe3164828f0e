"""A week of traffic in an hour: one application process records for a long time while
``chatdebug serve`` purges and finalizes; does memory stay flat, do threads or file
descriptors leak, and is every run accounted for?

The application (this script with ``--app``, a process of its own) makes runs through the
real ``openai`` SDK on chatdebug's httpx2 client against a loopback provider, at
``--rate`` runs a second on 4 threads, cycling through five shapes: a plain completion,
a stream, a tool call and its follow-up, a call the provider rejects (the SDK raises,
the run ends ``error``), and a completion followed by a stream. Every ``--sample``
seconds it reports its RSS, what ``tracemalloc`` traces (and the top allocation sites),
its threads and open file descriptors, and its counters.

Beside it, ``chatdebug serve`` purges and finalizes stale runs every 20 s
(``--purge-interval``), and this script gives them work: every 30 s
(``--seed-interval``) it stores 200 completed runs last updated 40
days ago (past the 30-day retention: the purge removes them) and 20 in-progress runs
idle for 10 minutes (the finalizer interrupts them).

At the end: the memory slope after warm-up (least squares over the samples after the
first ``--warmup`` minutes), thread and descriptor counts, and the accounting: the
application's runs against its rows in the database (plus events counted as dropped),
the aged runs against what the purge removed, the idle runs against what the finalizer
interrupted. It measures and prints; it asserts nothing::

    python benchmarks/soak_bench.py --store sqlite --minutes 30
    python benchmarks/soak_bench.py --store postgresql --minutes 30 --json soak-pg.json

PostgreSQL: ``$CHATDEBUG_TEST_POSTGRES_DSN`` (default the local server, database
``test``), in a new schema dropped afterwards. With PostgreSQL the application uses
the spill journal, as it does by default.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
SHAPES = ("completion", "stream", "tool_call", "rejected", "completion_then_stream")
CALLS = {"completion": 1, "stream": 1, "tool_call": 2, "rejected": 1, "completion_then_stream": 2}
AGED_PER_ROUND = 200
IDLE_PER_ROUND = 20
SEED_INTERVAL = 30.0


# -- the application process ------------------------------------------------------------


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _top_sites(snapshot: tracemalloc.Snapshot, limit: int = 5) -> list[str]:
    stats = snapshot.statistics("lineno")[:limit]
    return [
        f"{stat.traceback[0].filename.removeprefix(str(ROOT) + '/')}:"
        f"{stat.traceback[0].lineno} {stat.size // 1024} KiB in {stat.count}"
        for stat in stats
    ]


def _app(options: dict[str, Any]) -> None:
    import genai_prices.data  # noqa: F401 - the price database, imported by the writer
    import openai
    from prometheus_client import CollectorRegistry

    import chatdebug
    from chatdebug.metrics import DROP_REASONS, Metrics

    # Traced from here: what the imports allocate is not what a soak looks for (and
    # under tracing, importing the price database takes a minute instead of 0.02 s).
    tracemalloc.start(1)

    metrics = Metrics(CollectorRegistry())
    chatdebug.configure(options["url"], enabled=True, metrics=metrics, **options["configure"])
    client = openai.OpenAI(
        base_url=options["provider"] + "/v1",
        api_key="sk-soak-benchmark-key",
        http_client=chatdebug.httpx2_client(),
        max_retries=0,
    )
    counts = {"runs": 0, "completed": 0, "error": 0, "unexpected": 0, "calls": 0}
    lock = threading.Lock()
    stop = threading.Event()
    deadline = time.monotonic() + options["seconds"]
    rate = float(options["rate"])
    began = time.monotonic()
    next_index = 0

    def one(index: int) -> None:
        shape = SHAPES[index % len(SHAPES)]
        chat = f"soak-{index % 500}"
        ok = True
        try:
            with chatdebug.run(chat, user_id=f"u-{index % 50}", first_message=f"{shape} {index}"):
                messages: list[Any] = [{"role": "user", "content": f"{shape} please, #{index}"}]
                if shape in ("completion", "completion_then_stream", "tool_call", "rejected"):
                    reply = client.chat.completions.create(model="gpt-4o", messages=messages)
                    if shape == "tool_call":
                        call = reply.choices[0].message.tool_calls[0]  # type: ignore[index]
                        messages += [
                            reply.choices[0].message.model_dump(exclude_none=True),
                            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
                        ]
                        client.chat.completions.create(model="gpt-4o", messages=messages)
                if shape in ("stream", "completion_then_stream"):
                    stream = client.chat.completions.create(
                        model="gpt-4o", messages=messages, stream=True
                    )
                    for _ in stream:
                        pass
        except openai.BadRequestError:
            ok = False  # the provider rejected it on purpose: the run is an error
        except Exception:
            with lock:
                counts["unexpected"] += 1
            ok = False
        with lock:
            counts["runs"] += 1
            counts["calls"] += CALLS[shape]
            counts["completed" if ok else "error"] += 1

    def worker() -> None:
        nonlocal next_index
        while not stop.is_set():
            with lock:
                index = next_index
                next_index += 1
            due = began + index / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if time.monotonic() >= deadline:
                return
            one(index)

    def emit(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    def sample(final: bool = False) -> None:
        snapshot = tracemalloc.take_snapshot()
        traced, peak = tracemalloc.get_traced_memory()
        get = metrics.registry.get_sample_value
        with lock:
            state = dict(counts)
        emit(
            {
                "event": "final" if final else "sample",
                "t": time.monotonic() - began,
                "rss_kib": _rss_kib(),
                "traced_kib": traced // 1024,
                "traced_peak_kib": peak // 1024,
                "threads": threading.active_count(),
                "os_threads": len(os.listdir("/proc/self/task")),
                "fds": _fds(),
                "top": _top_sites(snapshot),
                "top_chatdebug": _top_sites(
                    snapshot.filter_traces(
                        [tracemalloc.Filter(True, str(ROOT / "chatdebug") + "/*")]
                    )
                ),
                "dropped": {
                    r: get("chatdebug_exporter_events_dropped_total", {"reason": r}) or 0
                    for r in DROP_REASONS
                },
                "spilled": get("chatdebug_spill_events_total") or 0,
                "queue_depth": get("chatdebug_exporter_queue_depth") or 0,
                **state,
            }
        )

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    interval = float(options["sample"])
    next_sample = time.monotonic() + interval
    sample()
    while any(thread.is_alive() for thread in threads):
        time.sleep(0.2)
        if time.monotonic() >= next_sample:
            next_sample += interval
            sample()
    stop.set()
    chatdebug.flush(60)
    sample(final=True)
    chatdebug.shutdown()


# -- the orchestrator ----------------------------------------------------------------------


def _provider() -> Any:
    from tests.fakes import wire
    from tests.fakes.server import FakeServer, Reply

    def handle(request: Any) -> Reply:
        body = json.loads(request.body or b"{}")
        text = json.dumps(body.get("messages", []))
        if "rejected" in text:
            return wire.openai_error_reply(400, "this request is rejected", "invalid_request")
        if body.get("stream"):
            return wire.openai_stream_reply(["Soak", " test", " answer", "."])
        if "tool_call please" in text and '"role": "tool"' not in text:
            return wire.openai_reply(
                tool_calls=[{"id": "call_1", "name": "weather", "arguments": {"city": "Paris"}}]
            )
        return wire.openai_reply("A plain answer for the soak test.")

    server = FakeServer()
    server.handler = handle
    return server


@contextlib.contextmanager
def _database(store: str, tmp: Path, dsn: str) -> Iterator[str]:
    if store == "sqlite":
        yield f"sqlite:///{tmp / 'soak.db'}"
    else:
        from store_bench import fresh_postgres

        with fresh_postgres(dsn) as url:
            yield url


def _seed(url: str, stop: threading.Event, seeded: dict[str, int], interval: float) -> None:
    """Every ``interval`` seconds: aged runs for the purge, idle ones for the finalizer."""
    from chatdebug.store import NewRun, NewStep, RunUpdate, open_store

    while not stop.wait(interval if seeded["rounds"] else min(5.0, interval)):
        now = datetime.now(UTC)
        aged_at, idle_at = now - timedelta(days=40), now - timedelta(minutes=10)
        aged = open_store(url, clock=lambda at=aged_at: at)  # type: ignore[misc]
        idle = open_store(url, clock=lambda at=idle_at: at)  # type: ignore[misc]
        try:
            with aged.batch():
                for _ in range(AGED_PER_ROUND):
                    run = aged.create_run(NewRun(chat_id="aged", kind="chat_turn"))
                    aged.create_step(NewStep(run_id=run.id, chat_id="aged", operation="generate",
                                             normalized_request={"messages": ["old"]}))  # fmt: skip
                    aged.update_run(RunUpdate(id=run.id, chat_id="aged", status="completed"))
            with idle.batch():
                for _ in range(IDLE_PER_ROUND):
                    idle.create_run(NewRun(chat_id="idle", kind="chat_turn"))
        finally:
            aged.close()
            idle.close()
        seeded["aged"] += AGED_PER_ROUND
        seeded["idle"] += IDLE_PER_ROUND
        seeded["rounds"] += 1


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(x, y)`` points (0 for fewer than two)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0


def _count(url: str, sql: str) -> int:
    if url.startswith("sqlite:"):
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return int(conn.execute(sql).fetchone()[0])
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
        return int(row[0]) if row else 0


def _serve_metric(port: int, name: str, **labels: str) -> float:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    from tests.ops.serve_process import free_port

    with tempfile.TemporaryDirectory() as tmp_dir, contextlib.ExitStack() as stack:
        tmp = Path(tmp_dir)
        url = stack.enter_context(_database(args.store, tmp, args.dsn))
        from chatdebug.store import open_store

        open_store(url).close()
        provider = _provider()
        stack.callback(provider.close)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHATDEBUG_")}
        env["PYTHONPATH"] = str(ROOT)
        serve_log = (tmp / "serve.log").open("w")
        serve = subprocess.Popen(
            [sys.executable, "-m", "chatdebug", "serve", "--database-url", url,
             "--listen", f"127.0.0.1:{port}", "--purge-interval", f"{args.purge_interval}s",
             "--stale-interval", f"{args.purge_interval}s", "--stale-threshold", "5m"],
            env=env, stdout=serve_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        serve_exit: list[int] = []
        stack.callback(lambda: serve_exit.append(serve.wait(30)))
        stack.callback(serve.terminate)
        seeded = {"aged": 0, "idle": 0, "rounds": 0}
        stop = threading.Event()
        seeder = threading.Thread(
            target=_seed, args=(url, stop, seeded, args.seed_interval), daemon=True
        )
        seeder.start()
        configure: dict[str, Any] = {}
        if args.store == "postgresql":
            configure["spill_path"] = str(tmp / "spill.db")
        options = {
            "url": url,
            "provider": provider.url,
            "seconds": args.minutes * 60,
            "rate": args.rate,
            "sample": args.sample,
            "configure": configure,
        }
        app = subprocess.Popen(
            [sys.executable, __file__, "--app", json.dumps(options)],
            env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        samples: list[dict[str, Any]] = []
        final: dict[str, Any] = {}
        assert app.stdout is not None
        for line in app.stdout:
            message = json.loads(line)
            if message["event"] == "final":
                final = message
            else:
                samples.append(message)
                print(
                    f"  t={message['t'] / 60:5.1f} min  rss={message['rss_kib'] / 1024:7.1f} MiB  "
                    f"traced={message['traced_kib'] / 1024:6.1f} MiB  threads={message['threads']}"
                    f"  fds={message['fds']}  runs={message['runs']}",
                    flush=True,
                )
        app.wait()
        stop.set()
        seeder.join(timeout=120)
        time.sleep(args.purge_interval + 5)  # one more purge and finalizer tick after the last seed
        purged = _serve_metric(port, "chatdebug_purge_records_removed_total",
                               record_type="chat_debug_runs")  # fmt: skip
        finalized = _serve_metric(port, "chatdebug_stale_rows_finalized_total",
                                  record_type="chat_debug_runs")  # fmt: skip
        stored = _count(url, "SELECT count(*) FROM chat_debug_runs WHERE chat_id LIKE 'soak-%'")
        open_left = _count(
            url,
            "SELECT count(*) FROM chat_debug_runs WHERE chat_id LIKE 'soak-%' "
            "AND status = 'in_progress'",
        )
        aged_left = _count(url, "SELECT count(*) FROM chat_debug_runs WHERE chat_id = 'aged'")
        idle_open = _count(
            url,
            "SELECT count(*) FROM chat_debug_runs WHERE chat_id = 'idle' "
            "AND status = 'in_progress'",
        )

    # After the warm-up, while the traffic runs (the last samples may see it wind down).
    warm = [s for s in samples if args.warmup * 60 <= s["t"] <= args.minutes * 60 - 1]
    result = {
        "store": args.store,
        "minutes": args.minutes,
        "rate_runs_per_s": args.rate,
        "runs": final.get("runs"),
        "calls": final.get("calls"),
        "caller_unexpected_exceptions": final.get("unexpected"),
        "runs_completed": final.get("completed"),
        "runs_error": final.get("error"),
        "runs_stored": stored,
        "runs_left_in_progress": open_left,
        "events_dropped": final.get("dropped"),
        "events_spilled": final.get("spilled"),
        "aged_seeded": seeded["aged"],
        "aged_purged": purged,
        "aged_left": aged_left,
        "idle_seeded": seeded["idle"],
        "idle_finalized": finalized,
        "idle_left_open": idle_open,
        "rss_mib_first_last": [
            round(samples[0]["rss_kib"] / 1024, 1),
            round(samples[-1]["rss_kib"] / 1024, 1),
        ]
        if samples
        else None,
        "rss_slope_kib_per_min": round(_slope([(s["t"] / 60, s["rss_kib"]) for s in warm]), 1),
        "traced_slope_kib_per_min": round(
            _slope([(s["t"] / 60, s["traced_kib"]) for s in warm]), 1
        ),
        "threads_min_max": [min(s["threads"] for s in warm), max(s["threads"] for s in warm)]
        if warm
        else None,
        "fds_min_max": [min(s["fds"] for s in warm), max(s["fds"] for s in warm)] if warm else None,
        "top_sites_last": samples[-1]["top"] if samples else None,
        "top_chatdebug_sites_last": samples[-1]["top_chatdebug"] if samples else None,
        "samples": samples,
        "serve_exit": serve_exit,
    }
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", help=argparse.SUPPRESS)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=10.0, help="runs a second (default 10)")
    parser.add_argument("--sample", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=5.0, help="minutes left out of the slope")
    parser.add_argument(
        "--purge-interval",
        type=float,
        default=20.0,
        help="seconds between purge ticks and between finalizer ticks of serve",
    )
    parser.add_argument(
        "--seed-interval",
        type=float,
        default=SEED_INTERVAL,
        help="seconds between rounds of aged and idle runs",
    )
    parser.add_argument("--dsn", default=os.environ.get("CHATDEBUG_TEST_POSTGRES_DSN", DEFAULT_DSN))
    parser.add_argument("--json", help="also write the result (with every sample) to this file")
    args = parser.parse_args(argv)
    if args.app:
        _app(json.loads(args.app))
        return
    print(f"soak: {args.store}, {args.minutes:g} min at {args.rate:g} runs/s", flush=True)
    result = orchestrate(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    shown = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(shown, indent=2))


if __name__ == "__main__":
    main()
