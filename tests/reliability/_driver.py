"""Test-side helpers: drive an application process, stall its store (a SQLite file locked
by another process, PostgreSQL behind a stopped proxy), count what reached the database,
and report figures."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.tcp_proxy import TCPProxy

ROOT = Path(__file__).resolve().parents[2]
EVENTS_PER_RUN = 2  # run_create, run_finish
EVENTS_PER_STEP = 2  # step_create, step_update


class AppProcess:
    """``tests/reliability/_app.py`` in its own interpreter (see its docstring)."""

    def __init__(self, options: dict[str, Any], log_path: Path) -> None:
        env = dict(os.environ)
        # The application runs as in production: our internal errors are swallowed.
        env.pop("CHATDEBUG_RAISE_INTERNAL_ERRORS", None)
        env["PYTHONUNBUFFERED"] = "1"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability._app", json.dumps(options)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self._messages: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for("ready", timeout=60)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            with self._cond:
                self._messages.append(message)
                self._cond.notify_all()
        with self._cond:
            self._messages.append({"event": "eof"})
            self._cond.notify_all()

    def send(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        self.proc.stdin.flush()

    def wait_for(
        self, event: str, *, timeout: float, where: Callable[[dict[str, Any]], bool] | None = None
    ) -> dict[str, Any]:
        """The first message ``event`` (matching ``where``) received so far or within
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for message in self._messages:
                    if message["event"] == event and (where is None or where(message)):
                        return message
                if any(m["event"] == "eof" for m in self._messages):
                    pytest.fail(f"application exited before {event!r}:\n{self.log()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"no {event!r} from the application in {timeout}s:\n{self.log()}")
                self._cond.wait(remaining)

    def received(self, event: str, *, timeout: float = 10.0) -> dict[str, Any] | None:
        """The first ``event`` message of a process that has exited, if it sent one
        (waits up to ``timeout`` seconds for its stdout to be read to the end)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(m["event"] == "eof" for m in self._messages):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"stdout of the application not closed in {timeout}s")
                self._cond.wait(remaining)
            return next((m for m in self._messages if m["event"] == event), None)

    def messages(self, event: str) -> list[dict[str, Any]]:
        """Every ``event`` message received so far."""
        with self._cond:
            return [m for m in self._messages if m["event"] == event]

    def progress(self) -> int:
        with self._cond:
            done = [m["done"] for m in self._messages if m["event"] == "progress"]
        return max(done, default=0)

    def wait_progress(self, at_least: int, timeout: float) -> None:
        self.wait_for("progress", timeout=timeout, where=lambda m: m["done"] >= at_least)

    def request(self, event: str, *, wait: float = 30.0, **command: Any) -> dict[str, Any]:
        """Send ``command`` and wait up to ``wait`` seconds for the *next* ``event``."""
        with self._cond:
            seen = len(self._messages)
        self.send(**command)
        deadline = time.monotonic() + wait
        with self._cond:
            while True:
                for message in self._messages[seen:]:
                    if message["event"] == event:
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0 or any(m["event"] == "eof" for m in self._messages[seen:]):
                    pytest.fail(f"no {event!r} answer to {command}:\n{self.stacks()}")
                self._cond.wait(remaining)

    def stacks(self) -> str:
        """The log, with every thread's stack at its end when the process still runs
        (``_app.py`` dumps them on SIGUSR1)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
        return self.log()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-6000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        self._log.close()


StartApp = Callable[..., AppProcess]


_LOCK_HOLDER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print(time.time(), flush=True)
    sys.stdin.readline()  # held until told (or the test ends)
    conn.execute("COMMIT")
    print(time.time(), flush=True)
    """
)


class SQLiteLock:
    """Another process holding an exclusive transaction on the database file."""

    def __init__(self, path: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _LOCK_HOLDER, path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.locked_at = float(self.proc.stdout.readline())

    def release(self) -> float:
        """Commit and let the process end; the wall-clock time of the commit."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        released_at = float(self.proc.stdout.readline())
        self.close()
        return released_at

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


class Stall:
    """Makes the store unusable and usable again: a SQLite file locked by another
    process, or PostgreSQL behind a stopped proxy."""

    def __init__(self, url: str, proxy: TCPProxy | None, direct_url: str) -> None:
        self.url = url
        self.direct_url = direct_url  # for the test's own reads, past the proxy
        self._proxy = proxy
        self._lock: SQLiteLock | None = None

    def begin(self) -> None:
        if self._proxy is not None:
            self._proxy.stop()
        else:
            self._lock = SQLiteLock(self.url.removeprefix("sqlite:///"))

    def end(self) -> None:
        if self._proxy is not None:
            self._proxy.start()
        elif self._lock is not None:
            self._lock.release()
            self._lock = None

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()


@dataclass
class RunsOutcome:
    """What the application saw of a batch of runs (its ``runs_done`` message)."""

    runs: list[dict[str, Any]]

    @property
    def errors(self) -> list[str]:
        return [r["error"] for r in self.runs if r["error"]]

    @property
    def run_ids(self) -> set[str]:
        return {r["run_id"] for r in self.runs if r["run_id"]}

    @property
    def calls(self) -> int:
        return sum(len(r["calls"]) for r in self.runs)

    @property
    def last_end(self) -> float:
        """Wall-clock time the last run block ended."""
        return max(r["run_block"][1] for r in self.runs)

    def slowest_call(self, start: float = 0.0, end: float = float("inf")) -> float:
        """Longest model call (seconds) that overlapped the wall-clock window, and the
        longest time a run block took beyond its calls (entering and leaving it)."""
        longest = 0.0
        for run in self.runs:
            spent = 0.0
            for call_start, call_end in run["calls"]:
                spent += call_end - call_start
                if call_end >= start and call_start <= end:
                    longest = max(longest, call_end - call_start)
            block_start, block_end = run["run_block"]
            if block_end >= start and block_start <= end:
                longest = max(longest, block_end - block_start - spent)
        return longest


def connect(url: str) -> Any:
    """A DB-API connection to the store behind ``url`` (sqlite3 or psycopg)."""
    if url.startswith("sqlite:///"):
        return sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=5)


