"""The loopback OpenAI-compatible server the overhead benchmarks call, in a process of
its own, and the one request they make of it.

It answers ``POST /v1/chat/completions`` from precomputed bytes over HTTP/1.1 keep-alive:
a fixed completion, or (when the body asks for ``"stream": true``) a stream of 22 content
chunks, a finish chunk, a usage chunk and ``[DONE]``, one write per SSE event as
providers do. ``python benchmarks/loopback_openai.py PORT_FILE`` runs it until killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

MODEL = "gpt-4o-mini"
MESSAGES: Any = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Say hello to the benchmark."},
]
WORDS = ["Hello", " there", ",", " benchmark", "!"] * 4 + [" Bye", "."]  # 22 chunks
ANSWER = "".join(WORDS)
USAGE = {"prompt_tokens": 21, "completion_tokens": len(WORDS), "total_tokens": 21 + len(WORDS)}


def completion_body() -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ANSWER},
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }
    return json.dumps(body).encode()


def stream_events() -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
        body: dict[str, Any] = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": MODEL,
            "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage:
            body["usage"] = usage
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": word}) for word in WORDS]
    events += [chunk({}, "stop"), chunk({}, usage=USAGE), b"data: [DONE]\n\n"]
    return events


class _Server(asyncio.Protocol):
    """HTTP/1.1 keep-alive; answers from precomputed bytes, one write per SSE event."""

    plain: ClassVar[bytes] = b""
    events: ClassVar[list[bytes]] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < head_end + 4 + length:
                return
            body = self.buffer[head_end + 4 : head_end + 4 + length]
            self.buffer = self.buffer[head_end + 4 + length :]
            self._answer(b'"stream":true' in body.replace(b" ", b""))

    def _answer(self, stream: bool) -> None:
        if not stream:
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(self.plain)}\r\n\r\n".encode()
                + self.plain
            )
            return
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        for event in self.events:
            self.transport.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
        self.transport.write(b"0\r\n\r\n")


def serve(port_file: str) -> None:
    """Run the loopback server until killed; write its port to ``port_file``."""
    _Server.plain = completion_body()
    _Server.events = stream_events()

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Server, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        Path(port_file).write_text(str(port))
        await server.serve_forever()

    asyncio.run(main())


def pin(cpu: int) -> Callable[[], None] | None:
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


@contextlib.contextmanager
def loopback_server() -> Iterator[str]:
    """Run the loopback server in a process of its own (on CPU 1 when there are two or
    more); yields its base URL."""
    with tempfile.TemporaryDirectory() as tmp:
        port_file = os.path.join(tmp, "port")
        server = subprocess.Popen([sys.executable, __file__, port_file], preexec_fn=pin(1))
        try:
            deadline = time.monotonic() + 10
            while not os.path.exists(port_file) or not Path(port_file).read_text():
                if time.monotonic() > deadline:
                    raise SystemExit("the loopback server did not start")
                time.sleep(0.05)
            yield f"http://127.0.0.1:{Path(port_file).read_text()}/v1"
        finally:
            server.terminate()
            server.wait()


@contextlib.contextmanager
def bare_and_recording(database_url: str | None) -> Iterator[tuple[Any, Any]]:
    """Pin this process to CPU 0 (when there are two or more), start the loopback server
    and configure chatdebug to record into ``database_url`` (default: a temporary SQLite
    file); yields a bare ``openai.OpenAI`` client and a recording one, shuts chatdebug
    down after, and prints where it ran."""
    import openai

    import chatdebug

    pinned = pin(0)
    if pinned is not None:
        pinned()
    url = database_url or "sqlite:///" + os.path.join(tempfile.mkdtemp(), "bench.db")
    with loopback_server() as base_url:
        chatdebug.configure(url, enabled=True)
        settings: dict[str, Any] = {"base_url": base_url, "api_key": "sk-bench", "max_retries": 0}
        try:
            yield (
                openai.OpenAI(**settings),
                openai.OpenAI(**settings, http_client=chatdebug.httpx2_client()),
            )
        finally:
            chatdebug.shutdown()
    print(f"\npinned to CPU 0: {'yes' if pinned else 'no'}; store {url.split(':', 1)[0]}")


if __name__ == "__main__":
    serve(sys.argv[1])
