"""How fast recording catches up after a PostgreSQL outage.

An application records ``--runs`` runs of ``--steps`` model calls on ``--threads``
threads through the real ``openai`` SDK (chatdebug's httpx2 client, a loopback
provider) into PostgreSQL reached through a TCP proxy (``tests/fakes/tcp_proxy.py``, in a
process of its own). After a quarter of the runs the
proxy cuts every connection and refuses new ones for ``--outage`` seconds, then lets
them through again. Printed: the slowest call while the database was down, the seconds
from the database's return until ``chatdebug.flush()`` returns True (everything queued
is written), and what reached the database (runs and steps, against what was
recorded). It measures; it asserts nothing::

    python benchmarks/outage_bench.py                 # 300 runs x 3 steps, 6 threads, 8 s
    python benchmarks/outage_bench.py --outage 30 --runs 1000

PostgreSQL: ``$CHATDEBUG_TEST_POSTGRES_DSN`` (default the local server, database
``test``), in a new schema dropped afterwards.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import openai
import psycopg
from prometheus_client import CollectorRegistry
from store_bench import DEFAULT_DSN, fresh_postgres

import chatdebug
from chatdebug.metrics import Metrics
from tests.fakes import wire
from tests.fakes.server import FakeServer

_PROXY_CHILD = """
import sys
from tests.fakes.tcp_proxy import TCPProxy
proxy = TCPProxy(sys.argv[1], int(sys.argv[2]))
print(proxy.port, flush=True)
for line in sys.stdin:
    getattr(proxy, line.strip())()
    print("ok", flush=True)
"""


class ProxyProcess:
    """:class:`~tests.fakes.tcp_proxy.TCPProxy` in a process of its own, so that its
    forwarding threads do not compete with the application for the interpreter lock."""

    def __init__(self, host: str, port: int) -> None:
        root = Path(__file__).resolve().parents[1]
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _PROXY_CHILD, host, str(port)],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        self.port = int(self._proc.stdout.readline())

    def _command(self, name: str) -> None:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(name + "\n")
        self._proc.stdin.flush()
        self._proc.stdout.readline()

    def stop(self) -> None:
        self._command("stop")

    def start(self) -> None:
        self._command("start")

    def rewrite_url(self, url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self._proc.kill()
        self._proc.wait()


def _count(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        runs = conn.execute("SELECT count(*) FROM chat_debug_runs").fetchone()
        steps = conn.execute("SELECT count(*) FROM chat_debug_steps").fetchone()
    return (runs[0] if runs else 0), (steps[0] if steps else 0)


def measure(dsn: str, runs: int, steps: int, threads: int, outage: float) -> dict[str, float]:
    server = FakeServer()
    server.handler = lambda request: wire.openai_reply("x" * 200)
    target = urllib.parse.urlsplit(dsn)
    host, port = target.hostname or "127.0.0.1", target.port or 5432
    with fresh_postgres(dsn) as url, ProxyProcess(host, port) as proxy:
        metrics = Metrics(CollectorRegistry())
        chatdebug.configure(proxy.rewrite_url(url), enabled=True, metrics=metrics)
        client = openai.OpenAI(
            base_url=server.url + "/v1",
            api_key="sk-outage-bench",
            http_client=chatdebug.httpx2_client(),
            max_retries=0,
        )
        lock = threading.Lock()
        finished = 0
        down_at: float | None = None
        up_at: float | None = None
        slowest_during = 0.0

        def restore() -> None:
            nonlocal up_at
            time.sleep(outage)
            proxy.start()
            up_at = time.monotonic()

        def one_run(index: int) -> None:
            nonlocal finished, down_at, slowest_during
            with chatdebug.run(f"outage-{index}", first_message=f"run {index}"):
                for number in range(steps):
                    started = time.monotonic()
                    client.chat.completions.create(
                        model="gpt-4o",
                        messages=[{"role": "user", "content": f"run {index} step {number}"}],
                    )
                    took = time.monotonic() - started
                    if down_at is not None and up_at is None:
                        with lock:
                            slowest_during = max(slowest_during, took)
            with lock:
                finished += 1
                if finished == runs // 4 and down_at is None:
                    proxy.stop()
                    down_at = time.monotonic()
                    threading.Thread(target=restore, daemon=True).start()

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one_run, range(runs)))
        while up_at is None:
            time.sleep(0.01)
        flushed = chatdebug.flush(600)
        caught_up = time.monotonic() - up_at
        stored_runs, stored_steps = _count(url)
        chatdebug.shutdown()
    server.close()
    return {
        "flushed": float(flushed),
        "recovery_seconds": caught_up,
        "slowest_call_ms": slowest_during * 1000,
        "runs": stored_runs,
        "steps": stored_steps,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--outage", type=float, default=8.0, help="seconds the database is cut")
    parser.add_argument("--dsn", default=os.environ.get("CHATDEBUG_TEST_POSTGRES_DSN", DEFAULT_DSN))
    parser.add_argument("-v", "--verbose", action="store_true", help="show chatdebug's log")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR)
    result = measure(args.dsn, args.runs, args.steps, args.threads, args.outage)
    print(
        f"{args.runs} runs x {args.steps} steps on {args.threads} threads, PostgreSQL cut "
        f"for {args.outage:g} s after a quarter of the runs"
    )
    print(f"slowest call while the database was down  {result['slowest_call_ms']:8.1f} ms")
    print(
        f"from the database's return to flush() True {result['recovery_seconds']:8.2f} s"
        f"{'' if result['flushed'] else ' (flush timed out)'}"
    )
    print(
        f"in the database: {result['runs']:.0f} / {args.runs} runs, "
        f"{result['steps']:.0f} / {args.runs * args.steps} steps"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
