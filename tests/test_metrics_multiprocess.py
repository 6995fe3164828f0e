"""Metrics of the application process: one call exposes what ``configure()`` records, on
its own port or mounted on the application's server, and under prometheus_client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, gunicorn/uvicorn workers) any worker
answers for all of them."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

import chatdebug
from chatdebug.metrics import Metrics
from tests.ops.serve_process import ROOT, free_port
from tests.support import require_tool

# A worker of an instrumented application: records ``runs`` runs through configure()'s
# default metrics, optionally serves /metrics, then waits for its stdin to close.
_WORKER = """
import sys
import chatdebug
url, runs, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
chatdebug.configure(url, enabled=True)
for i in range(runs):
    with chatdebug.run(chat_id=f"chat-{runs}-{i}", user_id="u-1"):
        pass
assert chatdebug.flush(10)
if port:
    chatdebug.start_metrics_server(port)
print("ready", flush=True)
sys.stdin.read()
chatdebug.shutdown()
"""


def _values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.slow
def test_two_workers_in_multiprocess_mode_are_scraped_as_one(tmp_path: Path) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHATDEBUG_")},
        "PYTHONPATH": str(ROOT),
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
    }
    url = f"sqlite:///{tmp_path / 'app.db'}"
    port = free_port()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, url, str(runs), str(serving)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for runs, serving in ((2, port), (3, 0))
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            line = worker.stdout.readline()
            assert line.strip() == "ready", worker.stderr.read() if worker.stderr else ""
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            text = reply.read().decode()
    finally:
        outputs = [w.communicate(timeout=30) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs

    values = _values(text)
    written = "chatdebug_exporter_events_written_total"
    assert values[(written, (("kind", "run_create"),))] == 5  # 2 + 3: summed, not one worker's
    assert values[(written, (("kind", "run_finish"),))] == 5
    # Label values exist before any occurrence, in every worker's files.
    dropped = "chatdebug_exporter_events_dropped_total"
    assert values[(dropped, (("reason", "queue_full"),))] == 0
    promtool = require_tool("promtool")
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, check=False
    )
    assert lint.returncode == 0, lint.stdout.decode() + lint.stderr.decode()


def test_the_asgi_and_wsgi_apps_expose_the_registry_configure_records_into(
    sqlite_url: str,
) -> None:
    config = chatdebug.configure(sqlite_url, enabled=True)
    try:
        with chatdebug.run(chat_id="asgi-chat", user_id="u-1"):
            pass
        assert chatdebug.flush(10)
        expected = config.metrics.registry.get_sample_value(
            "chatdebug_exporter_events_written_total", {"kind": "run_create"}
        )
        assert expected is not None and expected >= 1

        app = Starlette(routes=[Mount("/metrics", app=chatdebug.metrics_asgi_app())])
        with TestClient(app) as client:
            body = client.get("/metrics/").text
        assert (
            _values(body)[("chatdebug_exporter_events_written_total", (("kind", "run_create"),))]
            == expected
        )

        captured: list[str] = []
        wsgi = chatdebug.metrics_wsgi_app()
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": ""}
        chunks = wsgi(environ, lambda status, headers: captured.append(status))
        assert captured == ["200 OK"]
        assert b"chatdebug_exporter_events_written_total" in b"".join(chunks)
    finally:
        chatdebug.shutdown()


def test_a_registry_of_your_own_can_be_exposed_instead() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.purge_records_removed.labels(record_type="chat_debug_runs").inc(7)
    port = free_port()
    server, thread = chatdebug.start_metrics_server(port, registry=metrics.registry)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            body = reply.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    key = ("chatdebug_purge_records_removed_total", (("record_type", "chat_debug_runs"),))
    assert _values(body)[key] == 7
