"""The one registry of what chatdebug does when the process forks, exits or gets SIGTERM.

**After fork, in the child.** A forked child must not use what it inherited from the
parent's threads: database connections (their sockets, file locks and in-memory state
belong to the parent), locks another thread held at fork time, queued events that are the
parent's to write, the parent's random-id state. Every such owner registers a hook, and
the hooks run in :class:`ForkStage` order (connections first, so that a writer restarting
in the child finds fresh ones), then in registration order within a stage. Inherited
connections are handed to :func:`abandon`, which keeps them referenced for the life of
the child so that no finalizer ever uses or closes them.

**At exit.** At a normal end, ``sys.exit``, or a SIGTERM, the hooks run in
:class:`ExitStage` order: attempts whose end is still being worked out on the reaper
thread are finished first (they produce the steps' last events), then every live writer
gets :func:`exit_flush_timeout` seconds in all to write what it holds; what is still
queued then goes to the spill journal when there is one, else is counted as dropped
with reason ``shutdown`` and logged once. The exit never waits on the hooks for more than
that timeout plus :data:`EXIT_GRACE_SECONDS`: they run on a thread of their own, and
the process goes on exiting when the wait is up, whatever they are stuck in.

SIGTERM's default action ends a process without running ``atexit`` hooks, and servers
such as uvicorn re-raise the SIGTERM that started their graceful shutdown once it is
done. So, when the first exit hook is registered on the main thread and SIGTERM still has
its default action, a handler is installed that runs the exit hooks and then lets the
default action happen (the process still ends "killed by SIGTERM"). A handler the
application or its server installs replaces ours, as it should.

Objects are held weakly (registering never keeps one alive); plain functions strongly.
The process-level hooks are installed once, on first registration.
"""

from __future__ import annotations

import atexit
import itertools
import math
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable
from enum import IntEnum
from typing import Final, Protocol

__all__ = [
    "DEFAULT_EXIT_FLUSH_SECONDS",
    "EXIT_GRACE_SECONDS",
    "ExitStage",
    "ForkStage",
    "abandon",
    "at_exit",
    "at_fork_in_child",
    "exit_flush_timeout",
    "register_exit_flush",
    "register_fork_safe",
    "set_exit_flush_timeout",
]

DEFAULT_EXIT_FLUSH_SECONDS: Final = 10.0
"""Default of :func:`exit_flush_timeout`."""
EXIT_GRACE_SECONDS: Final = 4.0
"""What the exit hooks get beyond :func:`exit_flush_timeout` (a writer that gave up at the
timeout still joins its threads and journals what it holds); past that, the process
exits without waiting for them."""


class ForkStage(IntEnum):
    """Order of the hooks that run in a forked child (lowest first)."""

    CONNECTIONS = 10
    """Store connection managers abandon what they inherited and reopen on first use."""
    IDS = 20
    """Random-id generators are reseeded, so parent and child never draw the same ids."""
    WRITERS = 30
    """Background writers drop the parent's queue and start over."""
    PROCESSORS = 40
    """Span processors forget the parent's open runs (the parent heartbeats them)."""


class ExitStage(IntEnum):
    """Order of the hooks that run at interpreter exit or SIGTERM (lowest first)."""

    FINISH_ATTEMPTS = 10
    """Work handed to the reaper thread runs to its end: it produces steps' last events."""
    FLUSH_WRITERS = 20
    """Writers write what they hold, within :func:`exit_flush_timeout` in all."""


class _ForkSafe(Protocol):
    def _after_fork_in_child(self) -> None: ...


class _Closable(Protocol):
    def shutdown(self, timeout: float | None = None) -> bool: ...


# A hook is (stage, sequence number, resolver); the resolver returns the callable to run,
# or None once a weakly held object is gone.
_Resolver = Callable[[], Callable[[], object] | None]
_fork_hooks: list[tuple[int, int, _Resolver]] = []
_exit_hooks: list[tuple[int, int, _Resolver]] = []
_closables: weakref.WeakSet[_Closable] = weakref.WeakSet()
_abandoned: list[object] = []
_sequence = itertools.count()
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


def _strong(func: Callable[[], object]) -> _Resolver:
    return lambda: func


def _run(hooks: list[tuple[int, int, _Resolver]]) -> None:
    for _stage, _seq, resolve in sorted(hooks, key=lambda hook: hook[:2]):
        func = resolve()
        if func is not None:
            func()


def _after_fork_in_child() -> None:
    global _lock
    # Another thread of the parent may have held the lock at fork time.
    _lock = threading.Lock()
    _run(_fork_hooks)


def _flush_writers() -> None:
    deadline = time.monotonic() + _exit_flush_seconds
    for obj in list(_closables):
        obj.shutdown(max(0.0, deadline - time.monotonic()))


def _run_exit_hooks() -> None:
    _run(_exit_hooks)


def _run_exit_hooks_bounded() -> None:
    """Run the exit hooks, waiting for them at most :func:`exit_flush_timeout` plus
    :data:`EXIT_GRACE_SECONDS`: the exit of the application never waits longer on
    chatdebug, whatever a hook is stuck in (a lock, a network call without a timeout).
    On a thread of its own, so that the wait is bounded, and because a SIGTERM handler
    interrupts the main thread wherever it is, possibly inside a writer's lock that the
    flush needs."""
    closer = threading.Thread(target=_run_exit_hooks, name="chatdebug-exit-flush", daemon=True)
    closer.start()
    closer.join(_exit_flush_seconds + EXIT_GRACE_SECONDS)


def _close_on_sigterm(signum: int, frame: object) -> None:
    _run_exit_hooks_bounded()
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
    # Called with _lock held.
    global _installed
    if not _installed:
        os.register_at_fork(after_in_child=_after_fork_in_child)
        atexit.register(_run_exit_hooks_bounded)
        _install_sigterm_flush()
        _exit_hooks.append((ExitStage.FLUSH_WRITERS, next(_sequence), _strong(_flush_writers)))
        _installed = True


def at_fork_in_child(stage: ForkStage, func: Callable[[], object]) -> None:
    """Run ``func()`` in every forked child, at ``stage``; held for the process's life."""
    with _lock:
        _install()
        _fork_hooks.append((stage, next(_sequence), _strong(func)))


def register_fork_safe(obj: _ForkSafe, stage: ForkStage) -> None:
    """Call ``obj._after_fork_in_child()`` in every forked child, at ``stage``, while
    ``obj`` lives."""
    method = weakref.WeakMethod(obj._after_fork_in_child)
    with _lock:
        _install()
        # Forget the hooks of objects that are gone, so many short-lived stores or
        # writers (tests, scripts) do not make the list grow without end.
        _fork_hooks[:] = [hook for hook in _fork_hooks if hook[2]() is not None]
        _fork_hooks.append((stage, next(_sequence), method))


def at_exit(stage: ExitStage, func: Callable[[], object]) -> None:
    """Run ``func()`` at interpreter exit or SIGTERM, at ``stage``."""
    with _lock:
        _install()
        _exit_hooks.append((stage, next(_sequence), _strong(func)))


def register_exit_flush(obj: _Closable) -> None:
    """Call ``obj.shutdown(timeout)`` at interpreter exit or SIGTERM while ``obj`` lives,
    all of them within :func:`exit_flush_timeout` seconds (:attr:`ExitStage.FLUSH_WRITERS`)."""
    with _lock:
        _install()
        _closables.add(obj)


def abandon(*objects: object) -> None:
    """Keep ``objects`` (inherited connections, pools) referenced for the rest of this
    process's life, so they are neither used nor closed nor finalized."""
    _abandoned.extend(objects)
