"""``GET /api/debug/runs``: runs across chats, filters, and cursor paging that neither
skips nor repeats a run while a writer keeps recording new ones (both backends, runs
recorded through the real openai SDK)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

import chatdebug
from chatdebug.store import Store
from tests.fakes.server import FakeServer
from tests.server._api_support import (
    READ_TOKEN,
    build_app,
    record_error_turn,
    record_simple_turn,
)

AUTH = {"Authorization": f"Bearer {READ_TOKEN}"}


@pytest.fixture
def store(configured: chatdebug.Configuration) -> Store:
    """The store chatdebug records into (the shared ``configured`` fixture)."""
    return configured.store


@pytest.fixture
def api(store: Store) -> Iterator[TestClient]:
    with TestClient(build_app(store), headers=AUTH) as client:
        yield client


def _ids(page: dict[str, Any]) -> list[str]:
    return [run["id"] for run in page["runs"]]


def test_filters(api: TestClient, store: Store, fake_server: FakeServer) -> None:
    tag = uuid.uuid4().hex[:6]
    ok_a = record_simple_turn(fake_server, f"a-{tag}", user_id=f"ua-{tag}", model="model-a")
    ok_b = record_simple_turn(
        fake_server, f"b-{tag}", user_id=f"ub-{tag}", model="model-b", kind="title_generation"
    )
    failed = record_error_turn(fake_server, f"c-{tag}", user_id=f"ua-{tag}")
    assert chatdebug.flush()

    everything = api.get("/api/debug/runs").json()
    assert _ids(everything) == [str(failed), str(ok_b), str(ok_a)]
    assert everything["next_cursor"] is None
    assert {r["chat_id"] for r in everything["runs"]} == {f"a-{tag}", f"b-{tag}", f"c-{tag}"}

    def ids(**params: str) -> list[str]:
        response = api.get("/api/debug/runs", params=params)
        assert response.status_code == 200, response.text
        return _ids(response.json())

    assert ids(status="error") == [str(failed)]
    assert ids(status="completed") == [str(ok_b), str(ok_a)]
    assert ids(user_id=f"ua-{tag}") == [str(failed), str(ok_a)]
    assert ids(user_id=f"ua-{tag}", status="completed") == [str(ok_a)]
    assert ids(model="model-b") == [str(ok_b)]
    assert ids(kind="title_generation") == [str(ok_b)]
    assert ids(status="in_progress") == []
    run_b = store.get_run(ok_b)
    assert run_b is not None
    moment = run_b.started_at.isoformat()
    assert ids(since=moment) == [str(failed), str(ok_b)]
    assert ids(until=moment) == [str(ok_a)]
    assert ids(since="1h") == [str(failed), str(ok_b), str(ok_a)]
    future = (datetime.now(run_b.started_at.tzinfo) + timedelta(days=1)).isoformat()
    assert ids(since=future) == []


def test_cursor_pages_while_runs_keep_arriving(
    api: TestClient, store: Store, fake_server: FakeServer
) -> None:
    tag = uuid.uuid4().hex[:6]
    for i in range(14):
        record_simple_turn(fake_server, f"chat-{tag}-{i % 3}", user_id=f"u-{i % 2}")
    assert chatdebug.flush()

    stop = threading.Event()
    written = 0

    def writer() -> None:
        nonlocal written
        while not stop.is_set():
            record_simple_turn(fake_server, f"late-{tag}", user_id="u-0")
            written += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        pages: list[list[str]] = []
        filtered: list[str] = []
        cursor: str | None = None
        while True:
            params = {"limit": "4", **({"cursor": cursor} if cursor else {})}
            body = api.get("/api/debug/runs", params=params).json()
            pages.append(_ids(body))
            cursor = body["next_cursor"]
            if cursor is None:
                break
            # Give the writer time to land runs between two pages.
            chatdebug.flush(2.0)
        cursor = None
        while True:
            params = {"limit": "3", "user_id": "u-1", **({"cursor": cursor} if cursor else {})}
            body = api.get("/api/debug/runs", params=params).json()
            filtered += _ids(body)
            cursor = body["next_cursor"]
            if cursor is None:
                break
            chatdebug.flush(2.0)
    finally:
        stop.set()
        thread.join(30)
    assert chatdebug.flush()
    assert written >= 1

    seen = [run_id for page in pages for run_id in page]
    assert len(seen) == len(set(seen)), "a run was repeated"
    top = store.get_run(uuid.UUID(seen[0]))
    assert top is not None
    # Every run at or below the first page's top, newest first, exactly once.
    expected = [
        str(run.id)
        for run in store.list_recent_runs(limit=1000)
        if (run.started_at, run.id) <= (top.started_at, top.id)
    ]
    assert seen == expected
    assert all(len(page) == 4 for page in pages[:-1])
    assert filtered == [str(r.id) for r in store.list_recent_runs(limit=1000) if r.user_id == "u-1"]
    assert len(filtered) == 7
