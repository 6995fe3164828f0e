"""What the capture tests share: the four client flavours (httpx and httpx2, sync and
async), one scenario driven through any of them, inner transports with deliberate
behaviour, and readers of the recorded attempts.

The capture logic does not depend on the HTTP library: every flavour hands the same
events (chunk, end of body, close, error) to one ``AttemptCapture``. So the completion,
redaction and normalization rules are tested once, through :data:`ONE_FLAVOUR` (httpx2
sync, what the openai and anthropic SDKs use by default; ``@flavours``), and only the
seams where the libraries differ run on all four (``@all_flavours``): the body tee
(bytes passed on unchanged by the raw, bytes and stream iterators), close (early, by a
context manager's exit, racing a reader), errors from the inner transport or stream
(transport, read and close errors, cancellation), garbage collection of an unclosed
response, streamed (non-replayable) request bodies, and the default inner transport.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import socket
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

import httpx
import httpx2
import pytest
from opentelemetry.sdk.trace import ReadableSpan

import chatdebug
from chatdebug import _spans as attr
from tests.instrument.support import Spans, jattr

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
# What the openai and anthropic SDKs use by default.
ONE_FLAVOUR = Flavour("httpx2", False)


def _flavour_id(flavour: Flavour) -> str:
    return flavour.id


# A completion, redaction or normalization rule: one real round trip shows it.
flavours = pytest.mark.parametrize("flavour", [ONE_FLAVOUR], ids=_flavour_id)
# A seam where the libraries differ (the body tee, close, errors, garbage collection,
# streamed request bodies, sync against async): every flavour.
all_flavours = pytest.mark.parametrize("flavour", FLAVOURS, ids=_flavour_id)


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


class FailingStreamTransport(SpyTransport):
    """Real responses whose byte stream raises ``read_error`` when asked for more after
    ``after`` chunks (without reading on), and/or ``close_error`` when closed."""

    def __init__(
        self,
        flavour: Flavour,
        *,
        read_error: BaseException | None = None,
        after: int = 1,
        close_error: BaseException | None = None,
    ) -> None:
        super().__init__(flavour.http_transport())
        self.flavour = flavour
        self.read_error = read_error
        self.after = after
        self.close_error = close_error

    def _wrap(self, response: Any) -> Any:
        lib, inner = self.flavour.lib, response.stream
        read_error, after, close_error = self.read_error, self.after, self.close_error
        if self.flavour.is_async:

            class AsyncStream(lib.AsyncByteStream):  # type: ignore[misc, name-defined]
                async def __aiter__(self) -> AsyncIterator[bytes]:
                    count = 0
                    async for chunk in inner:
                        yield chunk
                        count += 1
                        if read_error is not None and count == after:
                            raise read_error

                async def aclose(self) -> None:
                    await inner.aclose()
                    if close_error is not None:
                        raise close_error

            stream: Any = AsyncStream()
        else:

            class SyncStream(lib.SyncByteStream):  # type: ignore[misc, name-defined]
                def __iter__(self) -> Iterator[bytes]:
                    count = 0
                    for chunk in inner:
                        yield chunk
                        count += 1
                        if read_error is not None and count == after:
                            raise read_error

                def close(self) -> None:
                    inner.close()
                    if close_error is not None:
                        raise close_error

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


class FailingCloseTransport(FailingStreamTransport):
    """Real responses whose byte stream raises ``error`` when closed."""

    def __init__(self, flavour: Flavour, error: BaseException) -> None:
        super().__init__(flavour, close_error=error)


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


# -- what a finished attempt leaves behind -----------------------------------------------


def note_captures(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> list[weakref.ref[Any]]:
    """Weak references to the captures ``module.begin_attempt`` makes from now on."""
    captures: list[weakref.ref[Any]] = []
    begin = module.begin_attempt

    def noted(request: Any, **kwargs: Any) -> Any:
        capture = begin(request, **kwargs)
        if capture is not None:
            captures.append(weakref.ref(capture))
        return capture

    monkeypatch.setattr(module, "begin_attempt", noted)
    return captures


@contextmanager
def cyclic_collector_off() -> Iterator[None]:
    """Only reference counting frees objects inside the block."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
