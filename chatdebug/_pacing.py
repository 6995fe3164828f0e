"""Keeping our background threads' stretches of Python work short.

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

The reaper thread (which finishes attempts after the caller has read them) runs jobs
that are single calls through several layers; it installs a pacer for itself with
:func:`pace_this_thread`, and those layers call :func:`pause_point` between their
steps. On any other thread (the application's) a pause point only looks up a
thread-local and returns.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Final

# Releases the interpreter lock around the system call; a zero sleep where there is no
# sched_yield (it releases the lock too, without giving up the CPU).
_yield = getattr(os, "sched_yield", None) or (lambda: time.sleep(0))

__all__ = ["STRETCH_SECONDS", "Pacer", "pace_this_thread", "pause_point"]

STRETCH_SECONDS: Final = 0.0005
"""Longest stretch of the writer's own Python work between two pauses."""


class Pacer:
    """Counts the time since the last pause; :meth:`tick` pauses when it is up."""

    __slots__ = ("_hurry", "_interject", "_since", "_stretch", "pauses")

    def __init__(
        self,
        stretch: float = STRETCH_SECONDS,
        interject: Callable[[], None] | None = None,
        hurry: Callable[[], bool] | None = None,
    ) -> None:
        self._since = time.perf_counter()
        self._stretch = stretch
        self._interject = interject
        self._hurry = hurry
        self.pauses = 0

    def restart(self) -> None:
        """A stretch starts now (after the thread blocked on something anyway)."""
        self._since = time.perf_counter()

    def tick(self) -> None:
        """Run the thread's interjection (work that may not wait for the current job)
        if it has one, then pause if the current stretch has lasted its length
        (:data:`STRETCH_SECONDS` unless given) and the thread is not in a hurry."""
        if self._interject is not None:
            self._interject()
        now = time.perf_counter()
        if now - self._since >= self._stretch:
            # Behind on work that is lost if it waits too long: on a machine where
            # other processes are runnable, each yield can cost a whole time slice.
            if self._hurry is None or not self._hurry():
                _yield()
                self.pauses += 1
            self._since = time.perf_counter()


_local = threading.local()


def pace_this_thread(
    stretch: float = STRETCH_SECONDS, interject: Callable[[], None] | None = None
) -> Pacer:
    """Install (and return) a pacer that :func:`pause_point` ticks on this thread;
    ``interject`` runs at every pause point (it must return at once when it has
    nothing to do)."""
    pacer = Pacer(stretch, interject)
    _local.pacer = pacer
    return pacer


def pause_point() -> None:
    """Pause here if this thread paces itself and its stretch is up; else nothing."""
    pacer: Pacer | None = getattr(_local, "pacer", None)
    if pacer is not None:
        pacer.tick()
