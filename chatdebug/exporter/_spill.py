"""The spill journal: a local file that holds the events the writer could not hand to the
store in time, until they are replayed into it.

A journal is a small SQLite file (stdlib ``sqlite3``, WAL) of one table: each event's
bytes (:mod:`._spill_codec`) under an increasing key, with the wall-clock time it was
queued. Several processes on one host may be configured with the same path: each
claims a *slot* of its own, ``PATH`` itself or ``PATH`` with a number before its suffix
(``spill.db``, ``spill.1.db``, ``spill.2.db``, …), and holds an exclusive ``flock`` on the
slot's ``.lock`` file for as long as it lives. The kernel releases that lock when the
process ends in any way, SIGKILL included, so a slot whose lock can be taken belongs to
nobody: its events are *adopted* by the next process configured with the same path (or
by ``chatdebug replay-spill PATH``) and replayed before its own. Nothing is created
before the first event is spilled; a slot is deleted once it is empty and its owner
closes it, and lock files stay (deleting one another process may have just opened would
let two processes own the same slot).

Keys order the events of a slot: a process's events are keyed by the order in which
they were queued (after every key already in the slot it claims), whoever appends them,
so a batch that goes back to the journal after a failed write still comes first.
Appending the same key twice keeps the first (a write may be journaled by the hand-off
and again by the writer). The size cap counts the events' bytes: an append stops at the
first event that would pass it.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson

from .._lifecycle import ForkStage, abandon, register_fork_safe
from ._events import Event
from ._spill_codec import SpillCodecError, decode_event, encode_event

__all__ = [
    "MAX_SLOTS",
    "JournalUnwritable",
    "SpillJournal",
    "SpilledEvent",
    "slot_paths",
    "storage_reason",
    "wall_time",
]

logger = logging.getLogger("chatdebug.exporter")

MAX_SLOTS: Final = 64
"""Processes that may each hold a journal under one path at the same time."""

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS chatdebug_spill ("
    " key INTEGER PRIMARY KEY, queued_at REAL NOT NULL, body BLOB NOT NULL)"
)
# Rows go in and keys go out as one JSON parameter (the bodies are JSON text, carried
# as strings and stored as the same bytes): one statement whatever their number.
# ``executemany`` would take the interpreter lock back for every row, and under an
# application's threads each of those waits can last a switch interval, which made a
# hand-off of a thousand events take over a second.
_INSERT_ROWS: Final = (
    "INSERT OR IGNORE INTO chatdebug_spill (key, queued_at, body) "
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), "
    "CAST(json_extract(value, '$[2]') AS BLOB) FROM json_each(?)"
)
_DELETE_KEYS: Final = "DELETE FROM chatdebug_spill WHERE key IN (SELECT value FROM json_each(?))"
# sqlite3 primary result codes, and errno values, that say the storage refuses writes.
_SQLITE_REASONS: Final = {13: "disk_full", 8: "read_only", 10: "io_error", 14: "cannot_open"}
_ERRNO_REASONS: Final = {
    errno.ENOSPC: "disk_full",
    errno.EDQUOT: "disk_full",
    errno.EROFS: "read_only",
    errno.EACCES: "read_only",
    errno.EPERM: "read_only",
    errno.EIO: "io_error",
}


def storage_reason(exc: BaseException | None) -> str | None:
    """``disk_full``, ``read_only``, ``io_error`` or ``cannot_open`` when ``exc`` (or an
    exception it was raised from) says the local storage refused a write; else ``None``."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, sqlite3.Error):
            code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
            if code in _SQLITE_REASONS:
                return _SQLITE_REASONS[code]
        if isinstance(exc, OSError) and exc.errno in _ERRNO_REASONS:
            return _ERRNO_REASONS[exc.errno]
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


