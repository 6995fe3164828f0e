"""Running one tick function on a schedule until asked to stop.

The first tick runs at once, the next ones every ``interval`` counted from the start of
the previous tick (a slow tick does not push the schedule back by its own length, and
ticks never overlap). Stopping sets an :class:`threading.Event`: a tick in progress is
never interrupted, it finishes (or its transaction rolls back on its own error), then
the loop returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Ticker"]

logger = logging.getLogger("chatdebug.ops")


class Ticker:
    """Calls ``tick`` now and then every ``interval`` seconds in a thread of its own.

    ``tick`` is expected to handle its own failures; anything it raises anyway is logged
    and the schedule goes on.
    """

    def __init__(self, name: str, interval: float, tick: Callable[[], object]) -> None:
        if interval <= 0:
            raise ValueError(f"{name}: interval must be positive, got {interval!r}")
        self.name = name
        self.interval = interval
        self._tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Tick until :meth:`stop` (in the calling thread)."""
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._tick()
            except Exception:
                logger.exception("chatdebug %s: tick failed", self.name)
            remaining = self.interval - (time.monotonic() - started)
            if self._stop.wait(max(0.0, remaining)):
                return

    def start(self) -> None:
        """Run :meth:`run` in a (non-daemon) thread named after the loop."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} already started")
        self._thread = threading.Thread(target=self.run, name=f"chatdebug-{self.name}")
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the loop to stop and wait for the tick in progress; ``True`` when the
        thread ended within ``timeout``."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()
