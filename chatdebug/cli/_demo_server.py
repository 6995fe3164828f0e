"""A tiny OpenAI-compatible chat server on loopback, for ``chatdebug demo``.

It plays one scripted conversation: asked with tools and no tool result yet, it calls
``get_weather``; given the tool result, it first answers ``429`` (once) and then the
forecast; asked to stream, it streams a short follow-up with usage. No network, no key.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["DemoServer"]

MODEL = "demo-gpt-4o-mini"


def _completion(message: dict[str, Any], finish: str, prompt: int, completion: int) -> bytes:
    body = {
        "id": f"chatcmpl-demo-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }
    return json.dumps(body).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes: without TCP_NODELAY, Nagle's algorithm and
    # delayed ACKs add ~40 ms to every response.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            request = {}
        if not self.path.endswith("/chat/completions"):
            return self._json(404, {"error": {"message": "not found", "type": "not_found"}})
        messages = request.get("messages") or []
        has_tool_result = any(m.get("role") == "tool" for m in messages)
        if request.get("stream"):
            return self._stream(["A", " light", " jacket", " will", " do", " nicely", "."])
        if request.get("tools") and not has_tool_result:
            call = {
                "id": "call_weather_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            return self._raw(200, _completion(message, "tool_calls", 58, 17))
        if self.server.take_rate_limit():
            return self._json(
                429,
                {
                    "error": {
                        "message": "Rate limit reached for demo-gpt-4o-mini (demo)",
                        "type": "rate_limit_error",
                        "param": None,
                        "code": "rate_limit_exceeded",
                    }
                },
                extra={"retry-after-ms": "200", "x-ratelimit-remaining-requests": "0"},
            )
        message = {
            "role": "assistant",
            "content": "It is 18°C and sunny in Paris right now.",
            "refusal": None,
        }
        return self._raw(200, _completion(message, "stop", 96, 14))

    def _json(self, status: int, body: Any, extra: dict[str, str] | None = None) -> None:
        self._raw(status, json.dumps(body).encode(), extra)

    def _raw(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, pieces: list[str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {
            "id": "chatcmpl-demo-stream",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": MODEL,
        }
        events = [
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                    }
                ],
            }
        ]
        events += [
            {**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
            for p in pieces
        ]
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        events.append(
            {
                **base,
                "choices": [],
                "usage": {
                    "prompt_tokens": 124,
                    "completion_tokens": len(pieces),
                    "total_tokens": 124 + len(pieces),
                },
            }
        )
        for event in events:
            self._chunk(f"data: {json.dumps(event)}\n\n".encode())
            time.sleep(0.02)
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self._rate_limits_left = 1
        self._lock = threading.Lock()

    def take_rate_limit(self) -> bool:
        with self._lock:
            if self._rate_limits_left > 0:
                self._rate_limits_left -= 1
                return True
            return False


class DemoServer:
    """Start with :meth:`start`, stop with :meth:`stop`; ``url`` is the base URL."""

    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> DemoServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
