"""Keeping the writer thread's stretches of Python work short.

The writer shares the interpreter lock with the application. A thread that waits for
the lock only asks for it after the switch interval (5 ms by default), so a writer
that runs Python for a long stretch (encoding a batch, planning it) can hold a calling
thread that long; on a process pinned to one core, releasing the lock is not even
enough, as the writer takes it straight back unless it gives up the CPU. The writer
therefore calls :meth:`Pacer.tick` between small units of work: once a stretch has
lasted :data:`STRETCH_SECONDS`, it releases the lock and yields the CPU
(``sched_yield``), which hands both to a thread waiting for them and costs about a
microsecond when none is. (A sleep would do too, but on a loaded machine even a 50 µs
sleep lasts about half a millisecond.)
"""

from __future__ import annotations

import os
import time
from typing import Final

# Releases the interpreter lock around the system call; a zero sleep where there is no
# sched_yield (it releases the lock too, without giving up the CPU).
_yield = getattr(os, "sched_yield", None) or (lambda: time.sleep(0))

__all__ = ["STRETCH_SECONDS", "Pacer"]

STRETCH_SECONDS: Final = 0.0005
"""Longest stretch of the writer's own Python work between two pauses."""


class Pacer:
    """Counts the time since the last pause; :meth:`tick` pauses when it is up."""

    __slots__ = ("_since", "pauses")

    def __init__(self) -> None:
        self._since = time.perf_counter()
        self.pauses = 0

    def restart(self) -> None:
        """A stretch starts now (after the thread blocked on something anyway)."""
        self._since = time.perf_counter()

    def tick(self) -> None:
        """Pause if the current stretch has lasted :data:`STRETCH_SECONDS`."""
        now = time.perf_counter()
        if now - self._since >= STRETCH_SECONDS:
            _yield()
            self.pauses += 1
            self._since = time.perf_counter()
