"""How much a SIGKILL loses with the spill journal on: the loss window, over several kills.

Each round starts an application process (``tests/reliability/_app.py``: the real
``openai`` SDK on chatdebug's client against a loopback provider) recording into the
store with ``spill_handoff=--handoff``, runs of 2 calls at 60 calls a second on 6
threads, each run announcing the time it started. Once 100 runs are done the store is
stalled (SQLite: another process holds an exclusive transaction on the file;
PostgreSQL: a TCP proxy cuts every connection), so that everything recorded from then on
can only survive in the journal; 2 s later the process is killed with SIGKILL. The
stall ends, the next process configured with the same journal path replays it, and the
runs that started but have no row in the database are the lost ones. A round's window is
how long before the kill the oldest lost run started (0 when none was lost). Printed: each
round's window and runs lost, then the median and the maximum per store. It measures;
it asserts nothing::

    python benchmarks/sigkill_window.py                        # 5 kills on each store
    python benchmarks/sigkill_window.py --rounds 10 --store sqlite

PostgreSQL: ``$CHATDEBUG_TEST_POSTGRES_DSN`` (default the local server, database
``test``), in a new schema dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from store_bench import DEFAULT_DSN, fresh_postgres

from chatdebug.store import open_store
from tests.fakes import wire
from tests.fakes.server import FakeServer
from tests.fakes.tcp_proxy import TCPProxy
from tests.reliability._driver import AppProcess, Stall, stored_rows

STEPS = 2


def one_kill(url: str, stall: Stall, provider: str, tmp: Path, handoff: float) -> dict[str, Any]:
    options = {"spill_path": str(tmp / "spill.db"), "spill_handoff": handoff}
    open_store(url).close()
    app = AppProcess(
        {"url": stall.url, "provider": provider, "configure": options}, tmp / "app.log"
    )
    successor: AppProcess | None = None
    try:
        app.send(cmd="runs", count=2_000, steps=STEPS, threads=6, prefix="kill", rate=60.0,
                 announce=True)  # fmt: skip
        app.wait_progress(100, timeout=120)
        stall.begin()
        time.sleep(2.0)
        killed_at = time.time()
        app.proc.kill()
        app.proc.wait(timeout=30)
        stall.end()
        started = {m["run_id"]: m["at"] for m in app.messages("run_started")}
        successor = AppProcess(
            {"url": stall.url, "provider": provider, "configure": options}, tmp / "next.log"
        )
        successor.request("flushed", cmd="flush", timeout=60)
        runs, _ = stored_rows(stall.direct_url, "kill")
        lost = [killed_at - at for run_id, at in started.items() if run_id not in runs]
        return {"started": len(started), "lost": len(lost), "window": max(lost, default=0.0)}
    finally:
        stall.close()
        app.close()
        if successor is not None:
            successor.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="kills per store")
    parser.add_argument("--store", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--handoff", type=float, default=0.25, help="spill_handoff (s)")
    parser.add_argument("--dsn", default=os.environ.get("CHATDEBUG_TEST_POSTGRES_DSN", DEFAULT_DSN))
    args = parser.parse_args(argv)
    stores = ["sqlite", "postgresql"] if args.store == "both" else [args.store]
    server = FakeServer()
    server.handler = lambda request: wire.openai_reply("ok")
    windows: dict[str, list[float]] = {store: [] for store in stores}
    try:
        for round_number in range(args.rounds):
            for store in stores:
                with tempfile.TemporaryDirectory() as tmp:
                    if store == "sqlite":
                        url = f"sqlite:///{tmp}/chatdebug.db"
                        result = one_kill(url, Stall(url, None, url), server.url, Path(tmp),
                                          args.handoff)  # fmt: skip
                    else:
                        target = urllib.parse.urlsplit(args.dsn)
                        with (
                            fresh_postgres(args.dsn) as url,
                            TCPProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy,
                        ):
                            stall = Stall(proxy.rewrite_url(url), proxy, url)
                            result = one_kill(stall.url, stall, server.url, Path(tmp), args.handoff)
                windows[store].append(result["window"])
                print(
                    f"round {round_number + 1} {store:10s} runs started {result['started']:4d}, "
                    f"lost {result['lost']:2d}, window {result['window']:.3f} s",
                    flush=True,
                )
    finally:
        server.close()
    print(f"spill_handoff {args.handoff} s; loss window (oldest lost run's start before the kill):")
    for store, values in windows.items():
        print(
            f"  {store:10s} median {statistics.median(values):.3f} s, max {max(values):.3f} s "
            f"over {len(values)} kills"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
