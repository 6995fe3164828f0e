"""``chatdebug.instrument_aiohttp()``: record through every aiohttp client session of the
process (google-genai's async client among them).

The seam is ``aiohttp.ClientSession._request``, the coroutine that ``request()``, every
verb and the module-level ``aiohttp.request()`` go through. It is patched on the class,
so sessions made before the call and subclasses are covered alike. Outside a recording
run the patched coroutine only checks two values and awaits the original.

Inside one, each call is one attempt, begun through the same path as the httpx
transports (``_transport.begin_attempt``, with the model-call filter of process-wide
instrumentation and ``configure(stream_usage=True)``): it is handed an ``httpx.Request``
that describes the call (method, URL with ``params``, the session's and the call's
headers, and the body when it is ``bytes``, ``str`` or ``json=``; form dicts, files,
async generators and payload objects are not read, as they may not be replayable). The
original coroutine then runs as it would have, so ``trace_configs``, middlewares,
redirects, ``raise_for_status`` and timeouts behave as before; a failure before the
response (connection refused, timeout, cancellation, ``raise_for_status``) fails the
attempt and propagates unchanged.

The response's ``content`` becomes a :class:`_ContentTee` that reads the aiohttp
``StreamReader`` beneath on the caller's behalf: every read method (``read()``, which
``ClientResponse.read/text/json`` use, ``readany``, ``readline`` and ``async for line``,
``readuntil``, ``readchunk``, ``readexactly``, ``read_nowait``, ``iter_chunked``,
``iter_any``, ``iter_chunks``) returns exactly the bytes it returned, and a copy goes to
the capture. aiohttp decodes ``Content-Encoding`` itself (``auto_decompress``): the
capture is then told the bytes are decoded, and stores them as the httpx capture stores
what it decodes. The attempt ends exactly once: at the end of the body (``eof``), when
the response is released or closed before it (aiohttp then sets an exception on its
``content``: ``closed``), at a read error or cancellation (``read_error``), when the run
or step ends, or when the response is garbage-collected unreleased (the reaper).

Limits: a call that follows redirects is one attempt (the first URL, the last
response); with ``raise_for_status`` aiohttp releases an error response unread, so its
attempt has the exception, not the body.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Final

import httpx

from ..._safety import handle_internal_error, suppress_internal_errors
from .._context import current_run
from ._attempt import AttemptCapture
from ._streams import on_collected
from ._transport import attempt_failed, begin_attempt

__all__ = ["instrument_aiohttp", "is_aiohttp_instrumented", "uninstrument_aiohttp"]

_COMPONENT: Final = "instrument_aiohttp"
# What aiohttp's response parser decodes when ``auto_decompress`` is on.
_DECODED_ENCODINGS: Final = frozenset({"gzip", "deflate", "br", "zstd"})

_lock = threading.Lock()
_instrumented = False
# (class, ours, the coroutine it replaced) while ours is somewhere in the class's chain.
_patch: tuple[type[Any], Callable[..., Any], Callable[..., Any]] | None = None


# -- the request -----------------------------------------------------------------------


def _request_body(session: Any, kwargs: dict[str, Any]) -> bytes | None:
    """The body aiohttp will send, when it can be known without consuming anything."""
    data = kwargs.get("data")
    value = kwargs.get("json")
    if value is not None:
        if data is not None:
            return None  # aiohttp refuses the call itself
        try:
            dumps_bytes = getattr(session, "_json_serialize_bytes", None)
            if dumps_bytes is not None:
                return bytes(dumps_bytes(value))
            text: str = session._json_serialize(value)
            return text.encode("utf-8")
        except Exception:  # not serializable: aiohttp raises the caller's error itself
            return None
    if data is None:
        return b""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    return None


def _content_type(kwargs: dict[str, Any]) -> str | None:
    """The ``Content-Type`` aiohttp gives a ``json=`` or ``str`` body of its own accord."""
    if kwargs.get("json") is not None:
        return "application/json"
    if isinstance(kwargs.get("data"), str):
        return "text/plain; charset=utf-8"
    return None


def _describe(session: Any, method: str, str_or_url: Any, kwargs: dict[str, Any]) -> Any:
    """An ``httpx.Request`` saying what the call will send (never sent itself), or None
    when the call cannot be described."""
    from multidict import CIMultiDict
    from yarl import URL

    build = getattr(session, "_build_url", URL)  # joins the session's base_url
    try:
        url = build(str_or_url)
    except ValueError:
        return None  # not a URL: aiohttp tells the caller
    params = kwargs.get("params")
    if params:
        url = url.extend_query(params) if hasattr(url, "extend_query") else url.update_query(params)
    prepare = getattr(session, "_prepare_headers", None)  # the session's defaults merged
    given = kwargs.get("headers")
    headers = prepare(given) if prepare is not None else CIMultiDict(given or {})
    content_type = _content_type(kwargs)
    if content_type is not None:
        headers.setdefault("Content-Type", content_type)
    return httpx.Request(
        str(method).upper(),
        str(url),
        headers=list(headers.items()),
        content=_request_body(session, kwargs),
    )


def _with_body(kwargs: dict[str, Any], body: bytes) -> dict[str, Any]:
    """The call's arguments sending ``body`` instead (``configure(stream_usage=True)``
    rewrote the request), with the content type the original body would have had."""
    from multidict import CIMultiDict

    headers: Any = CIMultiDict(kwargs.get("headers") or {})
    headers.popall("Content-Length", None)
    content_type = _content_type(kwargs)
    if content_type is not None:
        headers.setdefault("Content-Type", content_type)
    changed = {key: value for key, value in kwargs.items() if key != "json"}
    changed["data"] = body
    changed["headers"] = headers
    return changed


def _begin_call(
    session: Any, method: str, str_or_url: Any, kwargs: dict[str, Any]
) -> tuple[AttemptCapture | None, dict[str, Any]]:
    """The capture of this call (None: pass it through) and the arguments to send."""
    request = _describe(session, method, str_or_url, kwargs)
    if request is None:
        return None, kwargs
    sent = request.content
    # A process-wide patch: only model calls become steps, as through instrument_httpx().
    capture = begin_attempt(request, model_calls_only=True)
    if capture is not None and request.content != sent:
        kwargs = _with_body(kwargs, request.content)
    return capture, kwargs


# -- the response ----------------------------------------------------------------------


def _decoded_by_aiohttp(response: Any, session: Any, kwargs: dict[str, Any]) -> bool:
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if not encoding or encoding == "identity":
        return False
    try:
        # Set (to the compressed size so far) when aiohttp decompresses the body.
        return response.content.total_compressed_bytes is not None
    except AttributeError:  # an aiohttp without it: decide as its parser does
        auto = kwargs.get("auto_decompress")
        if auto is None:
            auto = getattr(session, "_auto_decompress", True)
        return bool(auto) and encoding in _DECODED_ENCODINGS


def _attach(capture: AttemptCapture, response: Any, session: Any, kwargs: dict[str, Any]) -> None:
    """Note the response and tee its body into the capture; never fails."""
    if not response.history:
        with suppress_internal_errors(_COMPONENT):
            # The headers really sent (aiohttp adds its own: User-Agent, Host, lengths).
            sent = list(response.request_info.headers.items())
            capture.headers_sent(sent)
    with suppress_internal_errors(_COMPONENT):
        pairs = list(response.headers.items())
        body_headers = None
        if _decoded_by_aiohttp(response, session, kwargs):
            skip = ("content-encoding", "content-length")
            body_headers = [(name, value) for name, value in pairs if name.lower() not in skip]
        capture.response_started(response.status, pairs, body_headers=body_headers)
        body = getattr(response, "_body", None)
        if body is not None:
            # Read whole inside the call (by a raise_for_status callback): later reads
            # return this copy without touching ``content``.
            capture.feed(body)
            capture.eof()
            return
        response.content = _ContentTee(response.content, capture)


class _Iterator:
    """``async for`` over a read method, up to the value that means the end."""

    __slots__ = ("_end", "_read")

    def __init__(self, read: Callable[[], Awaitable[Any]], end: Any = b"") -> None:
        self._read = read
        self._end = end

    def __aiter__(self) -> _Iterator:
        return self

    async def __anext__(self) -> Any:
        value = await self._read()
        if value == self._end:
            raise StopAsyncIteration
        return value


_OWN_SLOTS: Final = frozenset({"_inner", "_capture", "_finalizer"})


class _ContentTee:
    """``response.content`` of a recorded response: reads the aiohttp ``StreamReader``
    beneath, hands the caller exactly what it returned and the capture a copy, and tells
    the capture how the body ended. Everything else is the reader's own."""

    __slots__ = ("__weakref__", "_capture", "_finalizer", "_inner")

    _inner: Any
    _capture: AttemptCapture
    _finalizer: weakref.finalize[..., Any]

    def __init__(self, inner: Any, capture: AttemptCapture) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_capture", capture)
        object.__setattr__(self, "_finalizer", weakref.finalize(self, on_collected, capture))

    # -- reads ---------------------------------------------------------------------------
    def _passed(self, data: bytes) -> bytes:
        if data:
            # Inline try rather than a context manager: this runs once per read.
            try:
                self._capture.feed(data)
            except Exception as internal:
                handle_internal_error("transport.stream", internal)
        if self._inner.at_eof():
            self._ended(self._capture.eof)
        return data

    def attempt_failed(self, exc: BaseException) -> None:
        capture = self._capture
        self._ended(lambda: capture.read_error(exc))

    def _ended(self, event: Callable[[], None]) -> None:
        self._finalizer.detach()
        with suppress_internal_errors("transport.stream"):
            event()

    async def read(self, n: int = -1) -> bytes:
        try:
            data: bytes = await self._inner.read(n)
        except BaseException as exc:
            self.attempt_failed(exc)
            raise
        return self._passed(data)

    async def readany(self) -> bytes:
        try:
            data: bytes = await self._inner.readany()
        except BaseException as exc:
            self.attempt_failed(exc)
            raise
        return self._passed(data)

    async def readline(self, *args: Any, **kwargs: Any) -> bytes:
        try:
            data: bytes = await self._inner.readline(*args, **kwargs)
        except BaseException as exc:
            self.attempt_failed(exc)
            raise
        return self._passed(data)

    async def readuntil(self, *args: Any, **kwargs: Any) -> bytes:
        try:
            data: bytes = await self._inner.readuntil(*args, **kwargs)
        except BaseException as exc:
            self.attempt_failed(exc)
            raise
        return self._passed(data)

    async def readchunk(self) -> tuple[bytes, bool]:
        try:
            data, end_of_chunk = await self._inner.readchunk()
        except BaseException as exc:
            self.attempt_failed(exc)
            raise
        return self._passed(data), end_of_chunk

    async def readexactly(self, n: int) -> bytes:
        try:
            data: bytes = await self._inner.readexactly(n)
        except asyncio.IncompleteReadError as short:
            self._passed(short.partial)  # the body ended first: what there was, then EOF
            raise
        except BaseException as exc:
            self.attempt_failed(exc)
            raise
        return self._passed(data)

    def read_nowait(self, n: int = -1) -> bytes:
        try:
            data: bytes = self._inner.read_nowait(n)
        except BaseException as exc:
            self.attempt_failed(exc)
            raise
        return self._passed(data)

    def __aiter__(self) -> _Iterator:
        return _Iterator(self.readline)

    def iter_chunked(self, n: int) -> _Iterator:
        set_size = getattr(self._inner, "set_read_chunk_size", None)
        if set_size is not None:
            set_size(n)
        return _Iterator(lambda: self.read(n))

    def iter_any(self) -> _Iterator:
        return _Iterator(self.readany)

    def iter_chunks(self) -> _Iterator:
        return _Iterator(self.readchunk, (b"", False))

    # -- the response released or closed -------------------------------------------------
    def set_exception(self, exc: BaseException, *args: Any, **kwargs: Any) -> None:
        """aiohttp's ``release()`` / ``close()`` of a response whose body was not read to
        its end set "Connection closed" here: the caller stopped reading."""
        self._inner.set_exception(exc, *args, **kwargs)
        self._ended(self._capture.closed)

    # -- everything else is the reader's -------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name in _OWN_SLOTS:  # not set yet
            raise AttributeError(name)
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN_SLOTS:
            object.__setattr__(self, name, value)
        else:
            setattr(self._inner, name, value)

    def __repr__(self) -> str:
        return repr(self._inner)


