"""Process lifecycle hooks: re-initialise after ``fork`` and flush at interpreter exit.

Each hook is installed once per process, however many writers and processors exist;
objects are held weakly, so registering never keeps one alive.

At exit (a normal end, ``sys.exit``, or a SIGTERM that the application's server turns
into a graceful shutdown), every live writer gets :func:`exit_flush_timeout` seconds in
all to write what it holds; what is still queued then is counted as dropped with reason
``shutdown`` and logged once.

SIGTERM's default action ends a process without running ``atexit`` hooks, and servers
such as uvicorn re-raise the SIGTERM that started their graceful shutdown once it is
done. So, when the first writer is created on the main thread and SIGTERM still has its
default action, a handler is installed that does the same exit flush and then lets the
default action happen (the process still ends "killed by SIGTERM"). A handler the
application or its server installs replaces ours, as it should.
"""

from __future__ import annotations

import atexit
import math
import os
import signal
import threading
import time
import weakref
from typing import Final, Protocol

__all__ = [
    "DEFAULT_EXIT_FLUSH_SECONDS",
    "exit_flush_timeout",
    "register_exit_flush",
    "register_fork_safe",
    "set_exit_flush_timeout",
]

DEFAULT_EXIT_FLUSH_SECONDS: Final = 10.0
"""Default of :func:`exit_flush_timeout`."""


class _ForkSafe(Protocol):
    def _after_fork_in_child(self) -> None: ...


class _Closable(Protocol):
    def shutdown(self, timeout: float | None = None) -> bool: ...


_fork_safe: weakref.WeakSet[_ForkSafe] = weakref.WeakSet()
_closables: weakref.WeakSet[_Closable] = weakref.WeakSet()
_lock = threading.Lock()
_installed = False
_exit_flush_seconds = DEFAULT_EXIT_FLUSH_SECONDS


def exit_flush_timeout() -> float:
    """Seconds writers get to write what they hold when the process exits or the
    exporter shuts down (``configure(exit_flush_timeout=…)``)."""
    return _exit_flush_seconds


def set_exit_flush_timeout(seconds: float) -> None:
    """Set :func:`exit_flush_timeout`; ``ValueError`` unless a finite number ≥ 0."""
    global _exit_flush_seconds
    value = float(seconds)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"exit_flush_timeout must be a number of seconds >= 0, got {seconds!r}")
    _exit_flush_seconds = value


def _reinit_in_child() -> None:
    global _lock
    # Another thread of the parent may have held the lock at fork time.
    _lock = threading.Lock()
    for obj in list(_fork_safe):
        obj._after_fork_in_child()


def _close_at_exit() -> None:
    deadline = time.monotonic() + _exit_flush_seconds
    for obj in list(_closables):
        obj.shutdown(max(0.0, deadline - time.monotonic()))


def _close_on_sigterm(signum: int, frame: object) -> None:
    # On a thread of its own: the handler interrupts the main thread wherever it is,
    # possibly inside a writer's lock, which the flush needs; the wait is bounded.
    closer = threading.Thread(target=_close_at_exit, name="chatdebug-exit-flush", daemon=True)
    closer.start()
    closer.join(_exit_flush_seconds + 2.0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _install_sigterm_flush() -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may install handlers
    try:
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _close_on_sigterm)
    except (ValueError, OSError):
        pass  # an interpreter without signals (embedded): atexit only


def _install() -> None:
    global _installed
    with _lock:
        if not _installed:
            os.register_at_fork(after_in_child=_reinit_in_child)
            atexit.register(_close_at_exit)
            _install_sigterm_flush()
            _installed = True


def register_fork_safe(obj: _ForkSafe) -> None:
    """Call ``obj._after_fork_in_child()`` in every forked child while ``obj`` lives."""
    _install()
    _fork_safe.add(obj)


def register_exit_flush(obj: _Closable) -> None:
    """Call ``obj.shutdown(timeout)`` at interpreter exit while ``obj`` lives, all of
    them within :func:`exit_flush_timeout` seconds."""
    _install()
    _closables.add(obj)
