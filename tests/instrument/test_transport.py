"""HTTP capture through ``chatdebug.Transport`` / ``chatdebug.AsyncTransport``.

Ports the reference's ``transport_internal_test.go`` (one test per name, snake_cased)
with real clients — httpx and httpx2, sync and async — against a real loopback server,
asserting on the attempt records of the finished step spans. Where a Go test exercises
something that does not exist here, its docstring says so and it tests what we do
instead. Stream lifecycle, encodings and step grouping live in the sibling
``test_transport_*`` modules, which share the helpers defined here.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import httpx2
import pytest
from opentelemetry.sdk.trace import ReadableSpan

import chatdebug
from chatdebug import _safety
from chatdebug.instrument import _attributes as attr
from chatdebug.instrument._redact import (
    EXTRA_VALUES_DIAGNOSTIC,
    NOT_JSON_DIAGNOSTIC,
    REDACTED,
    Redactor,
)
from tests.fakes.server import JSON_HEADERS, SSE_HEADERS, FakeServer, Reply
from tests.fakes.wire import openai_stream_chunks
from tests.instrument.conftest import Spans, jattr

T = TypeVar("T")

CHAT_PATH = "/v1/chat/completions"
TRUNCATED = b"[TRUNCATED]"


# -- the four client flavours ------------------------------------------------------------


@dataclass(frozen=True)
class Flavour:
    """httpx or httpx2, sync or async. Every scenario is written once as a coroutine;
    for a sync flavour the calls inside simply block."""

    lib_name: str
    is_async: bool

    @property
    def id(self) -> str:
        return f"{self.lib_name}-{'async' if self.is_async else 'sync'}"

    @property
    def lib(self) -> Any:
        return httpx if self.lib_name == "httpx" else httpx2

    def http_transport(self, **kwargs: Any) -> Any:
        """The library's own transport. Loopback tests speak plain HTTP, so no TLS
        context is built (loading the CA bundle would dominate the test time)."""
        factory = self.lib.AsyncHTTPTransport if self.is_async else self.lib.HTTPTransport
        kwargs.setdefault("verify", False)
        return factory(**kwargs)

    def transport(self, inner: Any = None) -> Any:
        cls = chatdebug.AsyncTransport if self.is_async else chatdebug.Transport
        return cls(inner if inner is not None else self.http_transport())

    def client(self, transport: Any = None, *, record: bool = True, **kwargs: Any) -> Client:
        if transport is None:
            transport = self.transport() if record else self.http_transport()
        cls = self.lib.AsyncClient if self.is_async else self.lib.Client
        return Client(self, cls(transport=transport, **kwargs))

    def body(self, pieces: list[bytes], after: Callable[[], None] | None = None) -> Any:
        """A streaming (non-replayable) request body for this flavour's client."""
        if self.is_async:

            async def agen() -> AsyncIterator[bytes]:
                for piece in pieces:
                    yield piece
                if after is not None:
                    after()

            return agen()

        def gen() -> Iterator[bytes]:
            yield from pieces
            if after is not None:
                after()

        return gen()


FLAVOURS = [
    Flavour("httpx", False),
    Flavour("httpx", True),
    Flavour("httpx2", False),
    Flavour("httpx2", True),
]
SYNC_FLAVOURS = [f for f in FLAVOURS if not f.is_async]
flavours = pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda f: f.id)


class Resp:
    """A response of either flavour, read through awaitable helpers."""

    def __init__(self, flavour: Flavour, raw: Any) -> None:
        self.flavour = flavour
        self.raw = raw
        self._it: Any = None

    @property
    def status_code(self) -> int:
        return int(self.raw.status_code)

    @property
    def content(self) -> bytes:
        return bytes(self.raw.content)

    def _iterator(self, kind: str) -> Any:
        raw, is_async = self.raw, self.flavour.is_async
        if kind == "raw":
            return raw.aiter_raw() if is_async else raw.iter_raw()
        if kind == "bytes":
            return raw.aiter_bytes() if is_async else raw.iter_bytes()
        # The byte stream itself: reading it to the end does not close the response.
        return raw.stream.__aiter__() if is_async else iter(raw.stream)

    async def take(self, n: int = 1, kind: str = "raw") -> list[bytes]:
        """The next ``n`` chunks (fewer at the end of the body)."""
        if self._it is None:
            self._it = self._iterator(kind)
        out: list[bytes] = []
        for _ in range(n):
            try:
                if self.flavour.is_async:
                    out.append(await self._it.__anext__())
                else:
                    out.append(next(self._it))
            except (StopIteration, StopAsyncIteration):
                break
        return out

    async def rest(self, kind: str = "raw") -> bytes:
        """Everything left, chunk by chunk, to the end of the body."""
        return b"".join(await self.take(1 << 30, kind))

    async def read(self) -> bytes:
        if self.flavour.is_async:
            return bytes(await self.raw.aread())
        return bytes(self.raw.read())

    async def close(self) -> None:
        if self.flavour.is_async:
            await self.raw.aclose()
        else:
            self.raw.close()


