"""Deletion by chat and after a message, the cascade to steps, and the retention purge."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from chatdebug.store import PurgeResult, RunUpdate, Store
from tests.store.support import T0, FakeClock, count, make_run, make_step
from tests.support import postgres_dsn, with_search_path

DAY = timedelta(days=1)
PURGE_LOCK = (
    "SELECT pg_advisory_lock(hashtext('chatdebug.purge'), hashtext(COALESCE(current_schema(), '')))"
)


def test_delete_by_chat_removes_runs_started_before_the_bound(
    store: Store, database_url: str
) -> None:
    early = make_run(store, started_at=T0 - timedelta(minutes=5))
    make_step(store, early)
    make_step(store, early)
    late = make_run(store, started_at=T0 + timedelta(minutes=5))
    other_chat = make_run(store, chat_id="chat-2", started_at=T0 - timedelta(minutes=5))

    assert store.delete_by_chat("chat-1", started_before=T0) == 1

    assert store.get_run(early.id) is None
    assert store.list_steps(early.id) == []
    assert count(database_url, "chat_debug_steps") == 0  # cascaded
    assert store.get_run(late.id) == late
    assert store.get_run(other_chat.id) == other_chat
    assert store.delete_by_chat("chat-1", started_before=T0) == 0


def test_delete_after_message_id(store: Store, database_url: str) -> None:
    before = T0 + timedelta(hours=1)
    by_run_tip = make_run(store, history_tip_message_id=11)
    by_trigger = make_run(store, trigger_message_id=11)
    by_step_assistant = make_run(store, history_tip_message_id=9)
    make_step(store, by_step_assistant, assistant_message_id=12)
    by_step_tip = make_run(store)
    make_step(store, by_step_tip, history_tip_message_id=11)
    kept_at_message = make_run(store, history_tip_message_id=10, trigger_message_id=10)
    make_step(store, kept_at_message, assistant_message_id=10, history_tip_message_id=10)
    kept_no_ids = make_run(store)
    kept_started_late = make_run(store, history_tip_message_id=50, started_at=before)
    kept_other_chat = make_run(store, chat_id="chat-2", history_tip_message_id=50)

    removed = store.delete_after_message("chat-1", message_id=10, started_before=before)

    assert removed == 4
    for gone in (by_run_tip, by_trigger, by_step_assistant, by_step_tip):
        assert store.get_run(gone.id) is None
    remaining = {r.id for r in store.list_runs("chat-1")}
    assert remaining == {kept_at_message.id, kept_no_ids.id, kept_started_late.id}
    assert store.get_run(kept_other_chat.id) == kept_other_chat
    assert count(database_url, "chat_debug_steps") == 1  # kept_at_message's step


def test_deleting_a_run_cascades_to_its_steps(store: Store, database_url: str) -> None:
    run = make_run(store)
    for _ in range(3):
        make_step(store, run)
    keep = make_run(store, chat_id="chat-2")
    kept_step = make_step(store, keep)

    store.delete_by_chat("chat-1", started_before=T0 + DAY)

    assert count(database_url, "chat_debug_steps", "run_id = %s", [run.id]) == 0
    assert store.list_steps(keep.id) == [kept_step]


def test_purge_deletes_old_runs_and_cascaded_steps(
    store: Store, clock: FakeClock, database_url: str
) -> None:
    store.set_retention_days(7)
    now = T0

    clock.set(now - 8 * DAY)
    finished_old = make_run(store)
    make_step(store, finished_old)
    make_step(store, finished_old)
    store.update_run(RunUpdate(id=finished_old.id, chat_id="chat-1", status="completed"))

    clock.set(now - 9 * DAY)
    unfinished_old = make_run(store)
    make_step(store, unfinished_old)

    clock.set(now - 6 * DAY)
    recent = make_run(store)
    recent_step = make_step(store, recent)

    clock.set(now)
    before = now - store.get_retention_days() * DAY
    result = store.delete_old_runs(before)

    assert result == PurgeResult(runs_removed=2, steps_removed=3)
    assert store.get_run(finished_old.id) is None
    assert store.get_run(unfinished_old.id) is None
    assert store.list_steps(recent.id) == [recent_step]
    assert count(database_url, "chat_debug_steps") == 1
    assert store.delete_old_runs(before) == PurgeResult(runs_removed=0, steps_removed=0)


def test_retention_disabled_keeps_old_runs(store: Store, clock: FakeClock) -> None:
    store.set_retention_days(0)
    assert store.get_retention_days() == 0  # 0 means: the purge does not run at all
    clock.set(T0 - 90 * DAY)
    old = make_run(store)
    clock.set(T0)
    # A purge bounded before that run's last update leaves it alone.
    assert store.delete_old_runs(T0 - 91 * DAY).runs_removed == 0
    assert store.get_run(old.id) == old


def test_purge_uses_updated_at_not_started_at(store: Store, clock: FakeClock) -> None:
    clock.set(T0 - 30 * DAY)
    run = make_run(store)
    clock.set(T0 - DAY)
    store.touch_run(run.id, run.chat_id)  # a heartbeat keeps it alive
    assert store.delete_old_runs(T0 - 7 * DAY).runs_removed == 0
    assert store.get_run(run.id) is not None
    # The bound is exclusive.
    assert store.delete_old_runs(T0 - DAY).runs_removed == 0
    assert store.delete_old_runs(T0 - DAY + timedelta(microseconds=1)).runs_removed == 1


def test_purge_respects_the_batch_limit_oldest_first(store: Store, clock: FakeClock) -> None:
    runs = []
    for age in (10, 14, 12, 11, 13):
        clock.set(T0 - age * DAY)
        runs.append(make_run(store))
    by_age = {age: run for age, run in zip((10, 14, 12, 11, 13), runs, strict=True)}
    clock.set(T0)

    assert store.delete_old_runs(T0, limit=2).runs_removed == 2
    assert store.get_run(by_age[14].id) is None and store.get_run(by_age[13].id) is None
    assert store.get_run(by_age[12].id) is not None
    assert store.delete_old_runs(T0, limit=2).runs_removed == 2
    assert store.delete_old_runs(T0, limit=2) == PurgeResult(runs_removed=1, steps_removed=0)
    assert store.delete_old_runs(T0, limit=2).runs_removed == 0


def test_purge_rejects_a_limit_below_one(store: Store) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.delete_old_runs(T0, limit=0)


def test_purge_is_skipped_while_another_process_purges(
    pg_store: Store, clock: FakeClock, pg_url: str
) -> None:
    clock.set(T0 - 30 * DAY)
    run = make_run(pg_store)
    clock.set(T0)
    with psycopg.connect(pg_url, autocommit=True) as other:
        # What another replica's purge holds for the length of its transaction.
        other.execute(PURGE_LOCK)
        assert pg_store.delete_old_runs(T0) == PurgeResult(0, 0, skipped=True)
        assert pg_store.get_run(run.id) is not None
        # Release explicitly: a closed connection's backend may still hold the lock for
        # a moment after the client is gone.
        other.execute("SELECT pg_advisory_unlock_all()")
    assert pg_store.delete_old_runs(T0) == PurgeResult(1, 0)


def test_purge_lock_is_per_schema(pg_store: Store, clock: FakeClock, pg_url: str) -> None:
    clock.set(T0 - 30 * DAY)
    make_run(pg_store)
    clock.set(T0)
    with psycopg.connect(with_search_path(postgres_dsn(), "public"), autocommit=True) as other:
        other.execute(PURGE_LOCK)  # held for another schema of the same database
        assert pg_store.delete_old_runs(T0).runs_removed == 1
