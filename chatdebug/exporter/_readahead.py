"""Reading the spill journal's next batch while the writer writes the current one.

Draining a backlog, the writer alternates between its own Python work (reading and
decoding a batch, planning it) and waiting for the store, which holds no interpreter
lock. A thread of its own reads and decodes the batch that follows the one being
written (:meth:`~._spill.SpillJournal.head_after`) during that wait. It is used only
when it is still the journal's head once the batch before it has been written and
removed: nothing removed before it, nothing put before it, no journal adopted
(:attr:`~._spill.SpillJournal.generation` unchanged since the batch before it was read);
otherwise it is dropped and the head read again, so events keep their order.
"""

from __future__ import annotations

import sqlite3
import threading

from .._safety import log_internal_error
from ._spill import SpilledEvent, SpillJournal

__all__ = ["ReadAhead"]


class ReadAhead:
    """The writer's batches from ``journal``, ``limit`` events each (writer thread only)."""

    def __init__(self, journal: SpillJournal, limit: int) -> None:
        self._journal = journal
        self._limit = limit
        self._generation = -1  # of the journal when the batches in hand were read
        self._thread: threading.Thread | None = None
        self._ahead: tuple[int, list[SpilledEvent]] | None = None
        self._behind = False  # the batch before the one read ahead is not removed yet

    def next_batch(self) -> list[SpilledEvent]:
        """The journal's oldest ``limit`` events (an adopted journal's first)."""
        ahead = self._collect()
        if (
            ahead is not None
            and ahead[1]
            and not self._behind
            and ahead[0] == self._generation == self._journal.generation
        ):
            return ahead[1]
        self._behind = False
        # Read before the head: a change in between makes what follows look stale.
        self._generation = self._journal.generation
        return self._journal.head(self._limit)

    def read_after(self, batch: list[SpilledEvent]) -> None:
        """Start reading what follows ``batch`` (just taken by :meth:`next_batch`)."""
        self._collect()
        self._behind = True
        last = batch[-1]

        def read() -> None:
            try:
                self._ahead = self._journal.head_after(last, self._limit)
            except (sqlite3.Error, OSError):
                pass  # next_batch reads the head itself, and meets the error there
            except Exception as exc:  # our own bug: counted, and read again as well
                log_internal_error("exporter", exc)

        self._thread = threading.Thread(target=read, name="chatdebug-spill-read", daemon=True)
        self._thread.start()

    def removed(self) -> None:
        """The batch given to :meth:`read_after` was written and removed."""
        self._behind = False

    def _collect(self) -> tuple[int, list[SpilledEvent]] | None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        ahead, self._ahead = self._ahead, None
        return ahead