class Client:
    def __init__(self, flavour: Flavour, raw: Any) -> None:
        self.flavour = flavour
        self.raw = raw

    async def send(self, method: str, url: str, *, stream: bool = True, **kwargs: Any) -> Resp:
        """Send a request; with ``stream`` (the default) the body is left unread."""
        request = self.raw.build_request(method, url, **kwargs)
        return await self.send_request(request, stream=stream)

    async def send_request(self, request: Any, *, stream: bool = True) -> Resp:
        if self.flavour.is_async:
            response = await self.raw.send(request, stream=stream)
        else:
            response = self.raw.send(request, stream=stream)
        return Resp(self.flavour, response)

    async def call(self, method: str, url: str, **kwargs: Any) -> Resp:
        """Send a request and read the whole response."""
        return await self.send(method, url, stream=False, **kwargs)

    async def close(self) -> None:
        if self.flavour.is_async:
            await self.raw.aclose()
        else:
            self.raw.close()


def drive(
    flavour: Flavour,
    scenario: Callable[[Client], Awaitable[T]],
    *,
    transport: Any = None,
    record: bool = True,
    **client_kwargs: Any,
) -> T:
    """Run ``scenario`` with a fresh client of ``flavour`` (closed afterwards)."""

    async def main() -> T:
        client = flavour.client(transport, record=record, **client_kwargs)
        try:
            return await scenario(client)
        finally:
            await client.close()

    return asyncio.run(main())


# -- inner transports with deliberate behaviour -----------------------------------------


class SpyTransport:
    """Wraps a real transport and remembers the exception it raised."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.raised: BaseException | None = None

    def handle_request(self, request: Any) -> Any:
        try:
            return self.inner.handle_request(request)
        except BaseException as exc:
            self.raised = exc
            raise

    async def handle_async_request(self, request: Any) -> Any:
        try:
            return await self.inner.handle_async_request(request)
        except BaseException as exc:
            self.raised = exc
            raise

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        await self.inner.aclose()


class RaisingTransport:
    """Fails every request with ``error`` before any response (like a proxy failure)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def handle_request(self, request: Any) -> Any:
        raise self.error

    async def handle_async_request(self, request: Any) -> Any:
        raise self.error

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class FailingCloseTransport(SpyTransport):
    """Real responses whose byte stream raises ``error`` when closed."""

    def __init__(self, flavour: Flavour, error: BaseException) -> None:
        super().__init__(flavour.http_transport())
        self.flavour = flavour
        self.error = error

    def _wrap(self, response: Any) -> Any:
        lib, error, inner = self.flavour.lib, self.error, response.stream
        if self.flavour.is_async:

            class AsyncStream(lib.AsyncByteStream):  # type: ignore[misc, name-defined]
                async def __aiter__(self) -> AsyncIterator[bytes]:
                    async for chunk in inner:
                        yield chunk

                async def aclose(self) -> None:
                    await inner.aclose()
                    raise error

            stream: Any = AsyncStream()
        else:

            class SyncStream(lib.SyncByteStream):  # type: ignore[misc, name-defined]
                def __iter__(self) -> Iterator[bytes]:
                    yield from inner

                def close(self) -> None:
                    inner.close()
                    raise error

            stream = SyncStream()
        return lib.Response(
            response.status_code,
            headers=response.headers,
            stream=stream,
            extensions=response.extensions,
        )

    def handle_request(self, request: Any) -> Any:
        return self._wrap(super().handle_request(request))

    async def handle_async_request(self, request: Any) -> Any:
        return self._wrap(await super().handle_async_request(request))


# -- reading what was recorded ----------------------------------------------------------


def attempts_of(step: ReadableSpan) -> list[dict[str, Any]]:
    attempts = jattr(step, attr.STEP_ATTEMPTS)
    assert isinstance(attempts, list)
    return attempts


def only_attempt(spans: Spans) -> dict[str, Any]:
    attempts = attempts_of(spans.only_step())
    assert len(attempts) == 1, attempts
    return attempts[0]


def body_of(attempt: dict[str, Any], key: str = "response_body") -> bytes:
    return base64.b64decode(attempt[key])


def json_body(attempt: dict[str, Any], key: str = "response_body") -> Any:
    return json.loads(body_of(attempt, key))


def step_status(step: ReadableSpan) -> str:
    return str(step.attributes[attr.STEP_STATUS])


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def hold() -> Iterator[threading.Event]:
    """An event for :attr:`Reply.hold`, released at the end of the test."""
    event = threading.Event()
    yield event
    event.set()


SECRET_JSON = b'{"token":"response-secret","safe":"ok"}'
REDACTED_JSON = {"token": REDACTED, "safe": "ok"}


# -- request capture --------------------------------------------------------------------


@flavours
def test_no_sink(flavour: Flavour, spans: Spans, fake_server: FakeServer) -> None:
    """Outside a run the transport is a pure pass-through: no span, and the very same
    response (status, headers, bytes, the inner transport's own byte stream)."""
    chunks = openai_stream_chunks(["a", "b"])
    url = fake_server.url + CHAT_PATH

    async def scenario(client: Client) -> tuple[int, dict[str, str], bytes, str]:
        resp = await client.send("POST", url, json={"model": "m", "stream": True})
        stream_module = type(resp.raw.stream).__module__
        body = await resp.read()
        await resp.close()
        headers = {k: v for k, v in resp.raw.headers.items() if k != "date"}
        return resp.status_code, headers, body, stream_module

    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS))
    baseline = drive(flavour, scenario, record=False)
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS))
    ours = drive(flavour, scenario)

    assert ours == baseline
    assert not ours[3].startswith("chatdebug")
    assert ours[2] == b"".join(chunks)
    assert spans.all() == []


