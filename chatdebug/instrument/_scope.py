"""A base for objects usable as ``with``, ``async with`` and as a decorator of sync and
async functions, opening a fresh scope for every use (like OpenTelemetry's agnostic
context manager, so an async function's scope covers its awaited body)."""

from __future__ import annotations

import contextvars
import functools
import inspect
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, TypeVar, cast

__all__ = ["ScopeFactory", "bind_context"]

H = TypeVar("H")
F = TypeVar("F", bound=Callable[..., Any])


class ScopeFactory(Generic[H]):
    """Subclasses implement :meth:`_open` and :meth:`_close`."""

    def __init__(self) -> None:
        self._scopes: list[tuple[H, Any]] = []
        self._lock = threading.Lock()

    def _open(self) -> tuple[H, Any]:
        """Start a scope: the handle given to the user and a token for :meth:`_close`."""
        raise NotImplementedError

    def _close(self, token: Any, exc: BaseException | None) -> None:
        """End the scope opened with ``token``; ``exc`` left the block (or None)."""
        raise NotImplementedError

    def __enter__(self) -> H:
        handle, token = self._open()
        with self._lock:
            self._scopes.append((handle, token))
        return handle

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            _, token = self._scopes.pop()
        self._close(token, exc)

    async def __aenter__(self) -> H:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                _, token = self._open()
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    self._close(token, exc)
                    raise
                self._close(token, None)
                return result

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _, token = self._open()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                self._close(token, exc)
                raise
            self._close(token, None)
            return result

        return cast(F, wrapper)


def bind_context(func: F) -> F:
    """Make ``func`` run in (a copy of) the caller's current context, wherever it is
    called — e.g. ``executor.submit(chatdebug.bind_context(work), ...)`` keeps the
    current run and step inside a thread pool."""
    context = contextvars.copy_context()

    @functools.wraps(func)
    def bound(*args: Any, **kwargs: Any) -> Any:
        # A Context can be entered by one thread at a time: each call gets its own copy.
        return context.copy().run(func, *args, **kwargs)

    return cast(F, bound)
