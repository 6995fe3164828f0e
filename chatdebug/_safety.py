"""The guard around every piece of chatdebug code that runs inside the caller's code.

Our failures are logged (once per distinct message per minute, so a broken store cannot
flood the logs) and counted per component, and the caller's code goes on. With
``CHATDEBUG_RAISE_INTERNAL_ERRORS=1`` (the test suite) they raise instead.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from types import TracebackType

from .environment_variables import CHATDEBUG_RAISE_INTERNAL_ERRORS, truthy

__all__ = [
    "handle_internal_error",
    "internal_error_counts",
    "log_internal_error",
    "suppress_internal_errors",
]

logger = logging.getLogger("chatdebug")

_counts: Counter[str] = Counter()
_last_logged: dict[tuple[str, str], float] = {}
_lock = threading.Lock()
_LOG_INTERVAL_SECONDS = 60.0


def _raise_enabled() -> bool:
    return truthy(os.environ.get(CHATDEBUG_RAISE_INTERNAL_ERRORS))


def log_internal_error(component: str, exc: BaseException) -> None:
    """Count ``exc`` under ``component`` and log it, rate-limited per message."""
    key = (component, f"{type(exc).__name__}: {exc}")
    now = time.monotonic()
    with _lock:
        _counts[component] += 1
        last = _last_logged.get(key)
        should_log = last is None or now - last >= _LOG_INTERVAL_SECONDS
        if should_log:
            if len(_last_logged) > 1000:
                _last_logged.clear()
            _last_logged[key] = now
    if should_log:
        logger.warning(
            "chatdebug internal error in %s (the application keeps running, "
            "with less debug data): %s",
            component,
            key[1],
            exc_info=exc,
        )


def handle_internal_error(component: str, exc: Exception) -> None:
    """For hot paths that catch inline: log and count ``exc`` (or re-raise it in tests)."""
    if _raise_enabled():
        raise exc
    log_internal_error(component, exc)


class suppress_internal_errors:
    """Run a block of chatdebug code; an ``Exception`` from it is logged and counted.

    A class rather than a ``@contextmanager`` generator: it guards several blocks of
    every recorded call, and entering this costs a fifth of a generator's set-up."""

    __slots__ = ("_component",)

    def __init__(self, component: str) -> None:
        self._component = component

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        if _raise_enabled():
            return False
        log_internal_error(self._component, exc)
        return True


def internal_error_counts() -> dict[str, int]:
    """Internal errors so far, by component (for the metrics collector)."""
    with _lock:
        return dict(_counts)
