"""Response byte streams that tee into an :class:`~._attempt.AttemptCapture`.

Each chunk is handed to the caller exactly as the inner stream produced it, as soon as
it arrives; a copy goes to the capture. Nothing is buffered ahead of the caller. The
capture hears about end of body, close, errors and — through a ``weakref`` finalizer
run on the reaper thread — a stream dropped without being closed. Our own failures never
reach the caller (they are logged and counted); the caller's and the network's errors
reach it unchanged.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import httpx2

from ..._safety import handle_internal_error, suppress_internal_errors
from ._attempt import AttemptCapture
from ._reaper import defer

__all__ = ["on_collected", "wrap_response_stream"]

_GC_REASON = "the response was garbage-collected before it was closed"


def on_collected(capture: AttemptCapture) -> None:
    """A body was garbage-collected unclosed: its attempt is abandoned on the reaper
    thread (never in the finalizer itself, which may run anywhere)."""
    defer(lambda: capture.abandon(_GC_REASON))


class _SyncTee:
    _inner: Any
    # Let go of at close: httpx's response and its stream refer to each other, so the
    # stream lives until the cyclic garbage collector runs, and the capture (with its
    # step, span and records) must not wait with it.
    _capture: AttemptCapture | None

    def _setup(self, inner: Any, capture: AttemptCapture) -> None:
        self._inner = inner
        self._capture = capture
        self._finalizer = weakref.finalize(self, on_collected, capture)

    def __iter__(self) -> Iterator[bytes]:
        capture = self._capture
        if capture is None:
            yield from self._inner
            return
        try:
            for chunk in self._inner:
                # Inline try rather than a context manager: this runs once per chunk.
                try:
                    capture.feed(chunk)
                except Exception as internal:
                    handle_internal_error("transport.stream", internal)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            with suppress_internal_errors("transport.stream"):
                capture.read_error(exc)
            raise
        with suppress_internal_errors("transport.stream"):
            capture.eof()

    def close(self) -> None:
        self._finalizer.detach()
        capture, self._capture = self._capture, None
        try:
            self._inner.close()
        except BaseException as exc:
            if capture is not None:
                with suppress_internal_errors("transport.stream"):
                    capture.closed(exc)
            raise
        if capture is not None:
            with suppress_internal_errors("transport.stream"):
                capture.closed()


class _AsyncTee:
    _inner: Any
    # Let go of at close: httpx's response and its stream refer to each other, so the
    # stream lives until the cyclic garbage collector runs, and the capture (with its
    # step, span and records) must not wait with it.
    _capture: AttemptCapture | None

    def _setup(self, inner: Any, capture: AttemptCapture) -> None:
        self._inner = inner
        self._capture = capture
        self._finalizer = weakref.finalize(self, on_collected, capture)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        capture = self._capture
        if capture is None:
            async for chunk in self._inner:
                yield chunk
            return
        try:
            async for chunk in self._inner:
                try:
                    capture.feed(chunk)
                except Exception as internal:
                    handle_internal_error("transport.stream", internal)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            with suppress_internal_errors("transport.stream"):
                capture.read_error(exc)
            raise
        with suppress_internal_errors("transport.stream"):
            capture.eof()

    async def aclose(self) -> None:
        self._finalizer.detach()
        capture, self._capture = self._capture, None
        try:
            await self._inner.aclose()
        except BaseException as exc:
            if capture is not None:
                with suppress_internal_errors("transport.stream"):
                    capture.closed(exc)
            raise
        if capture is not None:
            with suppress_internal_errors("transport.stream"):
                capture.closed()


# httpx and httpx2 each check ``isinstance(stream, SyncByteStream)`` against their own
# base class, so there is one concrete class per library and direction.
class _HttpxSyncTee(_SyncTee, httpx.SyncByteStream):
    def __init__(self, inner: Any, capture: AttemptCapture) -> None:
        self._setup(inner, capture)


class _Httpx2SyncTee(_SyncTee, httpx2.SyncByteStream):
    def __init__(self, inner: Any, capture: AttemptCapture) -> None:
        self._setup(inner, capture)


class _HttpxAsyncTee(_AsyncTee, httpx.AsyncByteStream):
    def __init__(self, inner: Any, capture: AttemptCapture) -> None:
        self._setup(inner, capture)


class _Httpx2AsyncTee(_AsyncTee, httpx2.AsyncByteStream):
    def __init__(self, inner: Any, capture: AttemptCapture) -> None:
        self._setup(inner, capture)


def wrap_response_stream(response: Any, capture: AttemptCapture, *, is_async: bool) -> None:
    """Replace ``response.stream`` by a teeing wrapper of the right library and kind."""
    v2 = isinstance(response, httpx2.Response)
    if is_async:
        cls: type = _Httpx2AsyncTee if v2 else _HttpxAsyncTee
    else:
        cls = _Httpx2SyncTee if v2 else _HttpxSyncTee
    response.stream = cls(response.stream, capture)
