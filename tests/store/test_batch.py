"""``Store.batch()``: the operations of a block share one transaction, each isolated by a
savepoint; an unavailable database fails the whole block."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TypeVar
from urllib.parse import urlsplit

import pytest

from chatdebug.store import (
    BulkWrites,
    FinalizeResult,
    NewRun,
    NewStep,
    PostgresStore,
    RunFinalized,
    RunNotFound,
    RunUpdate,
    SQLiteStore,
    StepUpdate,
    Store,
    StoreError,
    StoreUnavailable,
    bulk_writer,
    open_store,
)
from tests.fakes.tcp_proxy import TCPProxy
from tests.store.support import FakeClock, count, make_run, make_step
from tests.support import postgres_dsn, require_postgres

T = TypeVar("T")
THREADS = 8
STEPS_PER_THREAD = 50
STEPS_PER_BATCH = 10


def _once_reachable(read: Callable[[], T]) -> T:
    """``read()``, retried while the store is unavailable (the pool reconnects with
    backoff after an outage)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return read()
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _elsewhere(store: Store, run_id: uuid.UUID) -> bool:
    """Whether another thread (another connection) sees the run."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(store.get_run, run_id).result() is not None


def test_operations_commit_together_at_the_end(store: Store, database_url: str) -> None:
    with store.batch():
        run = make_run(store)
        step = make_step(store, run, normalized_request={"messages": []})
        store.update_step(StepUpdate(id=step.id, chat_id=run.chat_id, status="completed"))
        store.touch_step(step.id, run.id, run.chat_id)
        # The block sees its own writes ...
        assert store.get_run(run.id) is not None
        assert [s.status for s in store.list_steps(run.id)] == ["completed"]
        # ... nobody else does before the commit.
        assert not _elsewhere(store, run.id)
        assert count(database_url, "chat_debug_runs") == 0
        assert count(database_url, "chat_debug_steps") == 0
    assert _elsewhere(store, run.id)
    assert count(database_url, "chat_debug_steps", "status = %s", ["completed"]) == 1


def test_a_failing_operation_does_not_undo_the_others(store: Store) -> None:
    finished = make_run(store, chat_id="chat-2")
    store.update_run(RunUpdate(id=finished.id, chat_id="chat-2", status="completed"))
    with store.batch():
        run = make_run(store)
        first = make_step(store, run)
        with pytest.raises(RunNotFound):
            store.update_run(RunUpdate(id=uuid.uuid4(), chat_id="chat-1", status="completed"))
        with pytest.raises(RunNotFound):
            store.create_step(NewStep(run_id=uuid.uuid4(), chat_id="chat-1", operation="x"))
        with pytest.raises(RunNotFound):
            store.update_step(StepUpdate(id=uuid.uuid4(), chat_id="chat-1", status="error"))
        with pytest.raises(RunFinalized):
            make_step(store, finished)
        with pytest.raises(StoreError):  # the run id exists in another chat
            store.create_run(NewRun(chat_id="chat-3", id=run.id))
        second = make_step(store, run)
    assert [s.id for s in store.list_steps(run.id)] == [first.id, second.id]
    assert [s.step_number for s in store.list_steps(run.id)] == [1, 2]
    assert store.list_steps(finished.id) == []


def test_an_exception_leaving_the_block_rolls_everything_back(
    store: Store, database_url: str
) -> None:
    kept = make_run(store, chat_id="chat-kept")
    with pytest.raises(RuntimeError, match="boom"), store.batch():
        run = make_run(store)
        make_step(store, run)
        store.update_run(RunUpdate(id=kept.id, chat_id=kept.chat_id, status="completed"))
        raise RuntimeError("boom")
    assert store.get_run(run.id) is None
    assert count(database_url, "chat_debug_steps") == 0
    unchanged = store.get_run(kept.id)
    assert unchanged is not None and unchanged.status == "in_progress"
    # The store is usable afterwards, in and out of batches.
    with store.batch():
        make_step(store, kept)
    assert len(store.list_steps(kept.id)) == 1


def test_taken_step_numbers_are_retried_inside_the_batch(store: Store) -> None:
    run = make_run(store)
    with store.batch():
        numbers = [make_step(store, run, step_number=1).step_number for _ in range(3)]
        numbers.append(make_step(store, run).step_number)
    assert numbers == [1, 2, 3, 4]
    assert [s.step_number for s in store.list_steps(run.id)] == [1, 2, 3, 4]


def test_retried_creates_inside_a_batch_are_idempotent(store: Store) -> None:
    params = NewRun(chat_id="chat-1")
    with store.batch():
        run = store.create_run(params)
        assert store.create_run(params) == run
        step_params = NewStep(run_id=run.id, chat_id=run.chat_id, operation="generate")
        step = store.create_step(step_params)
        assert store.create_step(step_params) == step
    assert len(store.list_steps(run.id)) == 1


def test_a_nested_batch_is_part_of_the_outer_one(store: Store, database_url: str) -> None:
    with store.batch():
        with store.batch():
            run = make_run(store)
        assert count(database_url, "chat_debug_runs") == 0  # not committed by the inner end
        make_step(store, run)
    assert count(database_url, "chat_debug_steps") == 1

    with pytest.raises(RuntimeError), store.batch():
        with store.batch():
            lost = make_run(store, chat_id="chat-lost")
        raise RuntimeError("the outer block fails")
    assert store.get_run(lost.id) is None


def test_other_threads_are_not_part_of_a_batch(store: Store) -> None:
    other: list[uuid.UUID] = []

    def write() -> None:  # another thread: its own transaction, committed at once
        other.append(make_run(store, chat_id="chat-other").id)

    with store.batch():
        mine = make_run(store)
        thread = threading.Thread(target=write)
        thread.start()
        if not isinstance(store, SQLiteStore):  # SQLite: it waits for the write lock
            thread.join()
            assert _elsewhere(store, other[0])
            assert not _elsewhere(store, mine.id)
    thread.join()
    assert store.get_run(mine.id) is not None
    assert store.get_run(other[0]) is not None


def test_concurrent_batches_number_steps_uniquely_and_contiguously(store: Store) -> None:
    run = make_run(store)
    start = threading.Barrier(THREADS)

    def writer(_: int) -> list[int]:
        start.wait()
        numbers: list[int] = []
        for _ in range(STEPS_PER_THREAD // STEPS_PER_BATCH):
            with store.batch():
                numbers += [make_step(store, run).step_number for _ in range(STEPS_PER_BATCH)]
        return numbers

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(writer, range(THREADS)))

    numbers = sorted(n for per_thread in results for n in per_thread)
    assert numbers == list(range(1, THREADS * STEPS_PER_THREAD + 1))
    assert [s.step_number for s in store.list_steps(run.id)] == numbers
    for per_thread in results:
        assert per_thread == sorted(per_thread)


def test_unavailable_sqlite_fails_the_whole_batch(sqlite_url: str) -> None:
    path = sqlite_url.removeprefix("sqlite:///")
    store = SQLiteStore(path, busy_timeout=0.05)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        run = make_run(store)
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(StoreUnavailable, match="not committed"), store.batch():
            assert store.get_run(run.id) is not None  # reading still works
            with pytest.raises(StoreUnavailable):
                make_step(store, run)
            with pytest.raises(StoreUnavailable, match="earlier operation"):
                store.get_run(run.id)  # the batch is done for
        blocker.execute("ROLLBACK")
        with store.batch():  # and the next one works
            make_step(store, run)
        assert len(store.list_steps(run.id)) == 1
    finally:
        blocker.close()
        store.close()


@pytest.fixture
def proxied_pg(pg_url: str) -> Iterator[tuple[TCPProxy, str]]:
    require_postgres()
    open_store(pg_url).close()  # the schema, before the proxy goes anywhere
    target = urlsplit(postgres_dsn())
    with TCPProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        yield proxy, proxy.rewrite_url(pg_url)


@pytest.mark.slow
def test_losing_postgres_fails_the_whole_batch(proxied_pg: tuple[TCPProxy, str]) -> None:
    proxy, url = proxied_pg
    store = PostgresStore(url, timeout=1.0)
    try:
        before = make_run(store, chat_id="chat-before")
        with pytest.raises(StoreUnavailable), store.batch():
            run = make_run(store)
            proxy.stop()  # the server goes away mid-batch
            with pytest.raises(StoreUnavailable):
                make_step(store, run)
            with pytest.raises(StoreUnavailable, match="earlier operation"):
                store.update_run(RunUpdate(id=before.id, chat_id=before.chat_id, status="error"))
        with pytest.raises(StoreUnavailable):  # entering a batch needs a connection too
            with store.batch():
                pass
        proxy.start()
        # nothing of the failed batch was committed
        assert _once_reachable(lambda: store.get_run(run.id)) is None
        with store.batch():
            run = make_run(store)
            make_step(store, run)
        assert len(store.list_steps(run.id)) == 1
    finally:
        store.close()


def test_a_closed_store_refuses_batches(database_url: str) -> None:
    store = open_store(database_url)
    store.close()
    with pytest.raises(StoreError, match="closed"), store.batch():
        pass


def test_every_operation_works_inside_a_batch(
    store: Store, database_url: str, clock: FakeClock
) -> None:
    """Each method returns inside a batch exactly what it returns outside one."""
    with store.batch():
        assert store.migrate() == []
        run = make_run(store, history_tip_message_id=5)
        assert store.create_run(NewRun(chat_id=run.chat_id, id=run.id)) == run
        auto = make_step(store, run)
        numbered = make_step(store, run, step_number=7, assistant_message_id=9)
        assert (auto.step_number, numbered.step_number) == (1, 7)
        clock.advance(seconds=1)
        store.touch_run(run.id, run.chat_id)
        store.touch_step(auto.id, run.id, run.chat_id)
        touched = store.get_run(run.id)
        assert touched is not None and touched.updated_at == clock.now
        updated = store.update_step(StepUpdate(id=auto.id, chat_id=run.chat_id, status="error"))
        assert updated.status == "error" and updated.finished_at is not None
        assert [s.id for s in store.list_steps(run.id)] == [auto.id, numbered.id]
        assert [r.id for r in store.list_runs(run.chat_id)] == [run.id]
        store.set_allow_users(True)
        store.set_user_enabled("user-1", True)
        store.set_retention_days(7)
        assert store.get_allow_users() is True
        assert store.get_user_enabled("user-1") is True
        assert store.get_retention_days() == 7

        other = make_run(store, chat_id="chat-2")
        make_step(store, other)
        assert store.delete_after_message("chat-1", 8, clock.now) == 1  # the step's 9 > 8
        assert store.delete_after_message("chat-1", 8, clock.now) == 0
        assert store.delete_by_chat("chat-2", clock.now + timedelta(seconds=1)) == 1
        assert store.delete_by_chat("chat-2", clock.now + timedelta(seconds=1)) == 0

        stale = make_run(store, chat_id="chat-3")
        make_step(store, stale)
        clock.advance(minutes=10)
        assert store.finalize_stale(clock.now - timedelta(minutes=5)) == FinalizeResult(1, 1)
        finished = store.update_run(
            RunUpdate(id=stale.id, chat_id="chat-3", summary={"step_count": 1})
        )
        assert finished.status == "interrupted" and finished.summary == {"step_count": 1}
        purged = store.delete_old_runs(clock.now + timedelta(seconds=1))
        assert (purged.runs_removed, purged.steps_removed, purged.skipped) == (1, 1, False)
    assert count(database_url, "chat_debug_runs") == 0
    assert store.get_retention_days() == 7


def test_a_statement_the_server_rejects_is_undone_alone(pg_store: Store) -> None:
    run = make_run(pg_store)
    with pg_store.batch():
        first = make_step(pg_store, run)
        with pytest.raises(StoreError, match="out of range"):
            make_step(pg_store, run, history_tip_message_id=2**63)
        with pytest.raises(StoreError, match="out of range"):
            pg_store.update_step(
                StepUpdate(id=first.id, chat_id=run.chat_id, assistant_message_id=2**63)
            )
        second = make_step(pg_store, run)
    assert [s.id for s in pg_store.list_steps(run.id)] == [first.id, second.id]


def test_the_bulk_path_pauses_between_slices_and_stays_all_or_nothing(store: Store) -> None:
    """A bulk write goes in slices with the writer's pause points between them (SQLite
    runs in the writer's thread), and is still one transaction: an update that applies
    to no row, in the last slice, leaves none of the earlier slices written."""
    bulk = bulk_writer(store)
    assert bulk is not None
    run = make_run(store)
    pauses: list[int] = []
    steps = [
        NewStep(run_id=run.id, chat_id=run.chat_id, operation="generate", step_number=n)
        for n in range(1, 12)
    ]
    with store.batch():
        assert bulk.write_bulk(BulkWrites(new_steps=steps), lambda: pauses.append(1))
    assert len(store.list_steps(run.id)) == 11
    if isinstance(store, SQLiteStore):
        # One per row while the rows are converted, then more between the slices.
        assert len(pauses) > len(steps)
    updates = [
        StepUpdate(id=step.id, chat_id=run.chat_id, metadata={"slice": n})
        for n, step in enumerate(steps)
    ] + [StepUpdate(id=uuid.uuid4(), chat_id=run.chat_id, metadata={"slice": "none"})]
    with store.batch():
        assert not bulk.write_bulk(BulkWrites(step_updates=updates), lambda: None)
    assert all(step.metadata == {} for step in store.list_steps(run.id))