# -- the patch -------------------------------------------------------------------------


def _patched_request(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)  # inspect.signature() still shows aiohttp's (google-genai reads it)
    async def _request(self: Any, method: str, str_or_url: Any, **kwargs: Any) -> Any:
        if not _instrumented or current_run() is None:  # the common case: no cost
            return await original(self, method, str_or_url, **kwargs)
        capture = None
        with suppress_internal_errors(_COMPONENT):
            capture, kwargs = _begin_call(self, method, str_or_url, kwargs)
        if capture is None:
            return await original(self, method, str_or_url, **kwargs)
        try:
            response = await original(self, method, str_or_url, **kwargs)
        except BaseException as exc:
            attempt_failed(capture, exc)
            raise
        _attach(capture, response, self, kwargs)
        return response

    return _request


def _import_aiohttp() -> Any:
    try:
        import aiohttp
    except ImportError as exc:
        raise ImportError(
            "chatdebug.instrument_aiohttp() needs aiohttp: pip install 'chatdebug[aiohttp]'"
        ) from exc
    return aiohttp


def instrument_aiohttp() -> None:
    """Record through every ``aiohttp.ClientSession`` of the process, sessions created
    before the call and subclasses included (google-genai's async client uses aiohttp
    whenever it is installed). Inside a ``chatdebug.run()`` each model call is recorded
    as through :func:`chatdebug.instrument_httpx`; other requests and everything outside
    a run pass through.

    Raises :class:`ImportError` when aiohttp is not installed
    (``pip install 'chatdebug[aiohttp]'``). Calling it again does nothing;
    :func:`chatdebug.instrument_http` calls it when aiohttp is installed."""
    global _instrumented, _patch
    aiohttp = _import_aiohttp()
    with _lock:
        if _patch is None:
            cls: type[Any] = aiohttp.ClientSession
            original = cls.__dict__["_request"]
            ours = _patched_request(original)
            cls._request = ours
            _patch = (cls, ours, original)
        # else ours is in the chain already (perhaps under another library's patch).
        _instrumented = True


def uninstrument_aiohttp() -> None:
    """Undo :func:`instrument_aiohttp`: ``ClientSession._request`` is aiohttp's own again
    (unless another library patched it after us: ours, inside its patch, then passes
    every request through). Idempotent; does nothing when aiohttp is not installed."""
    global _instrumented, _patch
    with _lock:
        _instrumented = False
        if _patch is not None:
            cls, ours, original = _patch
            if cls.__dict__.get("_request") is ours:
                cls._request = original
                _patch = None


def is_aiohttp_instrumented() -> bool:
    """Whether :func:`instrument_aiohttp` is in force."""
    return _instrumented
