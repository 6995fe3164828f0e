"""How much memory chatdebug holds for one large stream in flight.

The real ``openai`` SDK reads a 10 MB streamed chat completion (about 80,000 SSE events)
from a loopback server, through ``chatdebug.httpx2_client()`` inside a recording run
persisted to SQLite. ``tracemalloc`` samples, every 500 chunks while the stream is read,
the memory still allocated by chatdebug's own code (allocation sites under
``chatdebug/``); the report is the peak of those samples next to the stored-body cap
(``max_body_bytes``). The same is measured for a 1 MB stream, to show the figure does
not grow with the stream. No assertions: this reports, it does not judge.

    .venv/bin/python benchmarks/memory_bench.py [--megabytes 10] [--max-body-bytes 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import threading
import tracemalloc
from typing import Any

import openai

import chatdebug

PACKAGE_DIR = os.path.dirname(chatdebug.__file__)
WORD = "lorem ipsum dolor sit amet "  # one delta per event


def _stream_body(megabytes: float) -> bytes:
    """An OpenAI chat-completions SSE body of about ``megabytes``, chunked-encoded."""

    def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        body = {
            "id": "chatcmpl-mem",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        data = b"data: " + json.dumps(body).encode() + b"\n\n"
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"

    one = event({"content": WORD})
    count = int(megabytes * 1_000_000 / len(one))
    parts = [event({"role": "assistant", "content": ""}), one * count, event({}, "stop")]
    done = b"data: [DONE]\n\n"
    parts.append(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")
    return b"".join(parts)


class _Server:
    """Answers every request with the same streamed body, in 16 KB writes."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, rest = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(rest) < length:
                    rest += conn.recv(65536)
                data = rest[length:]
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"transfer-encoding: chunked\r\n\r\n"
                )
                view = memoryview(self.body)
                for start in range(0, len(view), 16384):
                    conn.sendall(view[start : start + 16384])


def _ours(snapshot: tracemalloc.Snapshot) -> int:
    """Bytes still allocated at sites inside the chatdebug package."""
    only_ours = snapshot.filter_traces([tracemalloc.Filter(True, f"{PACKAGE_DIR}{os.sep}*")])
    return sum(stat.size for stat in only_ours.statistics("filename"))


def measure(client: openai.OpenAI) -> tuple[int, int, int]:
    """(peak bytes of ours while streaming, content bytes received, chunks)."""
    peak = 0
    received = 0
    chunks = 0
    # What earlier runs left queued is written first: the writer's work for them is not
    # memory held for this stream.
    chatdebug.flush()
    with chatdebug.run("memory-bench", user_id="bench"):
        tracemalloc.start(1)
        floor = _ours(tracemalloc.take_snapshot())
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "long"}], stream=True
        )
        for chunk in stream:
            chunks += 1
            if chunk.choices and chunk.choices[0].delta.content:
                received += len(chunk.choices[0].delta.content)
            if chunks % 500 == 0:
                peak = max(peak, _ours(tracemalloc.take_snapshot()) - floor)
        peak = max(peak, _ours(tracemalloc.take_snapshot()) - floor)
        tracemalloc.stop()
    return peak, received, chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--megabytes", type=float, default=10.0)
    parser.add_argument("--max-body-bytes", type=int, default=50_000)
    args = parser.parse_args()
    url = "sqlite:///" + os.path.join(tempfile.mkdtemp(prefix="memory-bench-"), "b.db")
    chatdebug.configure(url, enabled=True, max_body_bytes=args.max_body_bytes)
    print(f"stored-body cap (max_body_bytes): {args.max_body_bytes:,} bytes")
    print("| stream | events | peak held by chatdebug while streaming | over the cap |")
    print("|---|---|---|---|")
    for megabytes in (args.megabytes / 10, args.megabytes):
        server = _Server(_stream_body(megabytes))
        client = openai.OpenAI(
            base_url=server.url,
            api_key="sk-bench",
            max_retries=0,
            http_client=chatdebug.httpx2_client(),
        )
        measure(client)  # warm-up: imports, caches, the connection
        peak, received, chunks = measure(client)
        over = peak - args.max_body_bytes
        print(
            f"| {megabytes:g} MB ({received:,} content bytes) | {chunks:,} "
            f"| {peak:,} bytes | {over:+,} bytes |"
        )
        client.close()
    chatdebug.shutdown()


if __name__ == "__main__":
    main()