def stored_rows(url: str, prefix: str) -> tuple[dict[str, str], dict[str, dict[int, str]]]:
    """Run id → status, and run id → {step number → status}, of the chats ``prefix-*``."""
    pattern = prefix + "-%"
    mark = "?" if url.startswith("sqlite:") else "%s"
    conn = connect(url)
    try:
        runs = {
            str(run_id): status
            for run_id, status in conn.execute(
                f"SELECT id, status FROM chat_debug_runs WHERE chat_id LIKE {mark}", (pattern,)
            ).fetchall()
        }
        steps: dict[str, dict[int, str]] = {}
        for run_id, number, status in conn.execute(
            f"SELECT run_id, step_number, status FROM chat_debug_steps WHERE chat_id LIKE {mark}",
            (pattern,),
        ).fetchall():
            steps.setdefault(str(run_id), {})[number] = status
        return runs, steps
    finally:
        conn.close()


def status_counts(url: str, prefix: str) -> dict[str, dict[str, int]]:
    """How many runs and steps of the chats ``prefix-*`` are in each status."""
    runs, steps = stored_rows(url, prefix)
    counts: dict[str, dict[str, int]] = {"runs": {}, "steps": {}}
    for status in runs.values():
        counts["runs"][status] = counts["runs"].get(status, 0) + 1
    for numbers in steps.values():
        for status in numbers.values():
            counts["steps"][status] = counts["steps"].get(status, 0) + 1
    return counts


def completed_counts(url: str, prefix: str) -> tuple[int, int]:
    """Completed runs and completed steps of the chats ``prefix-*``."""
    pattern = prefix + "-%"
    mark = "?" if url.startswith("sqlite:") else "%s"
    conn = connect(url)
    try:
        (runs,) = conn.execute(
            f"SELECT count(*) FROM chat_debug_runs WHERE chat_id LIKE {mark} "
            "AND status = 'completed'",
            (pattern,),
        ).fetchone()
        (steps,) = conn.execute(
            f"SELECT count(*) FROM chat_debug_steps WHERE chat_id LIKE {mark} "
            "AND status = 'completed'",
            (pattern,),
        ).fetchone()
        return int(runs), int(steps)
    finally:
        conn.close()


def wait_until(check: Callable[[], bool], *, timeout: float) -> float | None:
    """Poll ``check`` every 100 ms until it is true; the wall-clock time it became so,
    or ``None`` after ``timeout`` seconds (the caller reports its figures, then fails)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return time.time()
        except Exception:  # the database may still be coming back
            pass
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


def since(start: float, end: float | None) -> float | str:
    """Seconds from ``start`` to ``end``, or ``"never"`` for a wait that timed out."""
    return "never" if end is None else end - start


def missing_events(
    outcome: RunsOutcome, steps_per_run: int, runs: dict[str, str], steps: dict[str, dict[int, str]]
) -> int:
    """Events of ``outcome`` that the database does not reflect: a missing run row costs
    its create and finish and its steps' events, an unfinished one its finish; a missing
    step row costs its create and update, an unfinished one its update."""
    missing = 0
    for run in outcome.runs:
        run_id = run["run_id"]
        status = runs.get(run_id)
        if status is None:
            missing += EVENTS_PER_RUN + EVENTS_PER_STEP * steps_per_run
            continue
        if status == "in_progress":
            missing += 1
        run_steps = steps.get(run_id, {})
        for number in range(1, steps_per_run + 1):
            step_status = run_steps.get(number)
            if step_status is None:
                missing += EVENTS_PER_STEP
            elif step_status == "in_progress":
                missing += 1
    return missing


def assert_all_written(outcome: RunsOutcome, steps_per_run: int, url: str, prefix: str) -> None:
    """Every run the application recorded is stored completed with all its steps."""
    runs, steps = stored_rows(url, prefix)
    lost_runs = [r for r in outcome.run_ids if runs.get(r) != "completed"]
    lost_steps = [
        (r, n)
        for r in outcome.run_ids
        for n in range(1, steps_per_run + 1)
        if steps.get(r, {}).get(n) != "completed"
    ]
    assert (len(lost_runs), len(lost_steps)) == (0, 0), (lost_runs[:5], lost_steps[:5])


def figure(record_property: Callable[[str, object], None], name: str, **values: object) -> None:
    """Print a figure line (shown by ``pytest -s``) and attach it to the test report."""
    text = ", ".join(
        f"{key}={value:.2f}" if isinstance(value, float) else f"{key}={value}"
        for key, value in values.items()
    )
    print(f"\nFIGURE {name}: {text}")
    for key, value in values.items():
        record_property(f"{name}.{key}", value)
