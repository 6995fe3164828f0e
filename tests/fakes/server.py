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
from typing import Any


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 refuses connections when tests open dozens at once.
    request_queue_size = 256


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
    """``gzip``, ``deflate``, ``br`` or ``zstd``: compress the body or each chunk
    (flushed after each chunk, so every chunk can be decoded as it arrives)."""
    delay: float = 0.0
    """Seconds to wait before sending the status line."""
    hang_after_chunks: float | None = None
    """After the chunks, wait this long before ending (a stream the caller gives up on)."""
    hold: threading.Event | None = None
    """With ``chunks``: after sending ``hold_after`` of them, wait until this event is set
    (at most 10 s) before sending the rest and ending the body. Lets a test act while
    the body is known to be unfinished, without depending on timing."""
    hold_after: int = 1
    chunked: bool = True
    """With ``chunks``: False sends them with a ``Content-Length`` (the sum of their
    encoded sizes) instead of chunked transfer encoding, still one write per chunk."""


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Handler = Callable[[RecordedRequest], Reply]


class FakeServer:
    """Start with ``FakeServer()``; stop with :meth:`close` (or use as a context manager)."""

    def __init__(self, *, poll_interval: float = 0.01) -> None:
        """``poll_interval``: how often the accept loop checks for :meth:`close` (a short
        one keeps teardown fast)."""
        self.replies: deque[Reply] = deque()
        self.handler: Handler | None = None
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        outer = self

        class _RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are separate writes: without TCP_NODELAY, Nagle's algorithm and
            # delayed ACKs add ~40 ms to every response.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _serve(self) -> None:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    body = _read_chunked(self.rfile)
                else:
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

        self._server = _Server(("127.0.0.1", 0), _RequestHandler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(poll_interval,), daemon=True
        )
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
        compressor = _StreamCompressor(reply.encoding) if reply.encoding else None
        if reply.encoding:
            headers["Content-Encoding"] = reply.encoding
        if reply.chunks is not None and not reply.chunked:
            FakeServer._send_sized_chunks(h, reply, headers, compressor)
            return
        if reply.chunks is None:
            body = _compress_whole(reply.body or b"", reply.encoding)
            headers.setdefault("Content-Length", str(len(body)))
            for k, v in headers.items():
                h.send_header(k, v)
            h.end_headers()
            try:
                if h.command != "HEAD":
                    h.wfile.write(body)
                h.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                h.close_connection = True  # the client went away first
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
                _maybe_hold(reply, index)
                if index and reply.chunk_delay:
                    time.sleep(reply.chunk_delay)
                data = chunk if compressor is None else compressor.chunk(chunk)
                if data:
                    h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    h.wfile.flush()
            if reply.drop_after is not None and reply.drop_after >= len(reply.chunks):
                _drop(h)
                return
            _maybe_hold(reply, len(reply.chunks))
            if reply.hang_after_chunks:
                time.sleep(reply.hang_after_chunks)
            if compressor is not None:
                tail = compressor.finish()
                if tail:
                    h.wfile.write(b"%x\r\n%s\r\n" % (len(tail), tail))
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True

    @staticmethod
    def _send_sized_chunks(
        h: BaseHTTPRequestHandler,
        reply: Reply,
        headers: dict[str, str],
        compressor: _StreamCompressor | None,
    ) -> None:
        """``chunks`` written one by one under a ``Content-Length`` (no chunked coding)."""
        assert reply.chunks is not None
        pieces = [c if compressor is None else compressor.chunk(c) for c in reply.chunks]
        if compressor is not None:
            pieces[-1:] = [(pieces[-1] if pieces else b"") + compressor.finish()]
        headers.setdefault("Content-Length", str(sum(len(p) for p in pieces)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.flush()
        if h.command == "HEAD":
            return
        try:
            for index, piece in enumerate(pieces):
                if reply.drop_after is not None and index >= reply.drop_after:
                    _drop(h)
                    return
                _maybe_hold(reply, index)
                if index and reply.chunk_delay:
                    time.sleep(reply.chunk_delay)
                h.wfile.write(piece)
                h.wfile.flush()
            if reply.drop_after is not None and reply.drop_after >= len(pieces):
                _drop(h)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True


def _read_chunked(rfile: Any) -> bytes:
    """A request body sent with chunked transfer encoding (streaming uploads)."""
    body = b""
    while True:
        size_line = rfile.readline()
        if not size_line:
            return body
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return body
        body += rfile.read(size)
        rfile.readline()  # CRLF after the chunk


def _maybe_hold(reply: Reply, index: int) -> None:
    if reply.hold is not None and index == reply.hold_after:
        reply.hold.wait(10)


class _StreamCompressor:
    """Compresses a body chunk by chunk, flushing after each so it decodes at once."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._obj: Any
        if encoding == "gzip":
            self._obj = zlib.compressobj(wbits=31)
        elif encoding == "deflate":
            self._obj = zlib.compressobj(wbits=15)
        elif encoding == "br":
            import brotli

            self._obj = brotli.Compressor()
        elif encoding == "zstd":
            import zstandard

            self._obj = zstandard.ZstdCompressor().compressobj()
        else:
            raise ValueError(f"unsupported test encoding {encoding!r}")

    def chunk(self, data: bytes) -> bytes:
        if self.encoding == "br":
            return bytes(self._obj.process(data) + self._obj.flush())
        if self.encoding == "zstd":
            import zstandard

            return bytes(
                self._obj.compress(data) + self._obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
            )
        return bytes(self._obj.compress(data) + self._obj.flush(zlib.Z_SYNC_FLUSH))

    def finish(self) -> bytes:
        if self.encoding == "br":
            return bytes(self._obj.finish())
        return bytes(self._obj.flush())


def _compress_whole(body: bytes, encoding: str | None) -> bytes:
    if encoding is None:
        return body
    if encoding == "gzip":
        return gzip_module.compress(body)
    if encoding == "deflate":
        return zlib.compress(body)
    if encoding == "br":
        import brotli

        return bytes(brotli.compress(body))
    if encoding == "zstd":
        import zstandard

        return bytes(zstandard.ZstdCompressor().compress(body))
    raise ValueError(f"unsupported test encoding {encoding!r}")


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