@flavours
def test_no_sink_disabled_run(flavour: Flavour, spans: Spans, fake_server: FakeServer) -> None:
    """A run that does not record (not enabled for its user) passes requests through."""
    chatdebug.instrument.install(
        chatdebug.instrument.InstrumentSettings(tracer_provider=spans.provider, force_enabled=False)
    )
    fake_server.enqueue(Reply(body=SECRET_JSON, headers=JSON_HEADERS))

    async def scenario(client: Client) -> bytes:
        with chatdebug.run("chat-off", user_id="u-1") as run:
            assert not run.recording
            resp = await client.call("GET", fake_server.url + "/x")
            assert not type(resp.raw.stream).__module__.startswith("chatdebug")
            return resp.content

    assert drive(flavour, scenario) == SECRET_JSON
    assert spans.all() == []


@flavours
def test_capture_request(flavour: Flavour, spans: Spans, fake_server: FakeServer) -> None:
    request_body = b'{"message":"hello","api_key":"super-secret"}'
    fake_server.enqueue(Reply(body=b'{"ok":true}', headers=JSON_HEADERS))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.call(
                "POST",
                fake_server.url + "/capture",
                content=request_body,
                headers={"Authorization": "Bearer top-secret", "Content-Type": "application/json"},
            )
            assert resp.content == b'{"ok":true}'

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert attempt["number"] == 1
    assert attempt["method"] == "POST"
    assert attempt["path"] == "/capture"
    assert attempt["request_headers"]["authorization"] == REDACTED
    assert attempt["request_headers"]["content-type"] == "application/json"
    assert json_body(attempt, "request_body") == {"message": "hello", "api_key": REDACTED}
    # Capturing did not consume the body: the server got all of it, credentials included.
    received = fake_server.requests[-1]
    assert received.body == request_body
    assert received.headers["authorization"] == "Bearer top-secret"


