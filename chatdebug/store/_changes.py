"""Change events: what changed in the store, as ids and statuses, for whoever watches.

Every write to a run or a step publishes its change in the writing transaction itself,
through the schema (triggers of the ``change_events`` migration), so no write path can
forget to and a rolled-back write publishes nothing: on PostgreSQL a ``NOTIFY`` on one
channel per schema (delivered at commit), on SQLite a row in the ``chat_debug_changes``
ring. The stale finalizer and the retention purge also publish their counts
(:func:`sqlite_publish_summary`, :func:`postgres_publish_summary`).

A watcher reads them through a :class:`ChangeFeed` (:func:`open_change_feed`), which
turns them into :class:`ChangeEvent` values, one per run changed (with the step numbers
that changed), per chat with deleted runs, per finalization and per purge. When a feed
cannot vouch that it saw every change (its listening connection was lost, it fell
behind the ring), it says so with a ``reset`` event: the watcher re-reads what it
shows.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, Protocol, runtime_checkable

from ._errors import StoreError

__all__ = [
    "EVENT_KINDS",
    "ChangeEvent",
    "ChangeFeed",
    "EventKind",
    "coalesce_events",
    "coalesce_ring_rows",
    "event_from_document",
    "open_change_feed",
    "postgres_publish_summary",
    "sqlite_publish_summary",
]

EventKind = Literal["run_update", "delete", "finalize", "purge", "reset"]
EVENT_KINDS: Final[tuple[EventKind, ...]] = ("run_update", "delete", "finalize", "purge", "reset")

MAX_STEP_NUMBERS: Final = 500
"""More step numbers than this in one event are sent as ``None`` ("many": re-read the
run)."""


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change: ids and statuses only, never payloads.

    ``run_update``: the run ``run_id`` of ``chat_id`` was written (``status`` is its
    status then; ``user_id``, ``run_kind`` and ``model`` are the run's), and so were its
    steps ``step_numbers`` (empty when only the run row changed; ``None`` when too many
    to list). ``delete``: runs ``run_ids`` of ``chat_id`` were deleted. ``finalize`` /
    ``purge``: the stale finalizer / the retention purge changed ``counts``. ``reset``:
    changes may have been missed; re-read.

    ``position`` is where a durable feed (SQLite) can resume after this event
    (:meth:`ChangeFeed.since`); ``None`` for a feed without one (PostgreSQL).
    """

    kind: EventKind
    chat_id: str | None = None
    run_id: uuid.UUID | None = None
    status: str | None = None
    step_numbers: tuple[int, ...] | None = ()
    run_ids: tuple[uuid.UUID, ...] = ()
    user_id: str | None = None
    run_kind: str | None = None
    model: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    position: int | None = None

    def document(self) -> dict[str, Any]:
        """The JSON object of the event (what ``serve`` and ``tail --json`` send)."""
        doc: dict[str, Any] = {"kind": self.kind}
        if self.kind == "run_update":
            doc.update(
                chat_id=self.chat_id,
                run_id=str(self.run_id) if self.run_id else None,
                status=self.status,
                step_numbers=None if self.step_numbers is None else list(self.step_numbers),
                user_id=self.user_id,
                run_kind=self.run_kind,
                model=self.model,
            )
        elif self.kind == "delete":
            doc.update(chat_id=self.chat_id, run_ids=[str(r) for r in self.run_ids])
        elif self.kind in ("finalize", "purge"):
            doc["counts"] = dict(self.counts)
        return doc


def _uuid(value: Any) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _counts(value: Any) -> dict[str, int]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, int)}


def event_from_document(doc: Mapping[str, Any], position: int | None = None) -> ChangeEvent | None:
    """The event of a published JSON object (a NOTIFY payload), or ``None`` when it is
    not one."""
    kind = doc.get("kind")
    if kind not in EVENT_KINDS:
        return None
    numbers = doc.get("step_numbers", [])
    steps: tuple[int, ...] | None
    if isinstance(numbers, list) and len(numbers) <= MAX_STEP_NUMBERS:
        steps = tuple(sorted({n for n in numbers if isinstance(n, int)}))
    else:
        steps = None
    run_ids = doc.get("run_ids", [])
    return ChangeEvent(
        kind=kind,
        chat_id=_text(doc.get("chat_id")),
        run_id=_uuid(doc.get("run_id")),
        status=_text(doc.get("status")),
        step_numbers=steps,
        run_ids=tuple(
            r for r in (_uuid(v) for v in (run_ids if isinstance(run_ids, list) else [])) if r
        ),
        user_id=_text(doc.get("user_id")),
        run_kind=_text(doc.get("run_kind")),
        model=_text(doc.get("model")),
        counts=_counts(doc.get("counts")),
        position=position,
    )


class _Group:
    """The ring rows of one event being coalesced."""

    __slots__ = ("event", "first", "last", "run_ids", "steps")

    def __init__(self, event: ChangeEvent, seq: int) -> None:
        self.event = event
        self.first = seq
        self.last = seq
        self.steps: set[int] = set()
        self.run_ids: list[uuid.UUID] = []


