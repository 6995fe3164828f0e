"""The scheduled work of ``chatdebug serve``: the retention purge loop and the stale
finalizer loop (store and metrics only; no OpenTelemetry, no HTTP).

Each job is a class with a ``tick()`` that never raises (:class:`Purger`,
:class:`StaleFinalizer`); a :class:`Ticker` runs a tick at once and then on its interval
in a thread, until stopped.
"""

from ._schedule import Ticker
from .purge import DEFAULT_PURGE_INTERVAL, PurgeOutcome, Purger, PurgeTick
from .stale import DEFAULT_STALE_INTERVAL, DEFAULT_STALE_THRESHOLD, StaleFinalizer

__all__ = [
    "DEFAULT_PURGE_INTERVAL",
    "DEFAULT_STALE_INTERVAL",
    "DEFAULT_STALE_THRESHOLD",
    "PurgeOutcome",
    "PurgeTick",
    "Purger",
    "StaleFinalizer",
    "Ticker",
]
