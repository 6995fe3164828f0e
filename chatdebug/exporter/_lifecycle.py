"""Process lifecycle hooks: re-initialise after ``fork`` and flush at interpreter exit.

Each hook is installed once per process, however many writers and processors exist;
objects are held weakly, so registering never keeps one alive.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from typing import Final, Protocol

__all__ = ["ATEXIT_FLUSH_SECONDS", "register_exit_flush", "register_fork_safe"]

ATEXIT_FLUSH_SECONDS: Final = 5.0
"""Total time the ``atexit`` hook waits for all writers to flush."""


class _ForkSafe(Protocol):
    def _after_fork_in_child(self) -> None: ...


class _Flushable(Protocol):
    def flush(self, timeout: float) -> bool: ...


_fork_safe: weakref.WeakSet[_ForkSafe] = weakref.WeakSet()
_flushables: weakref.WeakSet[_Flushable] = weakref.WeakSet()
_lock = threading.Lock()
_installed = False


def _reinit_in_child() -> None:
    global _lock
    # Another thread of the parent may have held the lock at fork time.
    _lock = threading.Lock()
    for obj in list(_fork_safe):
        obj._after_fork_in_child()


def _flush_at_exit() -> None:
    deadline = time.monotonic() + ATEXIT_FLUSH_SECONDS
    for obj in list(_flushables):
        obj.flush(max(0.0, deadline - time.monotonic()))


def _install() -> None:
    global _installed
    with _lock:
        if not _installed:
            os.register_at_fork(after_in_child=_reinit_in_child)
            atexit.register(_flush_at_exit)
            _installed = True


def register_fork_safe(obj: _ForkSafe) -> None:
    """Call ``obj._after_fork_in_child()`` in every forked child while ``obj`` lives."""
    _install()
    _fork_safe.add(obj)


def register_exit_flush(obj: _Flushable) -> None:
    """Call ``obj.flush(timeout)`` at interpreter exit while ``obj`` lives."""
    _install()
    _flushables.add(obj)
