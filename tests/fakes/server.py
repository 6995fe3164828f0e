"""A real loopback HTTP/1.1 server that plays scripted replies.

Tests queue :class:`Reply` objects (or install a handler function); each request takes
the next reply. Bodies can be sent whole (``Content-Length``) or as chunks with delays
(chunked transfer encoding, as providers stream SSE), compressed, or cut off mid-stream
by closing the socket. Every request received is recorded with its headers and body.
"""

from __future__ import annotations

import gzip as gzip_module
import socket
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """One scripted response."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    """Sent whole with Content-Length (unless ``chunks`` is set)."""
    chunks: list[bytes] | None = None
    """Sent one by one with chunked transfer encoding, ``chunk_delay`` apart."""
    chunk_delay: float = 0.0
    drop_after: int | None = None
    """Close the connection abruptly after this many chunks (no terminating chunk)."""
    encoding: str | None = None
    """``gzip`` or ``deflate``: compress the body or each chunk (sync-flushed)."""
    delay: float = 0.0
    """Seconds to wait before sending the status line."""
    hang_after_chunks: float | None = None
    """After the chunks, wait this long before ending (a stream the caller gives up on)."""


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Handler = Callable[[RecordedRequest], Reply]


class FakeServer:
    """Start with ``FakeServer()``; stop with :meth:`close` (or use as a context manager)."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.handler: Handler | None = None
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        outer = self

        class _RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorded = RecordedRequest(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                with outer._lock:
                    outer.requests.append(recorded)
                reply = outer._next_reply(recorded)
                outer._send(self, reply)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _RequestHandler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next_reply(self, request: RecordedRequest) -> Reply:
        if self.handler is not None:
            return self.handler(request)
        with self._lock:
            if self.replies:
                return self.replies.popleft()
        return Reply(status=500, body=b'{"error": {"message": "no scripted reply"}}')

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, reply: Reply) -> None:
        if reply.delay:
            time.sleep(reply.delay)
        h.send_response(reply.status)
        headers = dict(reply.headers)
        compressor = None
        if reply.encoding == "gzip":
            compressor = zlib.compressobj(wbits=31)
        elif reply.encoding == "deflate":
            compressor = zlib.compressobj(wbits=15)
        if reply.encoding:
            headers["Content-Encoding"] = reply.encoding
        if reply.chunks is None:
            body = reply.body or b""
            if reply.encoding == "gzip":
                body = gzip_module.compress(body)
            elif reply.encoding == "deflate":
                body = zlib.compress(body)
            headers.setdefault("Content-Length", str(len(body)))
            for k, v in headers.items():
                h.send_header(k, v)
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(body)
            h.wfile.flush()
            return
        headers["Transfer-Encoding"] = "chunked"
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.flush()
        try:
            for index, chunk in enumerate(reply.chunks):
                if reply.drop_after is not None and index >= reply.drop_after:
                    _drop(h)
                    return
                if index and reply.chunk_delay:
                    time.sleep(reply.chunk_delay)
                data = chunk
                if compressor is not None:
                    data = compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
                if data:
                    h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    h.wfile.flush()
            if reply.drop_after is not None and reply.drop_after >= len(reply.chunks):
                _drop(h)
                return
            if reply.hang_after_chunks:
                time.sleep(reply.hang_after_chunks)
            if compressor is not None:
                tail = compressor.flush()
                if tail:
                    h.wfile.write(b"%x\r\n%s\r\n" % (len(tail), tail))
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True


def _drop(h: BaseHTTPRequestHandler) -> None:
    """Close the socket without finishing the chunked body."""
    h.close_connection = True
    try:
        h.wfile.flush()
        h.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def sse(*events: tuple[str | None, str]) -> list[bytes]:
    """SSE chunks from ``(event name or None, data)`` pairs, one chunk per event."""
    out = []
    for name, data in events:
        prefix = f"event: {name}\n" if name else ""
        out.append(f"{prefix}data: {data}\n\n".encode())
    return out


SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
JSON_HEADERS = {"Content-Type": "application/json"}
