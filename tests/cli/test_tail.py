"""``chatdebug tail`` as a real process on both stores: it follows runs and steps as
another process records them, filters, and ends cleanly on Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chatdebug.store import NewRun, NewStep, RunUpdate, StepUpdate, Store, open_store
from tests.cli.support import ROOT, cli_env

pytestmark = pytest.mark.slow


class Tail:
    """``chatdebug tail *args`` with its stdout read line by line on a thread."""

    def __init__(self, url: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chatdebug", "tail", "--database-url", url, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=cli_env(),
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert self.proc.stderr is not None
        # The first line on stderr says it follows: from then on nothing is missed.
        assert "following" in self.proc.stderr.readline()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, condition: Callable[[list[str]], Any], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = condition(list(self.lines))
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"tail never printed what was expected: {self.lines}")

    def __enter__(self) -> Tail:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.stop()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Ctrl-C
        code = self.proc.wait(30)
        self._reader.join(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return code


@pytest.fixture
def url_and_store(database_url: str) -> Iterator[tuple[str, Store]]:
    store = open_store(database_url)
    try:
        yield database_url, store
    finally:
        store.close()


def _record_turn(
    store: Store, chat: str, *, fail: bool = False, in_flight: Callable[[], Any] | None = None
) -> str:
    """A run with one streamed step: started, its progress recorded, then finished.
    ``in_flight`` is called while the step is in progress."""
    run = store.create_run(NewRun(chat_id=chat, user_id="u-1", model="gpt-4o"))
    step = store.create_step(NewStep(run_id=run.id, chat_id=chat, operation="stream"))
    progress = {"chunks": 3, "text_chars": 11, "time_to_first_chunk_ms": 9.0, "text": "Hello there"}
    store.update_step(StepUpdate(id=step.id, chat_id=chat, metadata={"stream_progress": progress}))
    if in_flight is not None:
        in_flight()
    reply = {"content": [{"type": "text", "text": "Hello there, general Kenobi. " * 4}]}
    store.update_step(
        StepUpdate(
            id=step.id,
            chat_id=chat,
            status="error" if fail else "completed",
            usage={"input_tokens": 12, "output_tokens": 7},
            normalized_response=reply,
            metadata={},
        )
    )
    status = "error" if fail else "completed"
    store.update_run(RunUpdate(id=run.id, chat_id=chat, status=status))
    return str(run.id)


def _events(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


def test_tail_json_follows_runs_and_steps(url_and_store: tuple[str, Store]) -> None:
    url, store = url_and_store
    with Tail(url, "--json") as tail:

        def progress_shown() -> None:
            tail.wait_for(lambda lines: any("step_progress" in line for line in lines))

        run_id = _record_turn(store, "c-live", in_flight=progress_shown)

        def finished(lines: list[str]) -> bool:
            return any(e["event"] == "run_finished" for e in _events(lines))

        tail.wait_for(finished)
        assert tail.stop() == 0
    events = [e for e in _events(tail.lines) if e.get("run_id") == run_id]
    names = [e["event"] for e in events]
    assert names[0] == "run_started" and names[-1] == "run_finished"
    assert names.index("step_started") < names.index("step_finished")
    finished_step = next(e for e in events if e["event"] == "step_finished")
    assert finished_step["step_number"] == 1
    assert finished_step["status"] == "completed"
    assert (finished_step["input_tokens"], finished_step["output_tokens"]) == (12, 7)
    assert finished_step["reply"].startswith("Hello there, general Kenobi.")
    assert finished_step["reply"].endswith("…")  # the first words only
    assert isinstance(finished_step["duration_ms"], int)
    assert all(e["chat_id"] == "c-live" for e in events)
    assert next(e for e in events if e["event"] == "run_finished")["status"] == "completed"
    progress = next(e for e in events if e["event"] == "step_progress")
    assert (progress["chunks"], progress["text_chars"], progress["reply"]) == (3, 11, "Hello there")
    assert progress["status"] == "in_progress"
    assert names.index("step_started") < names.index("step_progress") < names.index("step_finished")


def test_tail_filters_by_chat_and_status_and_prints_text(
    url_and_store: tuple[str, Store],
) -> None:
    url, store = url_and_store
    with (
        Tail(url, "--chat", "mine") as chat_only,
        Tail(url, "--json", "--status", "error") as errors_only,
    ):
        _record_turn(store, "other")
        mine = _record_turn(store, "mine", fail=True)
        chat_only.wait_for(lambda lines: any("run finished" in line for line in lines))
        errors_only.wait_for(lambda lines: any("run_finished" in line for line in lines))
        assert chat_only.stop() == 0
        assert errors_only.stop() == 0
    assert all("chat mine" in line for line in chat_only.lines)
    assert any("step 1 finished  error" in line for line in chat_only.lines)
    assert any(f"run {mine[:8]}" in line for line in chat_only.lines)
    events = _events(errors_only.lines)
    assert {e["status"] for e in events} == {"error"}
    assert {e["event"] for e in events} == {"step_finished", "run_finished"}
    assert {e["run_id"] for e in events} == {mine}
