"""``chatdebug.instrument_httpx()``: record through every httpx / httpx2 client of the process.

The seam is the client's transport, as with our explicit clients: the ``__init__`` of
``httpx.Client``, ``httpx.AsyncClient``, ``httpx2.Client`` and ``httpx2.AsyncClient`` is
patched on the classes themselves, so subclasses (the openai and anthropic SDKs' default
clients) and modules that imported the names before us are covered alike. After the
original ``__init__`` has built the transports, the client's default transport and each
of its mounts is wrapped in a :class:`_PatchedTransport` — unless it already is, or
wraps, one of ours, so nothing is recorded twice. Clients built before the call are
wrapped the same way at their next request (``_transport_for_url``, which every send
goes through, is patched too).

Uninstrumenting restores the original methods (when nothing patched them after us) and
clears a module flag that the patched transports check on every request: clients made
while instrumented become plain pass-throughs.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

import httpx
import httpx2

from ..._safety import suppress_internal_errors
from .._context import current_run
from ._transport import AsyncTransport, Transport

__all__ = ["instrument_httpx", "is_httpx_instrumented", "uninstrument_httpx"]

logger = logging.getLogger("chatdebug")

_CLIENT_CLASSES: tuple[tuple[type[Any], bool], ...] = (
    (httpx.Client, False),
    (httpx.AsyncClient, True),
    (httpx2.Client, False),
    (httpx2.AsyncClient, True),
)

_lock = threading.Lock()
_client_lock = threading.Lock()
_instrumented = False
# (class, method) -> (ours, the one it replaced); identity, not a marker attribute, tells
# ours apart (functools.wraps would copy a marker onto another library's wrapper).
_patched: dict[tuple[type[Any], str], tuple[Callable[..., Any], Callable[..., Any]]] = {}


def _inner_attribute(wrapper: Any, name: str) -> Any:
    # Code that reaches into a client's transport (``client._transport._pool``) finds
    # what it expects: the wrapped transport's attributes.
    if name.startswith("__") or name == "_patched_inner":
        raise AttributeError(name)
    return getattr(wrapper._patched_inner, name)


class _PatchedTransport(Transport):
    """Our :class:`Transport` as ``instrument_httpx()`` puts it into a client: records
    while instrumented, passes every request straight through once uninstrumented."""

    _model_calls_only = True

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self._patched_inner = inner

    def handle_request(self, request: Any) -> Any:
        if not _instrumented or current_run() is None:  # the common case: no cost
            return self._patched_inner.handle_request(request)
        return super().handle_request(request)

    def __getattr__(self, name: str) -> Any:
        return _inner_attribute(self, name)


class _PatchedAsyncTransport(AsyncTransport):
    """The async twin of :class:`_PatchedTransport`."""

    _model_calls_only = True

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self._patched_inner = inner

    async def handle_async_request(self, request: Any) -> Any:
        if not _instrumented or current_run() is None:
            return await self._patched_inner.handle_async_request(request)
        return await super().handle_async_request(request)

    def __getattr__(self, name: str) -> Any:
        return _inner_attribute(self, name)


_TRANSPORT_BASES: tuple[type[Any], ...] = (
    httpx.BaseTransport,
    httpx.AsyncBaseTransport,
    httpx2.BaseTransport,
    httpx2.AsyncBaseTransport,
)
_MARK = "_chatdebug_instrumented"


def _holds_ours(transport: Any, depth: int = 3) -> bool:
    """Whether a custom transport wraps one of ours (``RetryTransport(chatdebug.Transport())``):
    wrapping it again would record each attempt twice."""
    try:
        fields = list(vars(transport).values())
    except TypeError:  # no __dict__
        return False
    for value in fields:
        if isinstance(value, Transport | AsyncTransport):
            return True
        if depth > 1 and isinstance(value, _TRANSPORT_BASES) and _holds_ours(value, depth - 1):
            return True
    return False


def _wrap(transport: Any, is_async: bool) -> Any:
    if transport is None or isinstance(transport, Transport | AsyncTransport):
        return transport  # None in mounts means "the default transport"; ours records already
    if _holds_ours(transport):
        return transport
    return _PatchedAsyncTransport(transport) if is_async else _PatchedTransport(transport)


def _instrument_client(client: Any, is_async: bool) -> None:
    """Wrap the default transport and every mounted one of a client, once."""
    with _client_lock:
        if client.__dict__.get(_MARK):
            return
        client._transport = _wrap(client._transport, is_async)
        mounts = getattr(client, "_mounts", None)
        if mounts:
            client._mounts = {pattern: _wrap(t, is_async) for pattern, t in mounts.items()}
        client.__dict__[_MARK] = True


def _patched_init(original: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
    """New clients: wrap their transports as soon as they are built."""

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if _instrumented:
            with suppress_internal_errors("instrument_httpx"):
                _instrument_client(self, is_async)

    return __init__


def _patched_transport_for_url(original: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
    """Clients built before ``instrument_httpx()`` (a module-level ``OpenAI()``): wrap
    their transports on their first request after it."""

    @functools.wraps(original)
    def _transport_for_url(self: Any, url: Any) -> Any:
        if _instrumented and not self.__dict__.get(_MARK):
            with suppress_internal_errors("instrument_httpx"):
                _instrument_client(self, is_async)
        return original(self, url)

    return _transport_for_url


_PATCHES: tuple[tuple[str, Callable[[Callable[..., Any], bool], Callable[..., Any]]], ...] = (
    ("__init__", _patched_init),
    ("_transport_for_url", _patched_transport_for_url),
)


def _ours_in_place(cls: type[Any], name: str) -> bool:
    entry = _patched.get((cls, name))
    return entry is not None and cls.__dict__.get(name) is entry[0]


def instrument_httpx() -> None:
    """Record through every ``httpx`` / ``httpx2`` client of the process, sync and
    async — the openai and anthropic SDKs' default clients and those that other
    libraries build internally included, with or without a custom ``transport`` or
    ``mounts``. Inside a ``chatdebug.run()`` each request is recorded exactly as through
    :func:`chatdebug.httpx2_client`; outside one it is a plain pass-through.

    Call it once at start-up (or pass ``instrument_httpx=True`` to
    :func:`chatdebug.configure`); neither the import order of the SDKs nor when their
    clients were created matters (a client created earlier is instrumented at its next
    request). Calling it again does nothing, and a client whose transport already is,
    or wraps, a chatdebug transport is left as it is, so every attempt is recorded once.
    """
    global _instrumented
    with _lock:
        for cls, is_async in _CLIENT_CLASSES:
            for name, make in _PATCHES:
                original = cls.__dict__.get(name)
                if original is not None and not _ours_in_place(cls, name):
                    wrapper = make(original, is_async)
                    _patched[(cls, name)] = (wrapper, original)
                    setattr(cls, name, wrapper)
        if _instrumented:
            logger.debug("chatdebug.instrument_httpx() called again: already instrumented")
        _instrumented = True


def uninstrument_httpx() -> None:
    """Undo :func:`instrument_httpx`: the client classes get their own methods back, and
    clients instrumented meanwhile stop recording (they pass every request through).
    Idempotent."""
    global _instrumented
    with _lock:
        _instrumented = False
        for cls, _ in _CLIENT_CLASSES:
            for name, _make in _PATCHES:
                if _ours_in_place(cls, name):
                    setattr(cls, name, _patched.pop((cls, name))[1])
                # Patched again by another library after us: leave its patch in place;
                # ours, inside it, does nothing while the flag is off.


def is_httpx_instrumented() -> bool:
    """Whether :func:`instrument_httpx` is in force."""
    return _instrumented
