"""Fixtures of the command-line tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from chatdebug.store import NewRun, NewStep, RunUpdate, Store, open_store


@pytest.fixture
def seeded(database_url: str) -> Iterator[tuple[str, Store, dict[str, str]]]:
    """Three runs in two chats (``old``: 3 days ago with a step, ``failed``: an error,
    ``fine``: completed), with nothing else recorded: ``(url, store, {name: run id})``."""
    store = open_store(database_url)
    now = store.create_run(NewRun(chat_id="probe")).started_at
    store.delete_by_chat("probe", now + timedelta(seconds=1))
    runs = {
        "old": store.create_run(
            NewRun(chat_id="chat-a", user_id="u-1", model="m-1", started_at=now - timedelta(days=3))
        ),
        "failed": store.create_run(NewRun(chat_id="chat-b", user_id="u-2", model="m-2")),
        "fine": store.create_run(
            NewRun(chat_id="chat-a", user_id="u-1", model="m-2", summary={"first_message": "hi"})
        ),
    }
    store.update_run(RunUpdate(id=runs["failed"].id, chat_id="chat-b", status="error"))
    store.update_run(RunUpdate(id=runs["fine"].id, chat_id="chat-a", status="completed"))
    store.create_step(NewStep(run_id=runs["old"].id, chat_id="chat-a", operation="generate"))
    yield database_url, store, {k: str(v.id) for k, v in runs.items()}
    store.close()
