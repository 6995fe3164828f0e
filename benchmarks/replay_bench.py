"""How fast a spill journal is written into PostgreSQL, alone: the writer's drain rate.

First a journal is filled: an application records ``--runs`` runs of 2 model calls on 8
threads (the real ``openai`` SDK on chatdebug's httpx2 client, a loopback provider)
while its PostgreSQL URL points at a port where nothing listens, so every event goes to
the journal, and exits (the journal keeps them). Then, ``--rounds`` times, a copy of
that journal is replayed (:func:`chatdebug.exporter.replay_spill`, the writer's own
drain, as ``chatdebug replay-spill`` runs it) into a fresh schema. Printed: the events,
each round's seconds and events a second, and the median. It measures; it asserts
nothing::

    python benchmarks/replay_bench.py                  # 3,400 runs: 20,400 events
    python benchmarks/replay_bench.py --rounds 5 --profile

``--profile`` prints where the writer thread spent its time in the last round.

PostgreSQL: ``$CHATDEBUG_TEST_POSTGRES_DSN`` (default the local server, database
``test``), in new schemas dropped afterwards.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import shutil
import socket
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import openai
from store_bench import DEFAULT_DSN, fresh_postgres

import chatdebug
from chatdebug.exporter import _writer, replay_spill
from chatdebug.store import open_store
from tests.fakes import wire
from tests.fakes.server import FakeServer


def fill(path: str, runs: int) -> None:
    """Record ``runs`` runs with the database unreachable: all of it lands in ``path``."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    server = FakeServer()
    server.handler = lambda request: wire.openai_reply("x" * 200)
    chatdebug.configure(
        f"postgresql://postgres@127.0.0.1:{port}/test",
        enabled=True,
        # Room for everything: recording flat out, the application leaves the
        # background threads too little of the interpreter to journal it all as it comes.
        queue_size=100_000,
        spill_path=path,
    )
    client = openai.OpenAI(
        base_url=server.url + "/v1",
        api_key="sk-replay-bench",
        http_client=chatdebug.httpx2_client(),
        max_retries=0,
    )

    def one(index: int) -> None:
        with chatdebug.run(f"replay-{index}", first_message=f"run {index}"):
            for number in range(2):
                client.chat.completions.create(
                    model="gpt-4o",
                    messages=[{"role": "user", "content": f"run {index} step {number} hello"}],
                )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(runs)))
    chatdebug.shutdown()
    server.close()


def replay(
    journal: str, dsn: str, work: str, profile: cProfile.Profile | None
) -> tuple[int, float]:
    """Replay a copy of ``journal`` into a fresh schema: events written and seconds."""
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    copy = os.path.join(work, "spill.db")
    shutil.copy(journal, copy)
    original = _writer.BackgroundWriter._write_journaled

    def profiled(self: Any) -> None:
        assert profile is not None
        profile.enable()
        try:
            original(self)
        finally:
            profile.disable()

    with fresh_postgres(dsn) as url:
        store = open_store(url)
        if profile is not None:
            _writer.BackgroundWriter._write_journaled = profiled  # type: ignore[method-assign]
        try:
            started = time.perf_counter()
            report = replay_spill(copy, store)
            seconds = time.perf_counter() - started
        finally:
            _writer.BackgroundWriter._write_journaled = original  # type: ignore[method-assign]
            store.close()
    if report.remaining or report.dropped:
        print(f"  (not all written: {report.remaining} left, dropped {report.dropped})")
    return report.replayed, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3_400, help="runs of 2 calls (6 events)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="profile the last round")
    parser.add_argument("--dsn", default=os.environ.get("CHATDEBUG_TEST_POSTGRES_DSN", DEFAULT_DSN))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    with tempfile.TemporaryDirectory() as tmp:
        journal = os.path.join(tmp, "journal", "spill.db")
        os.makedirs(os.path.dirname(journal))
        fill(journal, args.runs)
        rates = []
        profile = cProfile.Profile() if args.profile else None
        for round_number in range(args.rounds):
            last = round_number == args.rounds - 1
            events, seconds = replay(journal, args.dsn, os.path.join(tmp, "work"),
                                     profile if last else None)  # fmt: skip
            rates.append(events / seconds)
            print(f"round {round_number + 1}: {events} events in {seconds:.2f} s "
                  f"= {events / seconds:,.0f} events/s", flush=True)  # fmt: skip
    print(f"median {statistics.median(rates):,.0f} events/s over {args.rounds} rounds")
    if profile is not None:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(20)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
