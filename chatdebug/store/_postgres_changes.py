"""The change feed of a PostgreSQL schema, and the reads that apply a change cheaply.

Writers ``NOTIFY`` in their own transactions (see :mod:`._changes`); the feed holds one
connection of its own that ``LISTEN``\\ s on the schema's channel. Notifications sent
while that connection is down are lost to it, so after a reconnection the feed hands
out a ``reset`` event first: its reader re-reads what it shows. TCP keepalives make a
silently dead connection noticed within seconds.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Final

import psycopg
from psycopg import sql

from ._changes import ChangeEvent, coalesce_events, event_from_document
from ._database_url import scrub
from ._rows import RUN_COLUMNS, STEP_COLUMNS

__all__ = ["CHANGED_RUNS", "STEP_BY_NUMBER", "PostgresChangeFeed"]

logger = logging.getLogger("chatdebug.store")

RETRY_SECONDS: Final = (0.5, 1.0, 2.0, 5.0)
"""Waits between attempts to get the listening connection back."""
_DRAIN: Final = 0.005  # seconds to collect the rest of a burst once one arrived
_KEEPALIVE: Final = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
    "tcp_user_timeout": 10000,
}
_CHANNEL: Final = (
    "SELECT chat_debug_channel(n.nspname) FROM pg_class AS c "
    "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
    "WHERE c.oid = 'chat_debug_runs'::regclass"
)
_RUN_FACTS: Final = (
    "SELECT chat_id, status, user_id, kind, model FROM chat_debug_runs WHERE id = %(id)s"
)

STEP_BY_NUMBER: Final = (
    f"SELECT {STEP_COLUMNS} FROM chat_debug_steps "
    "WHERE run_id = %(run_id)s AND step_number = %(step_number)s"
)
CHANGED_RUNS: Final = (
    f"SELECT {RUN_COLUMNS} FROM chat_debug_runs WHERE updated_at >= %(since)s "
    "ORDER BY updated_at, id LIMIT %(limit)s"
)


class PostgresChangeFeed:
    """:class:`~chatdebug.store.ChangeFeed` of one PostgreSQL schema (not durable)."""

    durable = False

    def __init__(self, target: str, kwargs: dict[str, Any], password: str | None) -> None:
        self._target = target
        self._kwargs = {**kwargs, **_KEEPALIVE, "autocommit": True}
        if self._kwargs.get("application_name") == "chatdebug":  # ours, not the URL's
            self._kwargs["application_name"] = "chatdebug-events"
        self._password = password
        self._conn: psycopg.Connection[Any] | None = None
        self._attempt = 0
        self._next_try = 0.0
        self._ever_connected = False
        self._lost = False

    def _message(self, exc: BaseException) -> str:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return scrub(text, self._password)

    def _connect(self) -> psycopg.Connection[Any] | None:
        now = time.monotonic()
        if now < self._next_try:
            return None
        try:
            conn = psycopg.connect(self._target, **self._kwargs)
            try:
                row = conn.execute(_CHANNEL).fetchone()
                if row is None:
                    raise psycopg.ProgrammingError("chat_debug_runs not found")
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(str(row[0]))))
            except BaseException:
                conn.close()
                raise
        except psycopg.Error as exc:
            wait = RETRY_SECONDS[min(self._attempt, len(RETRY_SECONDS) - 1)]
            if not self._lost:
                logger.warning("chatdebug: cannot listen for change events: %s", self._message(exc))
            self._lost = True
            self._attempt += 1
            self._next_try = now + wait
            return None
        self._attempt = 0
        return conn

    def wait(self, timeout: float) -> list[ChangeEvent]:
        deadline = time.monotonic() + timeout
        events: list[ChangeEvent] = []
        if self._conn is None:
            self._conn = self._connect()
            if self._conn is None:
                time.sleep(max(0.0, min(deadline, self._next_try) - time.monotonic()))
                return []
            if self._ever_connected:
                # Down for a while: whatever was notified meanwhile is lost to us.
                logger.info("chatdebug: listening for change events again")
                events.append(ChangeEvent("reset"))
            self._ever_connected = True
            self._lost = False
        conn = self._conn
        try:
            left = max(0.0, deadline - time.monotonic())
            # The generator holds the connection: payloads are decoded after it ends.
            payloads = [n.payload for n in conn.notifies(timeout=left, stop_after=1)]
            if payloads:
                payloads += [n.payload for n in conn.notifies(timeout=_DRAIN)]
            for payload in payloads:
                self._add(conn, payload, events)
        except psycopg.Error as exc:
            logger.warning("chatdebug: lost the change events connection: %s", self._message(exc))
            self._lost = True
            self._drop()
        return coalesce_events(events)

    def _add(self, conn: psycopg.Connection[Any], payload: str, events: list[ChangeEvent]) -> None:
        try:
            doc = json.loads(payload)
        except ValueError:
            return
        if not isinstance(doc, dict):
            return
        if doc.get("oversize") and doc.get("run_id"):
            row = conn.execute(_RUN_FACTS, {"id": doc["run_id"]}).fetchone()
            if row is None:
                return
            doc.update(zip(("chat_id", "status", "user_id", "run_kind", "model"), row, strict=True))
            doc["step_numbers"] = None
        event = event_from_document(doc)
        if event is not None:
            events.append(event)

    def since(self, position: int) -> list[ChangeEvent] | None:
        return None  # notifications are not kept

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def close(self) -> None:
        self._drop()
