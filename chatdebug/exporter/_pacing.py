"""Keeping the writer thread's stretches of Python work short.

The writer shares the interpreter lock with the application. A thread that waits for
the lock only asks for it after the switch interval (5 ms by default), so a writer
that runs Python for a long stretch (encoding a batch, planning it) can hold a calling
thread that long; on a process pinned to one core, releasing the lock is not even
enough, as the writer takes it straight back unless it actually blocks. The writer
therefore calls :meth:`Pacer.tick` between small units of work: once a stretch has
lasted :data:`STRETCH_SECONDS`, it sleeps for a moment so that any thread waiting for
the lock gets it.
"""

from __future__ import annotations

import time
from typing import Final

__all__ = ["PAUSE_SECONDS", "STRETCH_SECONDS", "Pacer"]

STRETCH_SECONDS: Final = 0.001
"""Longest stretch of the writer's own Python work between two pauses."""

PAUSE_SECONDS: Final = 0.00005
"""How long a pause lasts: enough for the kernel to run a thread that was waiting."""


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
            time.sleep(PAUSE_SECONDS)
            self.pauses += 1
            self._since = time.perf_counter()
