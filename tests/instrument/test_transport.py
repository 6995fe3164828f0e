"""HTTP capture through ``chatdebug.Transport`` / ``chatdebug.AsyncTransport``.

Ports the reference's ``transport_internal_test.go`` (one test per name, snake_cased)
with real clients — httpx and httpx2, sync and async — against a real loopback server,
asserting on the attempt records of the finished step spans. Where a Go test exercises
something that does not exist here, its docstring says so and it tests what we do
instead.

This module holds the shared helpers and the request side (request capture, transport
errors, pass-through); the sibling modules cover response bodies
(``test_transport_bodies``), server-sent events (``test_transport_sse``), stream
lifecycle and encodings (``test_transport_streams``) and step grouping
(``test_transport_steps``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
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
from chatdebug.instrument._redact import REDACTED, Redactor
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


SECRET_JSON = b'{"token":"response-secret","safe":"ok"}'


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
