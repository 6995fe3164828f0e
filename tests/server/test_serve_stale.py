"""A real writer process is SIGKILLed in the middle of a run; ``chatdebug serve``'s stale
finalizer turns that run ``interrupted`` on its schedule and counts it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import pytest

from chatdebug.store import open_store
from tests.ops.serve_process import ROOT, ServeProcess

# Starts a run and a step, waits until both rows are written, reports the run id, then
# hangs in the middle of the run until killed.
_WRITER = """
import sys, time
import chatdebug
from chatdebug.store import open_store
from chatdebug.metrics import Metrics
url = sys.argv[1]
chatdebug.configure(url, enabled=True, metrics=Metrics())
with chatdebug.run(chat_id="killed-chat", user_id="u-1") as handle:
    with chatdebug.step(operation="generate"):
        chatdebug.flush()
        with open_store(url) as store:
            while not store.list_steps(handle.id):
                chatdebug.flush()
                time.sleep(0.05)
        print(handle.id, flush=True)
        time.sleep(600)
"""


@pytest.mark.slow
def test_a_killed_writers_run_is_interrupted_and_counted(database_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, database_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert writer.stdout is not None
        line = writer.stdout.readline()
        if not line:
            raise AssertionError(f"writer failed: {writer.stderr.read() if writer.stderr else ''}")
        run_id = uuid.UUID(line.strip())
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.communicate(timeout=10)  # reaps it and closes its pipes
    with open_store(database_url) as store:
        run = store.get_run(run_id)
        assert run is not None and run.status == "in_progress"

    args = ("--no-purge", "--stale-threshold", "2s", "--stale-interval", "1s")
    with ServeProcess(database_url, *args) as serve:
        stale = "chatdebug_stale_rows_finalized_total"
        serve.wait_for(
            lambda: serve.value(stale, record_type="chat_debug_runs") >= 1,
            timeout=60,
            what="the run to be finalized",
        )
        assert serve.value(stale, record_type="chat_debug_steps") >= 1
        assert serve.stop() == 0
    with open_store(database_url) as store:
        run = store.get_run(run_id)
        assert run is not None and run.status == "interrupted" and run.finished_at is not None
        assert {s.status for s in store.list_steps(run_id)} == {"interrupted"}
