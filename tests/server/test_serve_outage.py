"""The database goes away under a running ``chatdebug serve`` (a TCP proxy in front of
PostgreSQL is cut) and comes back: the failed ticks are observed with
``success="false"``, ``/readyz`` turns 503, the process stays up, and purging resumes."""

from __future__ import annotations

import pytest

from chatdebug.store import open_store
from tests.fakes.tcp_proxy import TCPProxy
from tests.ops.serve_process import ServeProcess
from tests.ops.support import NOW, runs_aged
from tests.store.support import FakeClock, count
from tests.support import require_postgres


@pytest.mark.slow
def test_serve_survives_the_database_going_away_and_resumes(pg_url: str) -> None:
    require_postgres()
    with open_store(pg_url) as store:
        store.set_retention_days(30)
    host_port = pg_url.split("@", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    with TCPProxy(host, int(port or 5432)) as proxy:
        proxied = proxy.rewrite_url(pg_url)
        args = ("--purge-interval", "1s", "--stale-interval", "1s")
        with ServeProcess(proxied, *args) as serve:
            serve.wait_for(lambda: serve.iterations("true") >= 1, what="a successful tick")
            assert serve.get("/readyz")[0] == 200

            proxy.stop()
            serve.wait_for(lambda: serve.iterations("false") >= 1, timeout=60, what="a failed tick")
            status, reason = serve.get("/readyz")
            assert status == 503
            assert reason.count("\n") == 1
            assert reason.startswith(("store unreachable", "store did not answer"))
            assert serve.get("/healthz") == (200, "ok\n")
            assert serve.proc.poll() is None

            proxy.start()
            clock = FakeClock(NOW)
            with open_store(pg_url, clock=clock) as store:  # straight to the database
                runs_aged(store, clock, days=40, count=4, steps=3, finished=True)
            serve.wait_for(
                lambda: serve.removed("chat_debug_runs") >= 4, timeout=60, what="purging again"
            )
            assert serve.removed("chat_debug_steps") >= 12
            serve.wait_for(lambda: serve.get("/readyz")[0] == 200, timeout=30, what="ready again")
            assert serve.stop() == 0
    assert count(pg_url, "chat_debug_runs") == 0
