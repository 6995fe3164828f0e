"""Exit flush in real processes: what is queued at exit is written within
``exit_flush_timeout``; what cannot be written by then is counted and logged once; a
server stopped by SIGTERM through its graceful shutdown gets the same."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from chatdebug.store import open_store
from tests.exporter.support import writes_blocked

pytestmark = pytest.mark.slow  # every test runs a child interpreter

ROOT = Path(__file__).resolve().parents[2]

_RECORDER = """
import atexit, sys
import chatdebug
from chatdebug.metrics import Metrics
from prometheus_client import CollectorRegistry

metrics = Metrics(CollectorRegistry())

def report():  # registered first, so it runs after chatdebug's own exit hook
    dropped = metrics.registry.get_sample_value(
        "chatdebug_exporter_events_dropped_total", {{"reason": "shutdown"}})
    print(f"dropped-at-shutdown {{dropped:.0f}}", flush=True)

atexit.register(report)
chatdebug.configure({url!r}, enabled=True, metrics=metrics{extra})
for i in range({runs}):
    with chatdebug.run(f"exit-{{i}}", first_message="hello"):
        with chatdebug.step():
            pass
print("recorded", flush=True)
"""


def _child(script: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _completed_runs(url: str, prefix: str) -> int:
    store = open_store(url)
    try:
        runs = store.list_recent_runs(limit=1000)
    finally:
        store.close()
    return sum(1 for run in runs if run.chat_id.startswith(prefix) and run.status == "completed")


def test_exit_waits_for_a_blocked_store_within_the_timeout(database_url: str) -> None:
    open_store(database_url).close()  # schema in place before the lock is taken
    child = _child(_RECORDER.format(url=database_url, runs=30, extra=", exit_flush_timeout=60"))
    assert child.stdout is not None
    with writes_blocked(database_url):
        assert child.stdout.readline().strip() == "recorded"
        time.sleep(0.5)  # the child is exiting now, its writer waiting on the lock
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert "dropped-at-shutdown 0" in out
    assert "could not write" not in err
    assert _completed_runs(database_url, "exit-") == 30


def test_exit_gives_up_after_the_timeout_counts_and_logs_once(database_url: str) -> None:
    open_store(database_url).close()
    # The timeout from the environment variable this time.
    child = _child(
        _RECORDER.format(url=database_url, runs=10, extra=""),
        env={"CHATDEBUG_EXIT_FLUSH_TIMEOUT": "0.5"},
    )
    with writes_blocked(database_url):
        # The lock is held until the child has exited: it must give up on its own.
        out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    lines = re.findall(r"could not write (\d+) queued debug event\(s\)", err)
    assert len(lines) == 1, err
    dropped = re.search(r"dropped-at-shutdown (\d+)", out)
    assert dropped is not None, out
    # Every event of the ten runs (each run and its step created and finished).
    assert int(lines[0]) == int(dropped.group(1)) >= 10 * 2
    assert _completed_runs(database_url, "exit-") == 0


_SERVER = """
import socket
import uvicorn
import chatdebug

chatdebug.configure({url!r}, enabled=True, exit_flush_timeout=60)

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    with chatdebug.run("served-" + scope["path"].strip("/"), first_message="hi"):
        with chatdebug.step():
            pass
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": b"ok"}})

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(64)
print(listener.getsockname()[1], flush=True)
# uvicorn turns SIGTERM into its graceful shutdown, then raises it again (the process
# ends killed by SIGTERM, which runs no atexit hook: chatdebug's handler flushes first).
uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off")).run(sockets=[listener])
"""


def test_sigterm_through_a_graceful_server_shutdown_writes_what_is_queued(
    database_url: str,
) -> None:
    open_store(database_url).close()
    child = _child(_SERVER.format(url=database_url))
    assert child.stdout is not None
    port = int(child.stdout.readline())
    with writes_blocked(database_url):
        for n in range(20):
            assert httpx.get(f"http://127.0.0.1:{port}/{n}", timeout=30).text == "ok"
        child.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # shutting down; its writer waits on the lock
    _, err = child.communicate(timeout=60)
    # uvicorn re-raises the SIGTERM after its graceful shutdown (older versions return).
    assert child.returncode in (0, -signal.SIGTERM), err
    assert "could not write" not in err
    assert _completed_runs(database_url, "served-") == 20