class JournalUnwritable(Exception):
    """The journal's storage refused a write (``reason``: see :func:`storage_reason`)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def slot_paths(path: str | os.PathLike[str]) -> list[Path]:
    """Every slot file a journal under ``path`` may use, slot 0 (``path``) first."""
    base = Path(path)
    paths = [base]
    for number in range(1, MAX_SLOTS):
        name = f"{base.stem}.{number}{base.suffix}" if base.suffix else f"{base.name}.{number}"
        paths.append(base.with_name(name))
    return paths


@dataclass(frozen=True, slots=True)
class SpilledEvent:
    """One event read back from a journal (``event`` is ``None`` when its record could
    not be read: it is then removed and counted, never retried)."""

    key: int
    event: Event | None
    queued_at: float
    """Wall-clock time (``time.time()``) it was first queued."""
    size: int
    slot: _Slot
    own: bool
    """Queued by this process (not adopted from another one)."""


class _Slot:
    """One journal file, locked by this process."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self.lock_fd = lock_fd
        self.conn: sqlite3.Connection | None = None
        self.events = 0
        self.bytes = 0
        self.next_key = 0
        self.top = -1
        """The highest key in the slot so far (never lowered: a key above it is new)."""
        self.base: int | None = None
        """Keys from here on are this process's own events (``None``: adopted slot)."""

    def open(self) -> sqlite3.Connection:
        if self.conn is None:
            conn = sqlite3.connect(
                self.path, timeout=5.0, isolation_level=None, check_same_thread=False
            )
            try:
                # Before the table exists, so that the file gives space back once drained.
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute(_SCHEMA)
                count, size, last = conn.execute(
                    "SELECT count(*), coalesce(sum(length(body)), 0), coalesce(max(key), -1) "
                    "FROM chatdebug_spill"
                ).fetchone()
            except BaseException:
                conn.close()
                raise
            self.conn = conn
            self.events, self.bytes, self.next_key = int(count), int(size), int(last) + 1
            self.top = int(last)
        return self.conn

    def oldest(self) -> float | None:
        if self.conn is None or not self.events:
            return None
        row = self.conn.execute(
            "SELECT queued_at FROM chatdebug_spill ORDER BY key LIMIT 1"
        ).fetchone()
        return None if row is None else float(row[0])

    def close(self, *, delete_if_empty: bool) -> None:
        if self.conn is not None:
            empty = self.events == 0
            try:
                if empty and delete_if_empty:
                    self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                empty = False
            self.conn.close()
            self.conn = None
            if empty and delete_if_empty:
                for suffix in ("", "-wal", "-shm"):
                    try:
                        os.unlink(f"{self.path}{suffix}")
                    except OSError:
                        pass
        # Closing the descriptor releases the lock; the lock file stays (module doc).
        os.close(self.lock_fd)


def _try_lock(path: Path) -> int | None:
    """A descriptor holding the exclusive lock of ``path``'s slot, or ``None`` when
    another process holds it."""
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


