"""Change events: every write path of both stores publishes what it changed, in its own
transaction, and a change feed hands it out (ids and statuses, never payloads)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from chatdebug.store import (
    BulkWrites,
    ChangeEvent,
    ChangeFeed,
    NewRun,
    NewStep,
    RunUpdate,
    StepUpdate,
    Store,
    bulk_writer,
    open_change_feed,
    open_store,
)
from chatdebug.store._changes import coalesce_ring_rows
from tests.store.support import FakeClock, is_sqlite

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def feed(store: Store) -> Iterator[ChangeFeed]:
    opened = open_change_feed(store)
    opened.wait(0)  # its starting point
    try:
        yield opened
    finally:
        opened.close()


def collect(
    feed: ChangeFeed, until: Callable[[list[ChangeEvent]], bool], timeout: float = 10.0
) -> list[ChangeEvent]:
    """Events until ``until`` holds for what came so far."""
    got: list[ChangeEvent] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got += feed.wait(0.2)
        if until(got):
            return got
    raise AssertionError(f"events never satisfied the condition: {got}")


def run_events(events: list[ChangeEvent], run_id: uuid.UUID) -> list[ChangeEvent]:
    return [e for e in events if e.kind == "run_update" and e.run_id == run_id]


def steps_seen(events: list[ChangeEvent], run_id: uuid.UUID) -> set[int]:
    return {n for e in run_events(events, run_id) for n in (e.step_numbers or ())}


def test_runs_and_steps_publish_ids_statuses_and_step_numbers(
    store: Store, feed: ChangeFeed
) -> None:
    run = store.create_run(NewRun(chat_id="c-1", user_id="u-1", model="m-1"))
    got = collect(feed, lambda ev: bool(run_events(ev, run.id)))
    event = run_events(got, run.id)[-1]
    assert (event.chat_id, event.status, event.user_id, event.run_kind, event.model) == (
        "c-1",
        "in_progress",
        "u-1",
        "chat_turn",
        "m-1",
    )
    first = store.create_step(NewStep(run_id=run.id, chat_id="c-1", operation="stream"))
    second = store.create_step(NewStep(run_id=run.id, chat_id="c-1", operation="chat"))
    got = collect(feed, lambda ev: steps_seen(ev, run.id) == {1, 2})
    # A step in flight: its recorded progress is published as a change of that step.
    progress = {"chunks": 4, "text_chars": 17, "time_to_first_chunk_ms": 12.5, "text": "so far"}
    store.update_step(
        StepUpdate(id=first.id, chat_id="c-1", metadata={"stream_progress": progress})
    )
    got = collect(feed, lambda ev: steps_seen(ev, run.id) == {1})
    document = run_events(got, run.id)[-1].document()
    assert "so far" not in str(document)  # ids and statuses, never payloads
    assert set(document) == {
        "kind", "chat_id", "run_id", "status", "step_numbers", "user_id", "run_kind", "model",
    }  # fmt: skip
    store.touch_step(second.id, run.id, "c-1")
    collect(feed, lambda ev: steps_seen(ev, run.id) == {2})
    store.touch_run(run.id, "c-1")
    collect(feed, lambda ev: bool(run_events(ev, run.id)))
    store.update_run(RunUpdate(id=run.id, chat_id="c-1", status="completed"))
    got = collect(feed, lambda ev: any(e.status == "completed" for e in run_events(ev, run.id)))


def test_the_bulk_path_and_batches_publish_each_run_once(store: Store, feed: ChangeFeed) -> None:
    runs = [NewRun(chat_id=f"bulk-{i}") for i in range(3)]
    steps = [NewStep(run_id=r.id, chat_id=r.chat_id, operation="chat", step_number=n)
             for r in runs for n in (1, 2)]  # fmt: skip
    writer = bulk_writer(store)
    assert writer is not None
    with store.batch():
        assert writer.write_bulk(BulkWrites(new_runs=runs, new_steps=steps))
    got = collect(feed, lambda ev: all(steps_seen(ev, r.id) == {1, 2} for r in runs))
    for run in runs:
        assert len(run_events(got, run.id)) == 1  # coalesced: one event per run


def test_a_rolled_back_batch_publishes_nothing(store: Store, feed: ChangeFeed) -> None:
    kept = NewRun(chat_id="kept")
    with pytest.raises(RuntimeError), store.batch():
        store.create_run(NewRun(chat_id="rolled-back"))
        raise RuntimeError("the block fails")
    store.create_run(kept)
    got = collect(feed, lambda ev: bool(run_events(ev, kept.id)))
    assert [e.chat_id for e in got if e.kind == "run_update"] == ["kept"]


def test_deletion_purge_and_finalization_publish(
    store: Store, feed: ChangeFeed, clock: FakeClock
) -> None:
    old = [store.create_run(NewRun(chat_id="gone")) for _ in range(2)]
    stale = store.create_run(NewRun(chat_id="stale"))
    store.create_step(NewStep(run_id=stale.id, chat_id="stale", operation="chat"))
    clock.advance(minutes=10)
    assert store.delete_by_chat("gone", clock.now) == 2
    got = collect(feed, lambda ev: any(e.kind == "delete" for e in ev))
    delete = next(e for e in got if e.kind == "delete")
    assert delete.chat_id == "gone"
    assert set(delete.run_ids) == {r.id for r in old}

    result = store.finalize_stale(clock.now - timedelta(minutes=5))
    assert result.runs_finalized == 1
    got = collect(feed, lambda ev: any(e.kind == "finalize" for e in ev))
    assert next(e for e in got if e.kind == "finalize").counts == {"runs": 1, "steps": 1}
    assert any(e.status == "interrupted" for e in run_events(got, stale.id))

    purged = store.delete_old_runs(clock.now + timedelta(days=1))
    assert purged.runs_removed == 1
    got = collect(feed, lambda ev: any(e.kind == "purge" for e in ev))
    assert next(e for e in got if e.kind == "purge").counts == {"runs": 1, "steps": 1}
    assert any(e.kind == "delete" and stale.id in e.run_ids for e in got)
    # Nothing to finalize: no event.
    store.finalize_stale(clock.now - timedelta(minutes=5))
    marker = store.create_run(NewRun(chat_id="marker"))
    got = collect(feed, lambda ev: bool(run_events(ev, marker.id)))
    assert not any(e.kind == "finalize" for e in got)


@pytest.mark.slow
def test_another_process_writing_is_seen(store: Store, feed: ChangeFeed, database_url: str) -> None:
    run_id = uuid.uuid4()
    script = (
        "import sys, uuid\n"
        "from chatdebug.store import open_store, NewRun, NewStep\n"
        "with open_store(sys.argv[1]) as s:\n"
        "    r = s.create_run(NewRun(id=uuid.UUID(sys.argv[2]), chat_id='other-process'))\n"
        "    s.create_step(NewStep(run_id=r.id, chat_id=r.chat_id, operation='chat'))\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, database_url, str(run_id)],
        check=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    collect(feed, lambda ev: steps_seen(ev, run_id) == {1})


def test_a_sqlite_feed_resumes_from_a_position_and_says_when_it_cannot(
    sqlite_url: str,
) -> None:
    with open_store(sqlite_url) as store:
        feed = open_change_feed(store)
        assert feed.durable
        feed.wait(0)
        first = store.create_run(NewRun(chat_id="a"))
        got = collect(feed, lambda ev: bool(run_events(ev, first.id)))
        position = got[-1].position
        assert isinstance(position, int)
        later = [store.create_run(NewRun(chat_id="b")) for _ in range(3)]
        collect(feed, lambda ev: all(run_events(ev, r.id) for r in later))
        replay = feed.since(position)
        assert replay is not None
        assert [e.run_id for e in replay] == [r.id for r in later]
        # Fall behind the ring: the rows after the position are trimmed away.
        path = sqlite_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            conn.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 52000) "
                "INSERT INTO chat_debug_changes (kind, chat_id) SELECT 'run', 'x' FROM n"
            )
        assert feed.since(position) is None
        feed.close()
        # A feed behind the ring says reset.
        behind = open_change_feed(store)
        behind.wait(0)
        store.create_run(NewRun(chat_id="after"))
        with sqlite3.connect(path) as conn:
            conn.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 52000) "
                "INSERT INTO chat_debug_changes (kind, chat_id) SELECT 'run', 'x' FROM n"
            )
        got = collect(behind, lambda ev: any(e.kind == "reset" for e in ev))
        behind.close()


def test_positions_of_coalesced_events_never_skip_a_change() -> None:
    runs = [str(uuid.uuid4()) for _ in range(3)]
    # seq, kind, chat, run, status, step, user, run kind, model, counts
    rows = [
        (1, "run", "c", runs[0], "in_progress", None, None, "chat_turn", None, None),
        (2, "step", "c", runs[1], "in_progress", 1, None, "chat_turn", None, None),
        (3, "step", "c", runs[0], "in_progress", 1, None, "chat_turn", None, None),
        (4, "run", "c", runs[2], "in_progress", None, None, "chat_turn", None, None),
        (5, "step", "c", runs[1], "in_progress", 2, None, "chat_turn", None, None),
        (6, "finalize", None, None, None, None, None, None, None, '{"runs": 2}'),
    ]
    events = coalesce_ring_rows(rows)
    assert [str(e.run_id) if e.run_id else e.kind for e in events] == [
        runs[0], runs[2], runs[1], "finalize",
    ]  # fmt: skip
    assert events[2].step_numbers == (1, 2)
    assert events[-1].counts == {"runs": 2}
    # Resuming after any event's position re-reads every later event in full.
    for index, event in enumerate(events):
        assert event.position is not None
        again = coalesce_ring_rows([row for row in rows if row[0] > event.position])
        for later in events[index + 1 :]:
            same = [e for e in again if (e.kind, e.run_id) == (later.kind, later.run_id)]
            assert same and same[0].step_numbers == later.step_numbers
    positions = [e.position for e in events]
    assert positions == sorted(positions)  # type: ignore[type-var]


def test_postgres_oversize_payloads_and_lost_connections(pg_url: str) -> None:
    with open_store(pg_url) as store:
        feed = open_change_feed(store)
        assert not feed.durable
        feed.wait(0)
        long_chat = "c" * 9000  # the notification would not fit: the feed looks it up
        run = store.create_run(NewRun(chat_id=long_chat))
        got = collect(feed, lambda ev: bool(run_events(ev, run.id)))
        assert run_events(got, run.id)[-1].chat_id == long_chat
        # The listening connection is killed: the feed comes back and says reset.
        pid = feed._conn.info.backend_pid  # type: ignore[attr-defined]
        with psycopg.connect(pg_url, autocommit=True) as conn:
            killed = conn.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchall()
        assert killed == [(True,)]
        got = collect(feed, lambda ev: any(e.kind == "reset" for e in ev))
        again = store.create_run(NewRun(chat_id="after"))
        collect(feed, lambda ev: bool(run_events(ev, again.id)))
        feed.close()


def test_sqlite_store_in_memory_has_no_feed() -> None:
    with open_store("sqlite:///:memory:") as store:
        with pytest.raises(Exception, match="in-memory"):
            open_change_feed(store)


def test_the_feed_is_durable_on_sqlite_only(database_url: str) -> None:
    with open_store(database_url) as store:
        feed = open_change_feed(store)
        assert feed.durable == is_sqlite(database_url)
        feed.close()
