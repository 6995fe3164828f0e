"""Runs: create, update, touch, get, list."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from chatdebug.store import (
    NewRun,
    RunNotFound,
    RunUpdate,
    Store,
    StoreError,
)
from tests.store.support import T0, FakeClock, make_run


def test_create_run_stores_every_field(store: Store, clock: FakeClock) -> None:
    started = T0 - timedelta(seconds=3)
    params = NewRun(
        chat_id="chat-1",
        kind="title_generation",
        user_id="user-7",
        root_chat_id="root-1",
        parent_chat_id="parent-1",
        model_config_id="cfg-1",
        trigger_message_id=17,
        history_tip_message_id=16,
        provider="openai",
        model="gpt-4o",
        summary={"first_message": "héllo ✓ 🙂", "nested": {"n": [1, 2.5, None, True]}},
        started_at=started,
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
    )
    run = store.create_run(params)

    assert run.id == params.id
    assert (run.chat_id, run.kind, run.status) == ("chat-1", "title_generation", "in_progress")
    assert run.user_id == "user-7"
    assert (run.root_chat_id, run.parent_chat_id, run.model_config_id) == (
        "root-1",
        "parent-1",
        "cfg-1",
    )
    assert (run.trigger_message_id, run.history_tip_message_id) == (17, 16)
    assert (run.provider, run.model) == ("openai", "gpt-4o")
    assert run.summary == params.summary
    assert run.started_at == started
    assert run.updated_at == T0
    assert run.finished_at is None
    assert (run.trace_id, run.span_id) == (params.trace_id, params.span_id)
    assert store.get_run(run.id) == run


def test_create_run_defaults_come_from_the_clock(store: Store) -> None:
    run = make_run(store)
    assert run.started_at == run.updated_at == T0
    assert run.started_at.tzinfo is not None and run.started_at.utcoffset() == timedelta(0)


def test_create_run_none_summary_uses_empty_object(store: Store) -> None:
    run = store.create_run(NewRun(chat_id="chat-1", summary=None))
    assert run.summary == {}
    assert store.get_run(run.id) == run


def test_create_run_is_idempotent_by_id(store: Store, clock: FakeClock) -> None:
    first = make_run(store, model="a")
    clock.advance(minutes=1)
    again = store.create_run(NewRun(id=first.id, chat_id="chat-1", model="b", status="error"))
    assert again == first
    assert store.get_run(first.id) == first


def test_create_run_with_an_id_of_another_chat_fails(store: Store) -> None:
    first = make_run(store, chat_id="chat-1")
    with pytest.raises(StoreError, match="another chat"):
        store.create_run(NewRun(id=first.id, chat_id="chat-2"))
    assert store.get_run(first.id) == first


def test_create_run_with_terminal_status_fills_finished_at(store: Store) -> None:
    run = make_run(store, status="completed")
    assert run.finished_at == T0


def test_update_run_changes_only_given_fields(store: Store, clock: FakeClock) -> None:
    run = make_run(store, provider="openai", model="gpt-4o", summary={"first_message": "hi"})
    later = clock.advance(seconds=5)
    updated = store.update_run(
        RunUpdate(id=run.id, chat_id=run.chat_id, model="gpt-4.1", summary={"step_count": 2})
    )
    assert updated.model == "gpt-4.1"
    assert updated.summary == {"step_count": 2}
    assert updated.provider == "openai"
    assert updated.status == "in_progress"
    assert updated.finished_at is None
    assert updated.started_at == run.started_at
    assert updated.updated_at == later

    clock.advance(seconds=5)
    again = store.update_run(
        RunUpdate(
            id=run.id,
            chat_id=run.chat_id,
            history_tip_message_id=40,
            trigger_message_id=41,
            model_config_id="cfg-9",
        )
    )
    assert (again.history_tip_message_id, again.trigger_message_id) == (40, 41)
    assert again.model_config_id == "cfg-9"
    assert again.model == "gpt-4.1" and again.summary == {"step_count": 2}
    assert store.get_run(run.id) == again


def test_update_run_autofills_finished_at_on_terminal_status(
    store: Store, clock: FakeClock
) -> None:
    run = make_run(store)
    now = clock.advance(seconds=30)
    updated = store.update_run(RunUpdate(id=run.id, chat_id=run.chat_id, status="completed"))
    assert updated.status == "completed"
    assert updated.finished_at == now


def test_update_run_in_progress_leaves_finished_at_empty(store: Store) -> None:
    run = make_run(store)
    updated = store.update_run(RunUpdate(id=run.id, chat_id=run.chat_id, status="in_progress"))
    assert updated.finished_at is None


def test_update_run_finished_at_is_write_once(store: Store, clock: FakeClock) -> None:
    run = make_run(store)
    first = T0 + timedelta(seconds=10)
    store.update_run(RunUpdate(id=run.id, chat_id=run.chat_id, finished_at=first))
    clock.advance(minutes=1)
    updated = store.update_run(
        RunUpdate(
            id=run.id,
            chat_id=run.chat_id,
            status="completed",
            finished_at=T0 + timedelta(seconds=20),
        )
    )
    assert updated.finished_at == first
    assert updated.status == "completed"


@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        ("completed", "interrupted", "completed"),
        ("completed", "error", "completed"),
        ("completed", "in_progress", "completed"),
        ("error", "interrupted", "error"),
        ("error", "completed", "completed"),
        ("interrupted", "error", "error"),
        ("interrupted", "interrupted", "interrupted"),
        ("in_progress", "interrupted", "interrupted"),
    ],
)
def test_update_run_never_downgrades_a_terminal_status(
    store: Store, current: str, new: str, expected: str
) -> None:
    run = make_run(store)
    store.update_run(RunUpdate(id=run.id, chat_id=run.chat_id, status=current))
    updated = store.update_run(
        RunUpdate(id=run.id, chat_id=run.chat_id, status=new, model="still-applied")
    )
    assert updated.status == expected
    assert updated.model == "still-applied"


def test_update_run_of_unknown_run_or_other_chat_is_not_found(store: Store) -> None:
    run = make_run(store)
    with pytest.raises(RunNotFound):
        store.update_run(RunUpdate(id=uuid.uuid4(), chat_id=run.chat_id, status="completed"))
    with pytest.raises(RunNotFound):
        store.update_run(RunUpdate(id=run.id, chat_id="other-chat", status="completed"))
    assert store.get_run(run.id) == run


def test_touch_run_bumps_updated_at_only(store: Store, clock: FakeClock) -> None:
    run = make_run(store)
    later = clock.advance(seconds=90)
    store.touch_run(run.id, run.chat_id)
    touched = store.get_run(run.id)
    assert touched is not None
    assert touched.updated_at == later
    assert touched.started_at == run.started_at and touched.status == run.status

    clock.advance(seconds=90)
    store.touch_run(run.id, "other-chat")
    assert store.get_run(run.id) == touched


def test_get_run_of_unknown_id_is_none(store: Store) -> None:
    assert store.get_run(uuid.uuid4()) is None


def test_list_runs_newest_first_then_by_id(store: Store) -> None:
    older = make_run(store, started_at=T0 - timedelta(minutes=2))
    newest = make_run(store, started_at=T0)
    tied = [make_run(store, started_at=T0 - timedelta(minutes=1)) for _ in range(3)]
    make_run(store, chat_id="chat-2", started_at=T0 + timedelta(minutes=5))

    runs = store.list_runs("chat-1")
    expected_tied = sorted((r.id for r in tied), reverse=True)
    assert [r.id for r in runs] == [newest.id, *expected_tied, older.id]
    assert [r.id for r in store.list_runs("chat-1", limit=2)] == [newest.id, expected_tied[0]]
    assert store.list_runs("no-such-chat") == []


def test_list_runs_default_limit_is_100(store: Store) -> None:
    for i in range(101):
        make_run(store, started_at=T0 + timedelta(seconds=i))
    runs = store.list_runs("chat-1")
    assert len(runs) == 100
    assert runs[0].started_at == T0 + timedelta(seconds=100)
    assert runs[-1].started_at == T0 + timedelta(seconds=1)


@pytest.mark.parametrize("limit", [0, -1])
def test_list_runs_rejects_a_limit_below_one(store: Store, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.list_runs("chat-1", limit=limit)