@flavours
def test_capture_request_restores_shared_get_body(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    """The same request object sent twice: capture never consumes its body."""
    request_body = b'{"message":"hello","api_key":"super-secret"}'
    fake_server.enqueue(
        Reply(body=b'{"ok":1}', headers=JSON_HEADERS), Reply(body=b'{"ok":2}', headers=JSON_HEADERS)
    )

    async def scenario(client: Client) -> None:
        request = client.raw.build_request("POST", fake_server.url + "/x", content=request_body)
        with chatdebug.run("chat-1"):
            for expected in (b'{"ok":1}', b'{"ok":2}'):
                resp = await client.send_request(request, stream=False)
                assert resp.content == expected
        assert request.content == request_body

    drive(flavour, scenario)
    assert [r.body for r in fake_server.requests] == [request_body, request_body]
    steps = spans.steps()
    assert len(steps) == 2
    for step in steps:
        (attempt,) = attempts_of(step)
        assert attempt["status"] == "completed"
        assert json_body(attempt, "request_body") == {"message": "hello", "api_key": REDACTED}


@flavours
def test_capture_request_reset_failure_fails_request(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not applicable: we never fail a request (httpx keeps a replayable body in memory,
    so there is nothing to reset). What we do instead: when capturing the request fails
    inside chatdebug, the request is sent untouched and the failure is counted."""
    monkeypatch.delenv("CHATDEBUG_RAISE_INTERNAL_ERRORS", raising=False)

    def broken(self: Redactor, body: bytes, *, values: bool = True) -> bytes:
        raise RuntimeError("redaction exploded")

    monkeypatch.setattr(Redactor, "redact_json", broken)
    before = _safety.internal_error_counts().get("transport", 0)
    request_body = b'{"message":"hello"}'
    fake_server.enqueue(Reply(body=b'{"ok":true}', headers=JSON_HEADERS))

    async def scenario(client: Client) -> bytes:
        with chatdebug.run("chat-1"):
            return (await client.call("POST", fake_server.url + "/x", content=request_body)).content

    assert drive(flavour, scenario) == b'{"ok":true}'
    assert fake_server.requests[-1].body == request_body
    assert _safety.internal_error_counts().get("transport", 0) == before + 1
    assert spans.steps() == []
    assert len(spans.runs()) == 1


@flavours
def test_capture_request_body_close_failure_fails_request(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    """Not applicable: we never read or close a streaming request body, so nothing of
    ours can fail on it. When the caller's own body source fails mid-upload, that very
    exception reaches the caller and the attempt is recorded as failed."""
    failure = ValueError("upload source failed")

    def explode() -> None:
        raise failure

    async def scenario(client: Client) -> BaseException:
        with chatdebug.run("chat-1"):
            body = flavour.body([b'{"message":', b'"hello"'], after=explode)
            with pytest.raises(ValueError) as caught:
                await client.call("POST", fake_server.url + "/x", content=body)
            return caught.value

    assert drive(flavour, scenario) is failure
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert "upload source failed" in attempt["error"]
    assert "request_body" not in attempt
    assert "response_status" not in attempt
    assert step_status(step) == "error"


@flavours
def test_redacts_sensitive_query_parameters(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    query = (
        "api_key=secret-1&safe=ok&key=AIzaSyA-0123456789abcdefghijklmnopqrstu"
        "&token=secret-2&access_token=secret-3&client_secret=secret-4"
    )
    fake_server.enqueue(Reply(body=b"ok", headers={"Content-Type": "text/plain"}))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            await client.call("GET", f"{fake_server.url}/q?{query}")

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    url = attempt["url"]
    for name in ("api_key", "key", "token", "access_token", "client_secret"):
        assert f"{name}=%5BREDACTED%5D" in url
    assert "safe=ok" in url
    assert "secret-" not in url and "AIza" not in url
    assert attempt["path"] == "/q"
    # The server still got the real query.
    assert fake_server.requests[-1].path == f"/q?{query}"


@flavours
def test_truncates_large_request_bodies(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    large = json.dumps({"messages": [{"role": "user", "content": "x" * 60_000}]}).encode()
    fake_server.enqueue(Reply(body=b"ok", headers={"Content-Type": "text/plain"}))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            await client.call("POST", fake_server.url + "/x", content=large)

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert body_of(attempt, "request_body") == TRUNCATED
    assert fake_server.requests[-1].body == large


@flavours
def test_strips_url_userinfo(flavour: Flavour, spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(Reply(body=b"ok", headers={"Content-Type": "text/plain"}))
    url = fake_server.url.replace("http://", "http://user:hunter2pass@") + "/x?api_key=secret"

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            await client.call("GET", url)

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert "user:" not in attempt["url"] and "hunter2pass" not in attempt["url"]
    assert "api_key=%5BREDACTED%5D" in attempt["url"]
    # httpx turns URL credentials into a Basic Authorization header: redacted too.
    assert attempt["request_headers"].get("authorization", REDACTED) == REDACTED
    assert "hunter2pass" not in json.dumps(attempt)


@flavours
def test_skips_non_replayable_request_body_capture(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    fake_server.enqueue(Reply(body=b"ok", headers={"Content-Type": "text/plain"}))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            body = flavour.body([b'{"message":', b'"hello"}'])
            await client.call("POST", fake_server.url + "/x", content=body)

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert "request_body" not in attempt
    assert fake_server.requests[-1].body == b'{"message":"hello"}'


# -- response capture -------------------------------------------------------------------


@flavours
def test_capture_response(flavour: Flavour, spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(
        Reply(
            status=201,
            body=SECRET_JSON,
            headers={
                "Content-Type": "application/json",
                "X-API-Key": "response-secret",
                "X-Trace-ID": "trace-123",
            },
        )
    )

    async def scenario(client: Client) -> bytes:
        with chatdebug.run("chat-1"):
            return (await client.call("GET", fake_server.url + "/x")).content

    assert drive(flavour, scenario) == SECRET_JSON
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"
    assert attempt["response_status"] == 201
    assert attempt["response_headers"]["content-type"] == "application/json"
    assert attempt["response_headers"]["x-api-key"] == REDACTED
    assert attempt["response_headers"]["x-trace-id"] == "trace-123"
    assert json_body(attempt) == REDACTED_JSON
    assert "error" not in attempt
    assert isinstance(attempt["duration_ms"], int) and attempt["duration_ms"] >= 0
    assert 0 <= attempt["ttfb_ms"] <= attempt["duration_ms"] + 1
    assert attempt["started_at"].endswith("Z") and attempt["finished_at"].endswith("Z")
    assert attempt["started_at"] <= attempt["finished_at"]
    assert step_status(step) == "completed"
    assert step.attributes[attr.STEP_TTFB_MS] == attempt["ttfb_ms"]


@flavours
def test_capture_response_records_on_close(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    """Adapted: the reference defers recording to Close. We apply the same completion
    rules (JSON integrity, Content-Length) at EOF already, so the record is complete
    whether or not the caller closes, and a close afterwards changes nothing."""
    fake_server.enqueue(
        Reply(
            status=202,
            body=SECRET_JSON,
            headers={"Content-Type": "application/json", "X-API-Key": "response-secret"},
        )
    )

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            assert spans.steps() == []
            assert await resp.rest(kind="stream") == SECRET_JSON
            assert len(spans.steps()) == 1  # finished at EOF, before any close
            await resp.close()

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert attempt["response_status"] == 202
    assert attempt["response_headers"]["x-api-key"] == REDACTED
    assert json_body(attempt) == REDACTED_JSON


@flavours
def test_streaming_body(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    fake_server.enqueue(
        Reply(
            chunks=[b'{"safe":"stream",', b'"token":"chunk-secret"}'],
            headers=JSON_HEADERS,
            hold=hold,
        )
    )

    async def scenario(client: Client) -> bytes:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            first = await resp.take(1)
            # The first chunk reached the caller while the body was still unfinished.
            assert first == [b'{"safe":"stream",']
            assert spans.steps() == []
            hold.set()
            rest = await resp.rest()
            await resp.close()
            return first[0] + rest

    assert drive(flavour, scenario) == b'{"safe":"stream","token":"chunk-secret"}'
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert json_body(attempt) == {"safe": "stream", "token": REDACTED}


@flavours
def test_close_after_decoder_consumes_content_length_succeeds(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    """The caller stops once it has Content-Length bytes, without reading to EOF."""
    pieces = [b'{"token":"response-secret",', b'"safe":"ok"}']
    fake_server.enqueue(Reply(chunks=pieces, chunked=False, headers=JSON_HEADERS))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            length = int(resp.raw.headers["content-length"])
            data = b""
            while len(data) < length:
                data += b"".join(await resp.take(1))
            assert json.loads(data)["safe"] == "ok"
            assert spans.steps() == []  # EOF not seen yet: the close decides
            await resp.close()

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert "error" not in attempt
    assert json_body(attempt) == REDACTED_JSON


@flavours
def test_close_after_decoder_consumes_unknown_length_json_succeeds(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    """Chunked JSON: the caller reads one complete document and closes before EOF."""
    fake_server.enqueue(Reply(chunks=[SECRET_JSON], headers=JSON_HEADERS, hold=hold))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            assert json.loads(b"".join(await resp.take(1)))["safe"] == "ok"
            assert spans.steps() == []  # EOF not seen yet: the close decides
            await resp.close()

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert "error" not in attempt
    assert json_body(attempt) == REDACTED_JSON


@flavours
def test_close_after_decoder_consumes_unknown_length_json_with_no_sensitive_keys_succeeds(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    body = b'{"safe": "ok",\n  "count": 1}'
    fake_server.enqueue(Reply(chunks=[body], headers=JSON_HEADERS, hold=hold))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            assert json.loads(b"".join(await resp.take(1)))["count"] == 1
            await resp.close()

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert body_of(attempt) == body  # formatting preserved: byte-identical


@flavours
def test_close_after_decoder_consumes_unknown_length_json_with_trailing_document_marks_failed(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    body = SECRET_JSON + b'{"token":"second"}'
    fake_server.enqueue(Reply(chunks=[body], headers=JSON_HEADERS, hold=hold))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            assert await resp.take(1) == [body]
            await resp.close()

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "failed"
    assert attempt["error"] == "unexpected EOF"
    assert body_of(attempt) == EXTRA_VALUES_DIAGNOSTIC


@flavours
def test_close_after_decoder_consumes_unknown_length_ndjson_marks_failed(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    body = SECRET_JSON + b'\n{"token":"second"}\n'
    fake_server.enqueue(
        Reply(chunks=[body], headers={"Content-Type": "application/x-ndjson"}, hold=hold)
    )

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            assert await resp.take(1) == [body]
            await resp.close()

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "failed"
    assert attempt["error"] == "unexpected EOF"


@flavours
def test_close_after_decoder_drains_unknown_length_succeeds(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    fake_server.enqueue(Reply(chunks=[SECRET_JSON, b"\n"], headers=JSON_HEADERS))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            assert json.loads(b"".join(await resp.take(1)))["safe"] == "ok"
            assert await resp.rest() == b"\n"
            await resp.close()

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert "error" not in attempt


@flavours
def test_close_without_reading_head_response_succeeds(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    fake_server.enqueue(Reply(body=b'{"ignored":true}', headers=JSON_HEADERS))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("HEAD", fake_server.url + "/x")
            await resp.close()

    drive(flavour, scenario)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"
    assert attempt["method"] == "HEAD"
    assert "error" not in attempt
    assert step_status(step) == "completed"


@flavours
def test_close_without_reading_unknown_length_marks_failed(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    fake_server.enqueue(Reply(chunks=[SECRET_JSON], headers=JSON_HEADERS, hold=hold, hold_after=0))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            await resp.close()

    drive(flavour, scenario)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert attempt["error"] == "unexpected EOF"
    assert step_status(step) == "interrupted"


@flavours
def test_premature_close_unknown_length_marks_failed(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    fake_server.enqueue(
        Reply(chunks=[b'{"token":"resp', b'onse-secret"}'], headers=JSON_HEADERS, hold=hold)
    )

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            assert await resp.take(1) == [b'{"token":"resp']
            await resp.close()

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "failed"
    assert attempt["error"] == "unexpected EOF"


@flavours
def test_premature_close_marks_failed(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    fake_server.enqueue(
        Reply(chunks=[b'{"token":"resp', b'onse-secret"}'], chunked=False, hold=hold)
    )

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            assert await resp.take(1) == [b'{"token":"resp']
            await resp.close()

    drive(flavour, scenario)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert attempt["error"] == "unexpected EOF"
    assert step_status(step) == "interrupted"
    error = jattr(step, attr.STEP_ERROR)
    assert error["type"] == "incomplete_response"


@flavours
@pytest.mark.parametrize("kind", ["json", "sse"])
def test_truncates_large_responses(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, kind: str
) -> None:
    if kind == "json":
        payload = json.dumps({"text": "x" * 60_000}).encode()
        fake_server.enqueue(Reply(body=payload, headers=JSON_HEADERS))
    else:
        chunks = openai_stream_chunks(["y" * 1000] * 60)
        payload = b"".join(chunks)
        fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS))

    async def scenario(client: Client) -> bytes:
        with chatdebug.run("chat-1"):
            return (await client.call("POST", fake_server.url + CHAT_PATH, json={})).content

    assert drive(flavour, scenario) == payload  # every byte for the caller
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"
    assert body_of(attempt) == TRUNCATED
    assert step_status(step) == "completed"


# -- transport errors -------------------------------------------------------------------


@flavours
def test_transport_error(flavour: Flavour, spans: Spans) -> None:
    """Connection refused: the attempt fails, and the caller gets the inner transport's
    own exception object, unchanged."""
    spy = SpyTransport(flavour.http_transport())
    url = f"http://127.0.0.1:{closed_port()}/v1/chat/completions"

    async def scenario(client: Client) -> BaseException:
        with chatdebug.run("chat-1"):
            with pytest.raises(flavour.lib.ConnectError) as caught:
                await client.call(
                    "POST",
                    url,
                    content=b'{"password":"secret","safe":"ok"}',
                    headers={"Authorization": "Bearer top-secret"},
                )
            return caught.value

    caught = drive(flavour, scenario, transport=flavour.transport(spy))
    assert caught is spy.raised
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert attempt["number"] == 1
    assert attempt["request_headers"]["authorization"] == REDACTED
    assert json_body(attempt, "request_body") == {"password": REDACTED, "safe": "ok"}
    assert "response_status" not in attempt and "response_body" not in attempt
    assert attempt["error"].startswith("ConnectError: ")
    assert attempt["duration_ms"] >= 0
    assert step_status(step) == "error"
    error = jattr(step, attr.STEP_ERROR)
    assert error["type"] == f"{flavour.lib_name}.ConnectError"


@flavours
def test_transport_error_sanitizes_url_credentials(flavour: Flavour, spans: Spans) -> None:
    message = "connection to http://admin:s3cret@api.example.com/v1?api_key=sk-1234 refused"
    failure = flavour.lib.ConnectError(message)

    async def scenario(client: Client) -> BaseException:
        with chatdebug.run("chat-1"):
            with pytest.raises(flavour.lib.ConnectError) as caught:
                await client.call("GET", "http://example.invalid/")
            return caught.value

    caught = drive(flavour, scenario, transport=flavour.transport(RaisingTransport(failure)))
    assert caught is failure and str(caught) == message  # the caller's error is untouched
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert "s3cret" not in attempt["error"] and "sk-1234" not in attempt["error"]
    assert "api_key=%5BREDACTED%5D" in attempt["error"]
    assert "s3cret" not in step.attributes[attr.STEP_ERROR]
    assert "sk-1234" not in step.attributes[attr.STEP_ERROR]


@flavours
def test_nil_base(flavour: Flavour, spans: Spans, fake_server: FakeServer) -> None:
    """``Transport()`` without an inner transport builds the default transport of the
    library of the client it serves (httpx or httpx2), outside and inside a run."""
    transport = (chatdebug.AsyncTransport if flavour.is_async else chatdebug.Transport)()
    fake_server.enqueue(
        Reply(body=b"ok", headers={"Content-Type": "text/plain"}),
        Reply(body=b"ok again", headers={"Content-Type": "text/plain"}),
    )

    async def scenario(client: Client) -> list[bytes]:
        outside = (await client.call("GET", fake_server.url + "/x")).content
        with chatdebug.run("chat-1"):
            inside = (await client.call("GET", fake_server.url + "/y")).content
        return [outside, inside]

    assert drive(flavour, scenario, transport=transport) == [b"ok", b"ok again"]
    expected = flavour.lib.AsyncHTTPTransport if flavour.is_async else flavour.lib.HTTPTransport
    assert type(transport._holder.current) is expected
    attempt = only_attempt(spans)
    assert attempt["path"] == "/y"
    assert body_of(attempt) == b"ok again"


# -- server-sent events -----------------------------------------------------------------

SSE_PAYLOAD = b'data: {"token":"secret"}\n\ndata: [DONE]\n\n'


@flavours
def test_sse_read_to_eof_marks_completed(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    chunks = openai_stream_chunks(["Hel", "lo"])
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS))

    async def scenario(client: Client) -> bytes:
        with chatdebug.run("chat-1"):
            resp = await client.call("POST", fake_server.url + CHAT_PATH, json={"stream": True})
            return resp.content

    assert drive(flavour, scenario) == b"".join(chunks)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"
    assert "error" not in attempt
    assert body_of(attempt) == b"".join(chunks)  # SSE is stored as sent
    assert 0 <= attempt["ttfb_ms"] <= attempt["ttft_ms"] <= attempt["duration_ms"] + 1
    assert step_status(step) == "completed"
    assert step.attributes[attr.STEP_TTFT_MS] == attempt["ttft_ms"]


@flavours
def test_sse_read_to_eof_without_close_still_records(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    fake_server.enqueue(Reply(chunks=[SSE_PAYLOAD], headers=SSE_HEADERS))

    async def scenario(client: Client) -> Resp:
        with chatdebug.run("chat-1"):
            resp = await client.send("POST", fake_server.url + CHAT_PATH, json={"stream": True})
            assert await resp.rest(kind="stream") == SSE_PAYLOAD
            # Never closed: the attempt was recorded at EOF.
            assert len(spans.steps()) == 1
            return resp

    resp = drive(flavour, scenario)
    assert not resp.raw.is_closed
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"
    assert "error" not in attempt
    assert body_of(attempt) == SSE_PAYLOAD
    assert step_status(step) == "completed"


@flavours
def test_sse_empty_body_records_on_eof(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    fake_server.enqueue(Reply(chunks=[], headers=SSE_HEADERS))

    async def scenario(client: Client) -> bytes:
        with chatdebug.run("chat-1"):
            resp = await client.send("POST", fake_server.url + CHAT_PATH, json={"stream": True})
            body = await resp.rest(kind="stream")
            assert len(spans.steps()) == 1
            await resp.close()
            return body

    assert drive(flavour, scenario) == b""
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"
    assert "error" not in attempt
    assert "response_body" not in attempt
    # The HTTP exchange is complete, but the model stream never reached its final event.
    assert step_status(step) == "interrupted"
    assert jattr(step, attr.STEP_ERROR)["type"] == "incomplete_stream"


@flavours
def test_sse_read_to_eof_with_close_error_upgrades(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    """Adapted: an automatic step ends at the stream's EOF with the attempt completed
    (the caller has every byte); a close error afterwards reaches the caller unchanged
    but does not rewrite the finished record."""
    close_error = OSError("boom: connection reset")
    fake_server.enqueue(Reply(chunks=[SSE_PAYLOAD], headers=SSE_HEADERS))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("POST", fake_server.url + CHAT_PATH, json={"stream": True})
            assert await resp.rest(kind="stream") == SSE_PAYLOAD
            with pytest.raises(OSError) as caught:
                await resp.close()
            assert caught.value is close_error

    drive(
        flavour, scenario, transport=flavour.transport(FailingCloseTransport(flavour, close_error))
    )
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert body_of(attempt) == SSE_PAYLOAD


@flavours
def test_sse_concurrent_read_close_no_deadlock(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    """One reader (thread or task) is blocked on a stream while another closes it."""
    iterations = 10
    chunks = openai_stream_chunks(["a", "b", "c"])
    holds = [threading.Event() for _ in range(iterations)]
    for event in holds:
        fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS, hold=event))
    url = fake_server.url + CHAT_PATH

    async def scenario(client: Client) -> None:
        for event in holds:
            with chatdebug.run("chat-1"):
                resp = await client.send("POST", url, json={"stream": True})
                assert await resp.take(1) == chunks[:1]
                if flavour.is_async:
                    reader = asyncio.ensure_future(_read_quietly(resp))
                    await asyncio.sleep(0)
                    await resp.close()
                    event.set()
                    await asyncio.wait_for(reader, 10)
                else:
                    thread = threading.Thread(target=_drain_quietly, args=(resp,))
                    thread.start()
                    await resp.close()
                    event.set()
                    thread.join(10)
                    assert not thread.is_alive(), "reader still blocked: deadlock"

    try:
        drive(flavour, scenario)
    finally:
        for event in holds:
            event.set()
    steps = spans.steps()
    assert len(steps) == iterations
    assert len({s.attributes[attr.STEP_ID] for s in steps}) == iterations
    for step in steps:
        (attempt,) = attempts_of(step)
        assert attempt["status"] == "failed"
        assert step_status(step) in ("interrupted", "error")


async def _read_quietly(resp: Resp) -> None:
    try:
        await resp.rest()
    except Exception:
        pass  # the other side closed the stream under us: any error is fine


def _drain_quietly(resp: Resp) -> None:
    try:
        for _ in resp._it:
            pass
    except Exception:
        pass


@flavours
def test_sse_closed_early_marks_failed(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    chunks = openai_stream_chunks(["a", "b"])
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS, hold=hold))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("POST", fake_server.url + CHAT_PATH, json={"stream": True})
            assert await resp.take(1) == chunks[:1]
            await resp.close()
            assert len(spans.steps()) == 1  # ended by the close, not by the run

    drive(flavour, scenario)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert attempt["error"]
    assert body_of(attempt) == chunks[0]
    assert step_status(step) == "interrupted"
    assert jattr(step, attr.STEP_ERROR)["type"] == "stream_interrupted"


# -- what is stored, by content type ----------------------------------------------------


def _read_one(flavour: Flavour, fake_server: FakeServer, reply: Reply, path: str = "/x") -> bytes:
    fake_server.enqueue(reply)

    async def scenario(client: Client) -> bytes:
        with chatdebug.run("chat-1"):
            return (await client.call("GET", fake_server.url + path)).content

    return drive(flavour, scenario)


@flavours
def test_text_plain_preserved_not_redacted(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    text = b'This is plain text, not JSON. {"password": "hunter2"}'
    assert _read_one(flavour, fake_server, Reply(body=text, headers={"Content-Type": "text/plain"}))
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert body_of(attempt) == text


@flavours
def test_ndjson_redacted(flavour: Flavour, spans: Spans, fake_server: FakeServer) -> None:
    payload = b'{"api_key":"sk-123","safe":"ok"}\n{"token":"tok-456","data":"value"}\n'
    reply = Reply(body=payload, headers={"Content-Type": "application/x-ndjson"})
    assert _read_one(flavour, fake_server, reply) == payload  # the caller sees it all
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    lines = body_of(attempt).split(b"\n")
    assert json.loads(lines[0]) == {"api_key": REDACTED, "safe": "ok"}
    assert json.loads(lines[1]) == {"token": REDACTED, "data": "value"}


@flavours
def test_plus_json_suffix_redacted(flavour: Flavour, spans: Spans, fake_server: FakeServer) -> None:
    payload = b'{"token":"secret","safe":"ok"}'
    reply = Reply(body=payload, headers={"Content-Type": "application/vnd.api+json"})
    assert _read_one(flavour, fake_server, reply) == payload
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert json_body(attempt) == {"token": REDACTED, "safe": "ok"}


@flavours
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"content-type": "application/json"}, id="lowercase_header"),
        pytest.param({}, id="missing_content_type"),
    ],
)
def test_unrecognized_content_type_defaults_to_json_redaction(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, headers: dict[str, str]
) -> None:
    payload = b'{"token":"secret","safe":"ok"}'
    assert _read_one(flavour, fake_server, Reply(body=payload, headers=headers)) == payload
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert json_body(attempt) == {"token": REDACTED, "safe": "ok"}


@flavours
def test_non_json_body_fail_closed_redaction(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    html = b"<html><body>502 Bad Gateway</body></html>"
    assert _read_one(flavour, fake_server, Reply(status=502, body=html)) == html
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"
    assert attempt["response_status"] == 502
    assert body_of(attempt) == NOT_JSON_DIAGNOSTIC
    assert step_status(step) == "error"


@flavours
@pytest.mark.parametrize("ending", ["eof", "close_before_eof"])
def test_truncated_unknown_length_marks_completed(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event, ending: str
) -> None:
    if ending == "eof":
        payload = b"x" * 51_024
        pieces = [payload[:20_000], payload[20_000:]]
        content_type = "application/octet-stream"
    else:
        payload = json.dumps({"text": "x" * 51_024}).encode()
        pieces = [payload[:20_000], payload[20_000:]]
        content_type = "application/json"
    fake_server.enqueue(
        Reply(chunks=pieces, headers={"Content-Type": content_type}, hold=hold, hold_after=2)
    )

    async def scenario(client: Client) -> bytes:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            data = b"".join(await resp.take(2))
            while len(data) < len(payload):
                data += b"".join(await resp.take(1))
            if ending == "eof":
                hold.set()
                data += await resp.rest()
            await resp.close()
            return data

    assert drive(flavour, scenario) == payload
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert "error" not in attempt
    assert body_of(attempt) == TRUNCATED


@flavours
@pytest.mark.parametrize("kind", ["json", "sse"])
def test_mid_stream_read_error(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, kind: str
) -> None:
    if kind == "json":
        reply = Reply(chunks=[b'{"key":', b'"value"}'], headers=JSON_HEADERS, drop_after=1)
    else:
        reply = Reply(chunks=openai_stream_chunks(["a", "b"]), headers=SSE_HEADERS, drop_after=2)
    fake_server.enqueue(reply)

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            with pytest.raises(flavour.lib.TransportError):
                await client.call("POST", fake_server.url + CHAT_PATH, json={"stream": True})
            assert len(spans.steps()) == 1  # recorded at once

    drive(flavour, scenario)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert "Error" in attempt["error"]
    assert attempt["response_status"] == 200
    assert step_status(step) == "error"
    assert jattr(step, attr.STEP_ERROR)["type"].startswith(flavour.lib_name + ".")


@flavours
def test_max_drain_bytes_respected(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    """Adapted: we never read from a body after the caller closed it (no drain at all),
    however much is still pending; the record holds exactly what the caller read."""
    doc = b'{"safe":"ok"}'
    fake_server.enqueue(Reply(chunks=[doc, b" " * (128 * 1024)], headers=JSON_HEADERS, hold=hold))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            assert await resp.take(1) == [doc]
            await resp.close()
            assert resp.raw.num_bytes_downloaded == len(doc)

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert body_of(attempt) == doc


@flavours
def test_inner_close_error(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    """An error closing the inner body reaches the caller and fails the attempt. (A body
    already read to EOF is complete before any close: see the SSE variant above.)"""
    close_error = OSError("connection reset by peer")
    fake_server.enqueue(Reply(chunks=[b'{"ok":', b"true}"], headers=JSON_HEADERS, hold=hold))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            assert await resp.take(1) == [b'{"ok":']
            with pytest.raises(OSError) as caught:
                await resp.close()
            assert caught.value is close_error

    transport = flavour.transport(FailingCloseTransport(flavour, close_error))
    drive(flavour, scenario, transport=transport)
    attempt = only_attempt(spans)
    assert attempt["status"] == "failed"
    assert "connection reset by peer" in attempt["error"]


@flavours
def test_204_no_content_succeeds(flavour: Flavour, spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(Reply(status=204))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("DELETE", fake_server.url + "/resource")
            await resp.close()

    drive(flavour, scenario)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"
    assert attempt["response_status"] == 204
    assert "error" not in attempt
    assert step_status(step) == "completed"


@flavours
def test_304_not_modified_succeeds(flavour: Flavour, spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(
        Reply(status=304, headers={"Content-Type": "application/json", "Content-Length": "42"})
    )

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/resource")
            await resp.close()

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert attempt["response_status"] == 304
    assert "error" not in attempt
