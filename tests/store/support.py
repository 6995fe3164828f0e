"""Support for the store contract tests: a fake clock and direct database access."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from chatdebug.store import NewRun, NewStep, Run, Step, Store

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


class FakeClock:
    """The store's clock seam: returns ``now`` until told otherwise."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, value: datetime) -> datetime:
        self.now = value
        return value

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite:")


def raw(url: str, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the database behind ``url`` without the store (``%s``
    placeholders; UUIDs are passed as text to SQLite)."""
    if is_sqlite(url):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            values = [str(p) if isinstance(p, uuid.UUID) else p for p in params]
            rows = conn.execute(query.replace("%s", "?"), values).fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query.encode(), params)
        return cur.fetchall() if cur.description else []


def count(url: str, table: str, where: str = "1 = 1", params: Sequence[Any] = ()) -> int:
    rows = raw(url, f"SELECT count(*) FROM {table} WHERE {where}", params)
    return int(rows[0][0])


def make_run(store: Store, chat_id: str = "chat-1", **fields: Any) -> Run:
    return store.create_run(NewRun(chat_id=chat_id, **fields))


def make_step(store: Store, run: Run, **fields: Any) -> Step:
    fields.setdefault("operation", "generate")
    return store.create_step(NewStep(run_id=run.id, chat_id=run.chat_id, **fields))
