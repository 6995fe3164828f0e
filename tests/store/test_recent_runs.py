"""Runs across chats: filters and keyset paging on ``(started_at, id)``."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from chatdebug.store import Run, RunFilter, RunPosition, RunUpdate, Store
from tests.store.support import T0, make_run


def _ids(runs: list[Run]) -> list[uuid.UUID]:
    return [run.id for run in runs]


def _newest_first(runs: list[Run]) -> list[uuid.UUID]:
    return _ids(sorted(runs, key=lambda r: (r.started_at, r.id), reverse=True))


def test_lists_every_chat_newest_first_with_id_tiebreak(store: Store) -> None:
    same_moment = T0 - timedelta(minutes=1)
    runs = [
        make_run(store, "chat-a", started_at=T0 - timedelta(minutes=3)),
        make_run(store, "chat-b", started_at=same_moment),
        make_run(store, "chat-c", started_at=same_moment),
        make_run(store, "chat-a", started_at=same_moment),
        make_run(store, "chat-b", started_at=T0),
    ]
    listed = store.list_recent_runs()
    assert _ids(listed) == _newest_first(runs)
    assert {r.chat_id for r in listed} == {"chat-a", "chat-b", "chat-c"}
    assert _ids(store.list_recent_runs(limit=2)) == _newest_first(runs)[:2]


def test_filters_combine(store: Store) -> None:
    hit = make_run(store, "chat-1", kind="chat_turn", user_id="u-1", model="gpt-4o", started_at=T0)
    store.update_run(RunUpdate(id=hit.id, chat_id="chat-1", status="error"))
    make_run(store, "chat-2", kind="chat_turn", user_id="u-1", model="gpt-4o", started_at=T0)
    make_run(store, "chat-3", kind="title_generation", user_id="u-1", model="gpt-4o")
    make_run(store, "chat-4", kind="chat_turn", user_id="u-2", model="gpt-4o", status="error")
    make_run(store, "chat-5", kind="chat_turn", user_id="u-1", model="other", status="error")
    old = make_run(
        store, "chat-6", user_id="u-1", model="gpt-4o", started_at=T0 - timedelta(days=2)
    )
    store.update_run(RunUpdate(id=old.id, chat_id="chat-6", status="error"))

    found = store.list_recent_runs(
        RunFilter(status="error", kind="chat_turn", user_id="u-1", model="gpt-4o")
    )
    assert {r.chat_id for r in found} == {"chat-1", "chat-6"}
    recent = store.list_recent_runs(
        RunFilter(status="error", user_id="u-1", model="gpt-4o", since=T0 - timedelta(days=1))
    )
    assert _ids(recent) == [hit.id]
    older = store.list_recent_runs(RunFilter(user_id="u-1", until=T0 - timedelta(days=1)))
    assert _ids(older) == [old.id]
    # since is inclusive, until exclusive
    assert _ids(store.list_recent_runs(RunFilter(since=T0, until=T0))) == []
    at_t0 = store.list_recent_runs(RunFilter(since=T0, until=T0 + timedelta(microseconds=1)))
    assert {r.chat_id for r in at_t0} >= {"chat-1", "chat-2"}
    assert store.list_recent_runs(RunFilter(model="nope")) == []


def test_keyset_pages_cover_everything_once(store: Store) -> None:
    runs = []
    for i in range(23):
        # Groups of three share a timestamp, so the id tiebreak decides within them.
        started = T0 - timedelta(seconds=i // 3)
        runs.append(make_run(store, f"chat-{i % 4}", started_at=started))
    seen: list[uuid.UUID] = []
    after: RunPosition | None = None
    while True:
        page = store.list_recent_runs(after=after, limit=5)
        seen += _ids(page)
        if len(page) < 5:
            break
        after = RunPosition(page[-1].started_at, page[-1].id)
        # A newer run arriving between pages never appears in later pages.
        make_run(store, "chat-new", started_at=T0 + timedelta(hours=1))
    assert seen == _newest_first(runs)


def test_position_with_filters(store: Store) -> None:
    runs = [make_run(store, "c", model="m", started_at=T0 - timedelta(seconds=i)) for i in range(6)]
    for i in range(6):
        make_run(store, "c", model="other", started_at=T0 - timedelta(seconds=i))
    first = store.list_recent_runs(RunFilter(model="m"), limit=4)
    rest = store.list_recent_runs(
        RunFilter(model="m"), after=RunPosition(first[-1].started_at, first[-1].id), limit=4
    )
    assert _ids(first) + _ids(rest) == _newest_first(runs)


@pytest.mark.parametrize("limit", [0, -1, True])
def test_rejects_bad_limits(store: Store, limit: int) -> None:
    with pytest.raises(ValueError):
        store.list_recent_runs(limit=limit)
