"""The one listener of a ``serve`` process and the subscribers it fans out to.

One thread reads the store's change feed (:func:`chatdebug.store.open_change_feed`)
and hands each burst of events to the event loop, which gives every event an id, keeps
the last ones for subscribers that reconnect, and puts it on the queue of every
subscriber whose filter it matches. A subscriber's queue is bounded (in bursts, each
at most one read of the feed): one that does not keep up is dropped with a final
``reset`` (it reconnects and re-reads) instead of holding memory without bound.

Event ids: on SQLite the ring position of the event (durable: a subscriber can resume
after a restart of ``serve``, from the ring itself); on PostgreSQL ``<epoch>-<n>``,
counted by this process (a subscriber that comes back to another process, or too late,
gets ``reset``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Final

from starlette.concurrency import run_in_threadpool

from ..store import ChangeEvent, ChangeFeed, Store, StoreError, open_change_feed

__all__ = ["HEARTBEAT_SECONDS", "QUEUE_SIZE", "EventHub", "Item"]

logger = logging.getLogger("chatdebug.server")

QUEUE_SIZE: Final = 64
"""Bursts of events a subscriber may have waiting before it is dropped."""
BUFFER_SIZE: Final = 4096
"""Recent events kept for subscribers that reconnect."""
WAIT_SECONDS: Final = 0.25
HEARTBEAT_SECONDS: Final = 15.0
"""Quiet seconds after which a stream gets a comment line (keeps proxies from timing
it out, and tells the client the connection lives)."""


class Item:
    """An event, its id, and its server-sent event text (formatted once, however many
    subscribers send it)."""

    __slots__ = ("_text", "event", "id")

    def __init__(self, event_id: str | None, event: ChangeEvent) -> None:
        self.id = event_id
        self.event = event
        self._text: str | None = None

    @property
    def text(self) -> str:
        """``id:``, ``event:`` and ``data:`` lines and the blank line that ends them."""
        if self._text is None:
            data = json.dumps(self.event.document(), separators=(",", ":"))
            head = f"id: {self.id}\n" if self.id is not None else ""
            self._text = f"{head}event: {self.event.kind}\ndata: {data}\n\n"
        return self._text


Match = Callable[[ChangeEvent], bool]

_CLOSE: Final = object()


class _Subscriber:
    """One open stream: its filter and its queue of bursts (touched on the event loop
    only). The queue holds at most ``size`` bursts; a burst is what the feed handed
    out at once (bounded by what one read of the feed returns)."""

    __slots__ = ("dropped", "match", "queue", "size")

    def __init__(self, match: Match, size: int) -> None:
        self.match = match
        self.size = size
        self.queue: asyncio.Queue[list[Item] | object] = asyncio.Queue()
        self.dropped = False

    def offer(self, items: list[Item]) -> None:
        if self.dropped:
            return
        mine = [item for item in items if self.match(item.event)]
        if not mine:
            return
        if self.queue.qsize() >= self.size:
            # Too slow: drop what waits, tell it to start over, and end its stream.
            self.dropped = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait([Item(mine[-1].id, ChangeEvent("reset"))])
            self.queue.put_nowait(_CLOSE)
            return
        self.queue.put_nowait(mine)

    def close(self) -> None:
        self.queue.put_nowait(_CLOSE)


class EventHub:
    """The change events of ``store`` for every subscriber of one process.

    :meth:`start` opens the feed in a thread of its own (before the server accepts
    connections); :meth:`subscribe` streams from the event loop; :meth:`close` ends
    every stream (thread-safe, also from a signal handler) and the thread.
    """

    def __init__(
        self,
        store: Store,
        *,
        queue_size: int = QUEUE_SIZE,
        buffer_size: int = BUFFER_SIZE,
        feed_factory: Callable[[Store], ChangeFeed] = open_change_feed,
    ) -> None:
        self._store = store
        self._queue_size = queue_size
        self._feed_factory = feed_factory
        self._durable = store.backend == "sqlite"
        self._epoch = secrets.token_hex(4)
        self._counter = 0
        self._lock = threading.Lock()  # the buffer, the counter and the loop
        self._buffer: deque[Item] = deque(maxlen=buffer_size)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: set[_Subscriber] = set()  # event loop only
        self._feed: ChangeFeed | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.published = 0
        """Events handed to subscribers so far (for tests and benchmarks)."""

    @property
    def subscribers(self) -> int:
        """Open streams."""
        return len(self._subscribers)

    def start(self, timeout: float = 5.0) -> None:
        """Start listening; returns once the feed has taken its starting point (or
        after ``timeout`` when the database is not there yet: it keeps trying)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._listen, name="chatdebug-events", daemon=True
            )
            self._thread.start()
        self._ready.wait(timeout)

    def _listen(self) -> None:
        feed: ChangeFeed | None = None
        while not self._stop.is_set():
            if feed is None:
                try:
                    feed = self._feed_factory(self._store)
                except StoreError as exc:
                    # A store without change events (an in-memory database): the
                    # streams stay open with heartbeats only.
                    logger.warning("chatdebug serve: no change events: %s", exc)
                    self._ready.set()
                    return
                self._feed = feed
                feed.wait(0)  # takes its starting point
                self._ready.set()
            try:
                events = feed.wait(WAIT_SECONDS)
            except Exception:  # a bug of ours must not end live updates for good
                logger.exception("chatdebug serve: reading change events failed")
                self._stop.wait(1.0)
                continue
            if events:
                self._publish(events)
        if feed is not None:
            feed.close()

    def _next_id(self, event: ChangeEvent) -> str | None:
        if self._durable:
            return None if event.position is None else str(event.position)
        self._counter += 1
        return f"{self._epoch}-{self._counter}"

    def _publish(self, events: list[ChangeEvent]) -> None:
        with self._lock:
            items = [Item(self._next_id(event), event) for event in events]
            self._buffer.extend(items)
            loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._fan_out, items)
            except RuntimeError:  # the loop has closed: shutting down
                pass

    def _fan_out(self, items: list[Item]) -> None:
        for subscriber in list(self._subscribers):
            subscriber.offer(items)
        self.published += len(items)

    def _last_id(self) -> str | None:
        with self._lock:
            return self._buffer[-1].id if self._buffer else None

    def _from_buffer(self, last_id: str) -> list[Item] | None:
        with self._lock:
            items = list(self._buffer)
        for index, item in enumerate(items):
            if item.id == last_id:
                return items[index + 1 :]
        return None

    async def _backlog(self, last_id: str) -> list[Item]:
        """What a subscriber resuming after ``last_id`` missed, or a ``reset``."""
        found = self._from_buffer(last_id)
        if found is None and self._durable and last_id.isdigit() and self._feed is not None:
            events = await run_in_threadpool(self._feed.since, int(last_id))
            if events is not None:
                found = [Item(self._next_id(event), event) for event in events]
        if found is None:
            found = [Item(self._last_id(), ChangeEvent("reset"))]
        return found

    async def subscribe(
        self, match: Match, last_id: str | None
    ) -> AsyncIterator[list[Item] | None]:
        """The events matching ``match`` from now on (after those missed since
        ``last_id``), a burst at a time; ``None`` is a heartbeat, after
        :data:`HEARTBEAT_SECONDS` of quiet. Ends when the subscriber is dropped or the
        hub closes."""
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
        subscriber = _Subscriber(match, self._queue_size)
        if self._stop.is_set():
            return
        self._subscribers.add(subscriber)
        try:
            if last_id:
                missed = [item for item in await self._backlog(last_id) if match(item.event)]
                if missed:
                    yield missed
            while True:
                try:
                    got = await asyncio.wait_for(subscriber.queue.get(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield None
                    continue
                # Everything waiting goes in one write: a subscriber that fell behind
                # catches up in fewer, larger writes instead of falling further back.
                burst: list[Item] = []
                while True:
                    if got is _CLOSE:
                        if burst:
                            yield burst
                        return
                    assert isinstance(got, list)
                    burst += got
                    if subscriber.queue.empty():
                        break
                    got = subscriber.queue.get_nowait()
                yield burst
        finally:
            self._subscribers.discard(subscriber)

    def close(self) -> None:
        """End every stream and stop listening. Thread-safe."""
        self._stop.set()
        with self._lock:
            loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._close_subscribers)
            except RuntimeError:
                pass

    def _close_subscribers(self) -> None:
        for subscriber in list(self._subscribers):
            subscriber.close()

    def join(self, timeout: float = 5.0) -> None:
        """Wait for the listening thread to end (after :meth:`close`)."""
        if self._thread is not None:
            self._thread.join(timeout)
