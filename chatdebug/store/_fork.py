"""Fork safety of the stores' connections.

A forked child must not use the database connections it inherited (their sockets, file
locks and in-memory state belong to the parent), nor close them (closing a PostgreSQL
connection tells the server the session is over; closing a SQLite connection may touch
the parent's write-ahead log). After ``fork`` every live connection manager therefore
hands its inherited connections to :func:`abandon`, which keeps them referenced for the
life of the child so that no finalizer ever runs on them, and opens fresh ones on first
use.

Managers are held weakly: registering never keeps a store alive.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Protocol

__all__ = ["abandon", "register_fork_safe"]


class _ForkSafe(Protocol):
    def _after_fork_in_child(self) -> None: ...


_registry: weakref.WeakSet[_ForkSafe] = weakref.WeakSet()
_abandoned: list[object] = []
_lock = threading.Lock()
_installed = False


def _reinit_in_child() -> None:
    global _lock
    # Another thread of the parent may have held the lock at fork time.
    _lock = threading.Lock()
    for obj in list(_registry):
        obj._after_fork_in_child()


def register_fork_safe(obj: _ForkSafe) -> None:
    """Call ``obj._after_fork_in_child()`` in every forked child while ``obj`` lives."""
    global _installed
    with _lock:
        if not _installed and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_reinit_in_child)
            _installed = True
        _registry.add(obj)


def abandon(*objects: object) -> None:
    """Keep ``objects`` (inherited connections, pools) referenced for the rest of this
    process's life, so they are neither used nor closed nor finalized."""
    _abandoned.extend(objects)