def coalesce_ring_rows(rows: Iterable[Sequence[Any]]) -> list[ChangeEvent]:
    """Events from ``chat_debug_changes`` rows (``seq, kind, chat_id, run_id, status,
    step_number, user_id, run_kind, model, counts``, in ``seq`` order): one per run
    written, per chat with deletions, per finalization and per purge, in the order of
    their last row.

    Each event's ``position`` is the ``seq`` after which reading again yields every
    event not yet handed out before it (the smallest first row of the events after it,
    less one), so resuming from any event's position loses nothing; an event may be
    delivered twice.
    """
    groups: dict[tuple[str, Any], _Group] = {}
    for seq, kind, chat_id, run_id, status, step_number, user_id, run_kind, model, counts in rows:
        if kind in ("run", "step"):
            key: tuple[str, Any] = ("run", run_id)
        elif kind == "delete":
            key = ("delete", chat_id)
        else:
            key = (str(kind), seq)
        group = groups.get(key)
        if kind in ("run", "step"):
            event = ChangeEvent(
                "run_update", chat_id, _uuid(run_id), status, (), (), user_id, run_kind, model
            )
        elif kind == "delete":
            event = ChangeEvent("delete", chat_id)
        else:
            event = ChangeEvent(
                "finalize" if kind == "finalize" else "purge", counts=_counts(counts)
            )
        if group is None:
            group = groups[key] = _Group(event, seq)
        elif kind != "delete":
            group.event = event  # the newest status
        group.last = seq
        if kind == "step" and step_number is not None:
            group.steps.add(int(step_number))
        if kind == "delete":
            found = _uuid(run_id)
            if found is not None:
                group.run_ids.append(found)
    order = sorted(groups.values(), key=lambda g: g.last)
    events: list[ChangeEvent] = []
    later_first = order[-1].last if order else 0
    positions: list[int] = []
    for group in reversed(order):
        positions.append(later_first)
        later_first = min(later_first, group.first - 1)
    positions.reverse()
    for group, position in zip(order, positions, strict=True):
        event = group.event
        steps: tuple[int, ...] | None = tuple(sorted(group.steps))
        if steps is not None and len(steps) > MAX_STEP_NUMBERS:
            steps = None
        events.append(
            ChangeEvent(
                event.kind,
                event.chat_id,
                event.run_id,
                event.status,
                steps if event.kind == "run_update" else (),
                tuple(group.run_ids),
                event.user_id,
                event.run_kind,
                event.model,
                event.counts,
                position,
            )
        )
    return events


def coalesce_events(events: Sequence[ChangeEvent]) -> list[ChangeEvent]:
    """One event per run (step numbers merged, the newest status) and per chat of
    deletions, in the order of their last occurrence; other kinds as they are. For
    events without positions (a burst of notifications)."""
    merged: dict[tuple[str, Any], ChangeEvent] = {}
    for index, event in enumerate(events):
        key: tuple[str, Any]
        if event.kind == "run_update":
            key = ("run", event.run_id)
        elif event.kind == "delete":
            key = ("delete", event.chat_id)
        else:
            key = (event.kind, index)
        before = merged.pop(key, None)
        if before is not None and event.kind == "run_update":
            steps = (
                None
                if before.step_numbers is None or event.step_numbers is None
                else tuple(sorted({*before.step_numbers, *event.step_numbers}))
            )
            if steps is not None and len(steps) > MAX_STEP_NUMBERS:
                steps = None
            event = replace(event, step_numbers=steps)
        elif before is not None:
            event = replace(event, run_ids=tuple(dict.fromkeys((*before.run_ids, *event.run_ids))))
        merged[key] = event  # re-inserted: ordered by last occurrence
    return list(merged.values())


@runtime_checkable
class ChangeFeed(Protocol):
    """The change events of one database, as they are committed. Not thread-safe: one
    thread waits on it (:meth:`since` may be called from others)."""

    durable: bool
    """Whether events have a ``position`` to resume from (:meth:`since`)."""

    def wait(self, timeout: float) -> list[ChangeEvent]:
        """The events committed since the previous call, waiting up to ``timeout``
        seconds for one; ``[]`` when none came. Database errors are not raised: the
        feed retries, and says ``reset`` once it is back if it may have missed
        changes."""
        ...

    def since(self, position: int) -> list[ChangeEvent] | None:
        """The events after ``position`` (durable feeds), or ``None`` when they are no
        longer kept (or the feed is not durable): the reader must re-read instead."""
        ...

    def close(self) -> None:
        """Release the feed's connection. Idempotent."""
        ...


def open_change_feed(store: object) -> ChangeFeed:
    """The change feed of ``store`` (a :class:`~chatdebug.store.SQLiteStore` or a
    :class:`~chatdebug.store.PostgresStore`): it starts with the changes committed after
    it opens. Raises :class:`~chatdebug.store.StoreError` for a store without one."""
    opener = getattr(type(store), "change_feed", None)
    if opener is None:
        raise StoreError(f"chatdebug: {store!r} publishes no change events")
    feed = opener(store)
    if not isinstance(feed, ChangeFeed):
        raise StoreError(f"chatdebug: {store!r} returned no change feed")
    return feed


def sqlite_publish_summary(
    conn: Any, kind: Literal["finalize", "purge"], counts: Mapping[str, int]
) -> None:
    """Record the counts of a finalization or a purge in the ring, on ``conn`` inside
    the transaction that made them."""
    conn.execute(
        "INSERT INTO chat_debug_changes (kind, counts) VALUES (?, ?)",
        (kind, json.dumps(dict(counts), separators=(",", ":"))),
    )


def postgres_publish_summary(
    conn: Any, kind: Literal["finalize", "purge"], counts: Mapping[str, int]
) -> None:
    """Notify the counts of a finalization or a purge, on ``conn`` inside the
    transaction that made them (delivered when it commits)."""
    conn.execute(
        "SELECT chat_debug_publish_summary(%(kind)s, %(counts)s::jsonb)",
        {"kind": kind, "counts": json.dumps(dict(counts))},
    )
