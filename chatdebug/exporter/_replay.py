"""Replaying spill journals left by ended processes, outside any application:
``chatdebug replay-spill PATH``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..store import Store
from ._health import ExporterHealth
from ._pricing import Pricer
from ._spill import SpillJournal, slot_paths
from ._writer import BackgroundWriter

__all__ = ["ReplayReport", "replay_spill"]


@dataclass(frozen=True)
class ReplayReport:
    """What :func:`replay_spill` did."""

    files: list[str]
    """Journal files replayed (and deleted once empty)."""
    busy: list[str]
    """Journal files held by a running process (its own writer replays them)."""
    replayed: int
    """Events written to the store."""
    dropped: dict[str, int] = field(default_factory=dict)
    """Events not written, by reason (as ``chatdebug_exporter_events_dropped_total``)."""
    remaining: int = 0
    """Events still in the journals (the store stopped answering, or the time ran out)."""


def replay_spill(
    path: str | os.PathLike[str],
    store: Store,
    *,
    timeout: float = 600.0,
    pricer: Pricer | None = None,
) -> ReplayReport:
    """Write into ``store``, in order, every event of the journals under ``path`` that
    no running process holds, and delete them once empty. Events the store rejects
    are dropped and counted as the writer counts them; an unavailable store is
    retried with backoff until ``timeout`` seconds have passed, and what is left then
    stays in the journal. Steps journaled before they were priced are priced with
    ``pricer`` (the bundled prices when ``None``)."""
    existing = [p for p in slot_paths(path) if p.exists()]
    journal = SpillJournal(path, max_bytes=1 << 62)
    health = ExporterHealth(None)
    writer = BackgroundWriter(
        store, health=health, spill=journal, pricer=pricer if pricer is not None else Pricer()
    )
    try:
        files = [str(p) for p in journal.files]
        busy = [str(p) for p in existing if str(p) not in files]
        # Empty leftovers were deleted by the adoption; they were nobody's.
        busy = [p for p in busy if os.path.exists(p)]
        writer.wait_journal_empty(timeout)
        remaining = journal.pending_events
    finally:
        writer.shutdown(timeout=0.0)
    return ReplayReport(
        files=files,
        busy=busy,
        replayed=health.replayed_total,
        dropped={reason: count for reason, count in health.dropped.items() if count},
        remaining=remaining,
    )
