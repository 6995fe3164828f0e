"""Test support for the event streams: a server-sent events client on a thread of its
own, and an application process that records runs while a test watches."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = ["ROOT", "SSEClient", "SSEEvent", "covered", "write_runs"]

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SSEEvent:
    id: str | None
    kind: str
    data: dict[str, Any]


class SSEClient:
    """Reads ``base + path`` as a stream of server-sent events on a thread; ``events``
    grows as they arrive; ``ended`` is set when the server ends the stream."""

    def __init__(
        self,
        base: str,
        path: str,
        token: str | None = None,
        last_event_id: str | None = None,
    ) -> None:
        headers = {"Accept": "text/event-stream"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.events: list[SSEEvent] = []
        self.comments = 0
        self.status: int | None = None
        self.ended = threading.Event()
        self.opened = threading.Event()
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=httpx.Timeout(10.0, read=None))
        self._request = self._client.build_request("GET", base + path, headers=headers)
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self.opened.wait(15), f"no answer from {path}"

    def _read(self) -> None:
        try:
            self._response = self._client.send(self._request, stream=True)
            self.status = self._response.status_code
            self.opened.set()
            fields: dict[str, list[str]] = {}
            for line in self._response.iter_lines():
                if line == "":
                    if "data" in fields:
                        event = SSEEvent(
                            fields.get("id", [None])[-1],
                            fields.get("event", ["message"])[-1],
                            json.loads("\n".join(fields["data"])),
                        )
                        with self._lock:
                            self.events.append(event)
                    fields = {}
                elif line.startswith(":"):
                    self.comments += 1
                else:
                    name, _, value = line.partition(":")
                    fields.setdefault(name, []).append(value.removeprefix(" "))
        except (httpx.HTTPError, OSError, ValueError):
            pass
        finally:
            self.opened.set()
            self.ended.set()

    def snapshot(self) -> list[SSEEvent]:
        with self._lock:
            return list(self.events)

    @property
    def last_id(self) -> str | None:
        ids = [e.id for e in self.snapshot() if e.id is not None]
        return ids[-1] if ids else None

    def wait_for(self, condition: Callable[[list[SSEEvent]], Any], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = condition(self.snapshot())
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"events never satisfied the condition: {self.snapshot()[-10:]}")

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
        self._client.close()
        self._thread.join(10)


def covered(events: list[SSEEvent]) -> dict[str, tuple[set[int], str | None]]:
    """Per run id: the step numbers its events named, and its last status."""
    seen: dict[str, tuple[set[int], str | None]] = {}
    for event in events:
        if event.kind != "run_update":
            continue
        steps, _ = seen.get(event.data["run_id"], (set(), None))
        seen[event.data["run_id"]] = (
            steps | set(event.data["step_numbers"] or []),
            event.data["status"],
        )
    return seen


_WRITER = """
import sys, time, uuid
from chatdebug.store import NewRun, NewStep, RunUpdate, StepUpdate, open_store
url, prefix, count, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
with open_store(url) as store:
    for i in range(count):
        run = store.create_run(NewRun(chat_id=f"{prefix}-{i % 3}", user_id=f"u-{i % 2}"))
        for n in (1, 2):
            step = store.create_step(NewStep(run_id=run.id, chat_id=run.chat_id, operation="chat"))
            store.update_step(StepUpdate(id=step.id, chat_id=run.chat_id, status="completed"))
        store.update_run(RunUpdate(id=run.id, chat_id=run.chat_id, status="completed"))
        print(run.id, flush=True)
        time.sleep(pause)
"""


def write_runs(url: str, prefix: str, count: int, pause: float = 0.02) -> list[uuid.UUID]:
    """An application process records ``count`` runs of two steps each (chats
    ``<prefix>-0..2``, users ``u-0``/``u-1``); returns their ids."""
    done = subprocess.run(
        [sys.executable, "-c", _WRITER, url, prefix, str(count), str(pause)],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=True,
    )  # fmt: skip
    return [uuid.UUID(line) for line in done.stdout.split()]


def raw_stream(port: int, path: str, token: str | None) -> socket.socket:
    """A subscriber that asks for a stream and then reads nothing: a tiny receive
    buffer, so the server's sends stall at once."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
        f"{auth}\r\n".encode()
    )
    return sock


def read_all(sock: socket.socket, timeout: float = 30.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