class SpillJournal:
    """The journal of one writer under ``path``, at most ``max_bytes`` of events.

    Thread-safe. Storage errors become :class:`JournalUnwritable`; nothing else of the
    file system is raised from :meth:`append` and :meth:`adopt_orphans`.
    """

    def __init__(self, path: str | os.PathLike[str], max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        self.path = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._own: _Slot | None = None
        self._adopted: list[_Slot] = []
        self._closed = False
        self._generation = 0
        register_fork_safe(self, ForkStage.CONNECTIONS)

    def _after_fork_in_child(self) -> None:
        # The slots are the parent's: their connections are abandoned, the child's
        # copies of the lock descriptors closed (that does not release the parent's
        # lock), and the child claims a slot of its own when it first spills.
        self._lock = threading.Lock()
        for slot in [*self._adopted, *([self._own] if self._own else [])]:
            if slot.conn is not None:
                abandon(slot.conn)
            os.close(slot.lock_fd)
        self._own, self._adopted = None, []

    # -- state ---------------------------------------------------------------------------
    @property
    def pending_events(self) -> int:
        """Events waiting in the journal (this process's and adopted ones)."""
        with self._lock:
            return sum(slot.events for slot in self._slots())

    @property
    def pending_bytes(self) -> int:
        """Bytes of the events waiting in the journal."""
        with self._lock:
            return sum(slot.bytes for slot in self._slots())

    def oldest_queued_at(self) -> float | None:
        """Wall-clock time the oldest waiting event was queued, ``None`` when empty."""
        with self._lock:
            times = [t for slot in self._slots() if (t := _quiet_oldest(slot)) is not None]
        return min(times, default=None)

    @property
    def generation(self) -> int:
        """Changes whenever the journal's order changes other than by events appended
        after all others or the oldest removed: an event put before others already
        there, events taken out of the middle, journals adopted. What
        :meth:`head_after` read under one generation is still the head's continuation
        while the generation is the same."""
        return self._generation

    @property
    def has_adopted(self) -> bool:
        """Whether events adopted from ended processes are still waiting."""
        return bool(self._adopted)

    @property
    def files(self) -> list[Path]:
        """The slot files this journal holds now."""
        with self._lock:
            return [slot.path for slot in self._slots()]

    def _slots(self) -> Iterator[_Slot]:
        yield from self._adopted
        if self._own is not None:
            yield self._own

    # -- writing -------------------------------------------------------------------------
    def append(self, items: Sequence[tuple[int, Event, float]]) -> int:
        """Append ``(order, event, queued_at)`` items (``order`` increasing with the
        queue order) and return how many, a prefix, fit under the size cap."""
        if not items:
            return 0
        rows: list[tuple[int, float, bytes]] = []
        with self._lock, self._storage("append to"):
            slot = self._claim()
            conn = slot.open()
            room = self.max_bytes - sum(s.bytes for s in self._slots())
            for order, event, queued_at in items:
                body = encode_event(event)
                if len(body) > room:
                    break
                room -= len(body)
                rows.append((slot.next_key + order, queued_at, body))
            if not rows:
                return 0
            payload = orjson.dumps([[key, at, body.decode()] for key, at, body in rows]).decode()
            conn.execute("BEGIN IMMEDIATE")
            try:
                before = conn.total_changes
                conn.execute(_INSERT_ROWS, (payload,))
                added = conn.total_changes - before
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
            if rows[0][0] <= slot.top:
                self._generation += 1
            slot.top = max(slot.top, rows[-1][0])
            if added == len(rows):
                slot.events += added
                slot.bytes += sum(len(body) for _, _, body in rows)
            else:  # some were there already: count from the file
                slot.events, slot.bytes = _totals(conn)
        return len(rows)

    def _claim(self) -> _Slot:
        """This process's own slot, claimed on first use (called with ``_lock`` held)."""
        if self._closed:
            raise JournalUnwritable("closed", "the journal is closed")
        if self._own is None:
            held = {slot.path for slot in self._adopted}
            for path in slot_paths(self.path):
                if path in held:
                    continue
                fd = _try_lock(path)
                if fd is None:
                    continue
                slot = _Slot(path, fd)
                try:
                    slot.open()
                except BaseException:
                    slot.close(delete_if_empty=False)
                    raise
                slot.base = slot.next_key
                self._own = slot
                break
            else:
                raise JournalUnwritable(
                    "no_slot", f"all {MAX_SLOTS} journals under {self.path} are in use"
                )
        return self._own

    @contextmanager
    def _storage(self, what: str) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            reason = storage_reason(exc) or "io_error"
            raise JournalUnwritable(reason, f"cannot {what} {self.path}: {exc}") from exc

    # -- reading -------------------------------------------------------------------------
    def adopt_orphans(self) -> int:
        """Take over every slot under the path that no live process holds and that has
        events; returns how many events were adopted. Empty orphans are deleted."""
        adopted = 0
        with self._lock:
            if self._closed:
                return 0
            held = {slot.path for slot in self._slots()}
            for path in slot_paths(self.path):
                if path in held or not path.exists():
                    continue
                try:
                    fd = _try_lock(path)
                except OSError:
                    continue  # a read-only directory: nothing can be replayed from here
                if fd is None:
                    continue
                slot = _Slot(path, fd)
                try:
                    slot.open()
                except (sqlite3.Error, OSError) as exc:
                    logger.warning("chatdebug: cannot read spill journal %s: %s", path, exc)
                    slot.close(delete_if_empty=False)
                    continue
                if slot.events:
                    self._adopted.append(slot)
                    adopted += slot.events
                    self._generation += 1
                else:
                    slot.close(delete_if_empty=True)
        if adopted:
            logger.info(
                "chatdebug: replaying %d debug event(s) left in spill journal(s) under %s",
                adopted,
                self.path,
            )
        return adopted

    def head(self, limit: int) -> list[SpilledEvent]:
        """The oldest ``limit`` events: adopted journals first, then this process's."""
        with self._lock:
            for slot in self._slots():
                if slot.events and slot.conn is not None:
                    rows = slot.conn.execute(
                        "SELECT key, queued_at, body FROM chatdebug_spill ORDER BY key LIMIT ?",
                        (limit,),
                    ).fetchall()
                    break
            else:
                return []
        # Decoded outside the lock: a hand-off must not wait for it (see append).
        return [_read(slot, key, queued_at, body) for key, queued_at, body in rows]

    def head_after(self, last: SpilledEvent, limit: int) -> tuple[int, list[SpilledEvent]]:
        """The ``limit`` events that follow ``last`` in its journal file, and the
        :attr:`generation` they were read under: once everything up to ``last`` is
        removed, they are :meth:`head` as long as the generation has not changed (read
        ahead while the batch before them is written). Empty when that file has no more."""
        slot = last.slot
        with self._lock:
            generation = self._generation
            if slot.conn is None or not slot.events:
                return generation, []
            rows = slot.conn.execute(
                "SELECT key, queued_at, body FROM chatdebug_spill WHERE key > ? "
                "ORDER BY key LIMIT ?",
                (last.key, limit),
            ).fetchall()
        return generation, [_read(slot, key, queued_at, body) for key, queued_at, body in rows]

    def remove(self, items: Sequence[SpilledEvent]) -> None:
        """Delete ``items`` (written or dropped); an adopted journal left empty is
        deleted and its lock released."""
        if not items:
            return
        with self._lock:
            by_slot: dict[int, tuple[_Slot, list[int]]] = {}
            for item in items:
                by_slot.setdefault(id(item.slot), (item.slot, []))[1].append(item.key)
            for slot, keys in by_slot.values():
                if slot.conn is None:
                    continue
                conn = slot.conn
                with self._storage("remove events from"):
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        before = conn.total_changes
                        conn.execute(_DELETE_KEYS, (orjson.dumps(keys).decode(),))
                        removed = conn.total_changes - before
                        conn.execute("COMMIT")
                    except BaseException:
                        _rollback(conn)
                        raise
                sizes = [item.size for item in items if item.slot is slot]
                if removed == len(keys) and all(sizes):
                    slot.events -= removed
                    slot.bytes -= sum(sizes)
                else:  # sizes not known, or some were gone already: count the file
                    slot.events, slot.bytes = _totals(conn)
                if slot.events == 0:
                    if slot is self._own:
                        _shrink(slot.conn)
                    else:
                        self._adopted.remove(slot)
                        slot.close(delete_if_empty=True)

    def remove_own(self, items: Sequence[tuple[int, Event, float]]) -> None:
        """Take this process's ``(order, event, queued_at)`` items, appended earlier,
        out of the journal again (their batch was written meanwhile)."""
        with self._lock:
            slot = self._own
            if slot is None or slot.conn is None or slot.base is None:
                return
            base = slot.base
            found = [SpilledEvent(base + order, None, 0.0, 0, slot, True) for order, _, _ in items]
            self._generation += 1
        self.remove(found)

    def close(self) -> None:
        """Release every slot; an empty one is deleted. Idempotent."""
        with self._lock:
            self._closed = True
            self._generation += 1
            for slot in self._slots():
                slot.close(delete_if_empty=True)
            self._own, self._adopted = None, []


def _read(slot: _Slot, key: int, queued_at: float, body: bytes) -> SpilledEvent:
    try:
        event: Event | None = decode_event(body)
    except SpillCodecError as exc:
        logger.warning(
            "chatdebug: unreadable record %d in spill journal %s: %s", key, slot.path, exc
        )
        event = None
    own = slot.base is not None and key >= slot.base
    return SpilledEvent(key, event, float(queued_at), len(body), slot, own)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the error that brought us here is the one to report


def _totals(conn: sqlite3.Connection) -> tuple[int, int]:
    count, size = conn.execute(
        "SELECT count(*), coalesce(sum(length(body)), 0) FROM chatdebug_spill"
    ).fetchone()
    return int(count), int(size)


def _shrink(conn: sqlite3.Connection) -> None:
    """Give the space of a drained journal back to the file system."""
    try:
        conn.execute("PRAGMA incremental_vacuum")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error:
        pass  # only space: the journal itself is fine


def _quiet_oldest(slot: _Slot) -> float | None:
    try:
        return slot.oldest()
    except sqlite3.Error:
        return None


def wall_time(monotonic_at: float) -> float:
    """The wall-clock time of a ``time.monotonic()`` reading."""
    return time.time() - (time.monotonic() - monotonic_at)
