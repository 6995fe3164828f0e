"""How fast the spill journal drains once PostgreSQL is back after a long outage.

An application records runs of ``--steps`` model calls at ``--rate`` calls a second on
8 threads through the real ``openai`` SDK (chatdebug's httpx2 client, a loopback
provider) into PostgreSQL reached through a TCP proxy (in a process of its own), with a
write queue of ``--queue`` events and the spill journal on. After 5 s the proxy cuts
every connection and refuses new ones for ``--outage`` seconds; traffic goes on
through the outage and for ``--after`` seconds after the database's return. Printed:
the events spilled and replayed, and the seconds from the database's return until the
writer wrote again, until every run recorded before the return was stored complete
(the backlog), until the journal was empty and until everything was written. It
measures; it asserts nothing::

    python benchmarks/spill_drain_bench.py                      # 120 s at 50 calls/s
    python benchmarks/spill_drain_bench.py --outage 30 --rate 200 --profile

``--profile`` prints where the writer thread spent its time from the return until the
journal was empty (``cProfile`` of that thread, cumulative), and the timeline of the
batches it wrote from the journal.

PostgreSQL: ``$CHATDEBUG_TEST_POSTGRES_DSN`` (default the local server, database
``test``), in a new schema dropped afterwards.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import openai
import psycopg
from outage_bench import ProxyProcess
from prometheus_client import CollectorRegistry
from store_bench import DEFAULT_DSN, fresh_postgres

import chatdebug
from chatdebug.exporter import _writer
from chatdebug.metrics import DROP_REASONS, Metrics
from tests.fakes import wire
from tests.fakes.server import FakeServer

_LEAD = 5.0  # seconds of traffic before the cut


class _Timeline:
    """Start, end and size of every batch the writer wrote from the journal."""

    def __init__(self) -> None:
        self.batches: list[tuple[float, float, int]] = []
        self.profile: cProfile.Profile | None = None
        self.profiling = False


def _instrument(timeline: _Timeline, profile: bool) -> None:
    original = _writer.BackgroundWriter._write_journaled

    def write_journaled(self: Any) -> None:
        before = self._health.replayed_total
        started = time.time()
        if profile and timeline.profiling:
            if timeline.profile is None:
                timeline.profile = cProfile.Profile()
            timeline.profile.enable()
            try:
                original(self)
            finally:
                timeline.profile.disable()
        else:
            original(self)
        written = self._health.replayed_total - before
        if written:
            timeline.batches.append((started, time.time(), written))

    _writer.BackgroundWriter._write_journaled = write_journaled  # type: ignore[method-assign]


def _completed(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        runs = conn.execute(
            "SELECT count(*) FROM chat_debug_runs WHERE status = 'completed'"
        ).fetchone()
        steps = conn.execute(
            "SELECT count(*) FROM chat_debug_steps WHERE status = 'completed'"
        ).fetchone()
    return (runs[0] if runs else 0), (steps[0] if steps else 0)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    server = FakeServer()
    server.handler = lambda request: wire.openai_reply("x" * 200)
    target = urllib.parse.urlsplit(args.dsn)
    host, port = target.hostname or "127.0.0.1", target.port or 5432
    timeline = _Timeline()
    _instrument(timeline, args.profile)
    runs = int((_LEAD + args.outage + args.after) * args.rate / args.steps)
    with (
        fresh_postgres(args.dsn) as url,
        ProxyProcess(host, port) as proxy,
        tempfile.TemporaryDirectory() as tmp,
    ):
        metrics = Metrics(CollectorRegistry())
        chatdebug.configure(
            proxy.rewrite_url(url),
            enabled=True,
            metrics=metrics,
            queue_size=args.queue,
            spill_path=os.path.join(tmp, "spill.db"),
        )
        get = metrics.registry.get_sample_value
        client = openai.OpenAI(
            base_url=server.url + "/v1",
            api_key="sk-drain-bench",
            http_client=chatdebug.httpx2_client(),
            max_retries=0,
        )
        ended: list[float] = [0.0] * runs
        began = time.monotonic()

        def one_run(index: int) -> None:
            delay = began + index * args.steps / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with chatdebug.run(f"drain-{index}", first_message=f"run {index}"):
                for number in range(args.steps):
                    client.chat.completions.create(
                        model="gpt-4o",
                        messages=[{"role": "user", "content": f"run {index} step {number}"}],
                    )
            ended[index] = time.time()

        pool = ThreadPoolExecutor(8)
        done = pool.map(one_run, range(runs))
        time.sleep(_LEAD)
        proxy.stop()
        time.sleep(args.outage)
        spilled_at_return = get("chatdebug_spill_events_total") or 0.0
        journal_at_return = get("chatdebug_spill_journal_events") or 0.0
        timeline.profiling = True
        restored = time.time()
        proxy.start()
        # Runs recorded before the return: the journal's backlog.
        backlog = sum(1 for at in ended if 0 < at < restored)
        first_write = backlog_at = empty_at = None
        while empty_at is None or backlog_at is None:
            now = time.time()
            if first_write is None and get("chatdebug_store_reachable") == 1:
                first_write = now
            if backlog_at is None and _completed(url)[0] >= backlog:
                backlog_at = time.time()
            if empty_at is None and not get("chatdebug_spill_journal_events"):
                empty_at = now
            if now - restored > 600:
                break
            time.sleep(0.05)
        timeline.profiling = False
        list(done)
        pool.shutdown()
        last_run = max(ended)
        flushed = chatdebug.flush(600)
        all_at = time.time()
        stored = _completed(url)
        result = {
            "runs": runs,
            "stored": stored,
            "flushed": flushed,
            "spilled": get("chatdebug_spill_events_total") or 0.0,
            "spilled_at_return": spilled_at_return,
            "journal_at_return": journal_at_return,
            "replayed": get("chatdebug_spill_replayed_events_total") or 0.0,
            "dropped": sum(
                get("chatdebug_exporter_events_dropped_total", {"reason": reason}) or 0.0
                for reason in DROP_REASONS
            ),
            "backlog_runs": backlog,
            "first_write_s": None if first_write is None else first_write - restored,
            "backlog_s": None if backlog_at is None else backlog_at - restored,
            "journal_empty_s": None if empty_at is None else empty_at - restored,
            "all_after_last_run_s": all_at - max(last_run, restored),
        }
        chatdebug.shutdown()
    server.close()
    if timeline.batches:
        _print_timeline(timeline, restored)
    if timeline.profile is not None:
        out = io.StringIO()
        pstats.Stats(timeline.profile, stream=out).sort_stats("cumulative").print_stats(35)
        print(out.getvalue())
    return result


def _print_timeline(timeline: _Timeline, restored: float) -> None:
    after = [b for b in timeline.batches if b[1] >= restored]
    if not after:
        return
    busy = sum(end - start for start, end, _ in after)
    events = sum(n for _, _, n in after)
    span = after[-1][1] - after[0][0]
    print(
        f"journal batches after the return: {len(after)}, {events} events, "
        f"first began {after[0][0] - restored:.2f} s after the return, last ended "
        f"{after[-1][1] - restored:.2f} s; writing them {busy:.2f} s of {span:.2f} s "
        f"({events / busy if busy else 0:.0f} events/s while writing)"
    )
    for start, end, count in after:
        print(f"  +{start - restored:6.2f} s  {count:5d} events in {end - start:5.3f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outage", type=float, default=120.0, help="seconds the database is cut")
    parser.add_argument("--rate", type=float, default=50.0, help="model calls a second")
    parser.add_argument("--steps", type=int, default=2, help="calls per run")
    parser.add_argument("--queue", type=int, default=2_000, help="write queue size")
    parser.add_argument("--after", type=float, default=10.0, help="seconds of traffic after")
    parser.add_argument("--profile", action="store_true", help="profile the writer's drain")
    parser.add_argument("--dsn", default=os.environ.get("CHATDEBUG_TEST_POSTGRES_DSN", DEFAULT_DSN))
    parser.add_argument("-v", "--verbose", action="store_true", help="show chatdebug's log")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR)
    r = measure(args)
    print(
        f"PostgreSQL cut for {args.outage:g} s under {args.rate:g} calls/s "
        f"({r['runs']} runs x {args.steps} calls), queue {args.queue}, spill journal on"
    )
    print(
        f"events spilled {r['spilled']:.0f} ({r['spilled_at_return']:.0f} by the return, "
        f"{r['journal_at_return']:.0f} in the journal then), replayed {r['replayed']:.0f}, "
        f"dropped {r['dropped']:.0f}"
    )

    def secs(value: float | None) -> str:
        return "never" if value is None else f"{value:.2f} s"

    print(f"after the return: writing again     {secs(r['first_write_s'])}")
    print(f"  backlog ({r['backlog_runs']} runs) stored     {secs(r['backlog_s'])}")
    print(f"  journal empty                     {secs(r['journal_empty_s'])}")
    print(f"everything written after last run   {secs(r['all_after_last_run_s'])}")
    print(
        f"in the database: {r['stored'][0]} / {r['runs']} runs, "
        f"{r['stored'][1]} / {r['runs'] * args.steps} steps completed"
        f"{'' if r['flushed'] else ' (flush timed out)'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
