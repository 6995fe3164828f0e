"""The spill journal on its own: events survive it exactly, it keeps their order and
its size cap, every process gets a journal file of its own, the file of an ended
process is adopted, and replaying it twice still writes each row once (both stores)."""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from chatdebug.exporter import SpillJournal, replay_spill, slot_paths
from chatdebug.exporter._events import (
    CreateRun,
    CreateStep,
    Event,
    FinishRun,
    StepProgress,
    TouchRun,
    TouchStep,
    UpdateStep,
)
from chatdebug.exporter._health import ExporterHealth
from chatdebug.exporter._pricing import Pricer
from chatdebug.exporter._readahead import ReadAhead
from chatdebug.exporter._spill_codec import SpillCodecError, decode_event, encode_event
from chatdebug.exporter._writer import BackgroundWriter
from chatdebug.store import (
    CLEAR,
    NewRun,
    NewStep,
    RunFilter,
    RunUpdate,
    StepUpdate,
    Store,
    encode_json,
)
from tests.cli.support import chatdebug

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def run_events(chat_id: str = "c-spill") -> list[Event]:
    """A run of one step from start to end, as the processor queues it."""
    run_id, step_id = uuid.uuid4(), uuid.uuid4()
    return [
        CreateRun(
            NewRun(
                chat_id=chat_id,
                id=run_id,
                user_id="u-1",
                started_at=T0,
                trace_id="ab" * 16,
                span_id="cd" * 8,
            )
        ),
        CreateStep(
            NewStep(
                run_id=run_id,
                chat_id=chat_id,
                operation="generate",
                id=step_id,
                step_number=1,
                started_at=T0,
                provider="openai",
                model="gpt-4o",
                normalized_request=encode_json({"messages": [{"role": "user", "content": "hi"}]}),
            )
        ),
        TouchStep(step_id, run_id, chat_id),
        UpdateStep(
            StepUpdate(
                id=step_id,
                chat_id=chat_id,
                status="completed",
                error=CLEAR,
                usage={"input_tokens": 3, "output_tokens": 2},
                attempts=[{"number": 1, "status": "completed"}],
                finished_at=T0 + timedelta(seconds=1),
                model="gpt-4o",
            ),
            run_id=run_id,
            models=("gpt-4o-2024", None),
            service_tier="flex",
        ),
        TouchRun(run_id, chat_id),
        FinishRun(
            RunUpdate(
                id=run_id,
                chat_id=chat_id,
                status="completed",
                finished_at=T0 + timedelta(seconds=2),
            ),
            seed={"first_message": "hi"},
            started_at=T0,
            step_updates=(StepUpdate(id=step_id, chat_id=chat_id, assistant_message_id=18),),
        ),
    ]


def test_every_event_kind_comes_back_as_it_went_in() -> None:
    for event in run_events():
        assert decode_event(encode_event(event)) == event
    update = decode_event(encode_event(run_events()[3]))
    assert isinstance(update, UpdateStep) and update.params.error is CLEAR
    created = decode_event(encode_event(run_events()[1]))
    assert isinstance(created, CreateStep)
    assert type(created.params.normalized_request).__name__ == "EncodedJSON"
    progress = StepProgress(
        uuid.uuid4(),
        uuid.uuid4(),
        "c-spill",
        {"chunks": 3, "text_chars": 3, "time_to_first_chunk_ms": 1.5, "text": "Hel"},
    )
    assert decode_event(encode_event(progress)) == progress


def test_values_json_cannot_hold_come_back_as_the_store_would_keep_them() -> None:
    run_id = uuid.uuid4()
    seed = {"first_message": "a\ud800b", "score": math.nan, "nul": "a\x00b"}
    back = decode_event(encode_event(FinishRun(RunUpdate(id=run_id, chat_id="c"), seed=seed)))
    assert isinstance(back, FinishRun)
    # Cleaned as the store cleans what it writes.
    assert back.seed == {"first_message": "a\ufffdb", "score": None, "nul": "a\ufffdb"}


def test_a_damaged_record_is_an_error_not_a_crash() -> None:
    for data in (b"", b"[1]", b'["run_create", {"params": ["d", "Evil", {}]}]', b"\xff"):
        with pytest.raises(SpillCodecError):
            decode_event(data)


def test_journal_keeps_queue_order_and_its_size_cap(tmp_path: Path) -> None:
    events = run_events()
    journal = SpillJournal(tmp_path / "spill.db", max_bytes=10_000_000)
    try:
        # A batch that went back to the journal after later events still comes first.
        assert journal.append([(3, events[3], 3.0), (4, events[4], 4.0)]) == 2
        assert journal.append([(0, events[0], 0.0), (1, events[1], 1.0), (2, events[2], 2.0)]) == 3
        assert journal.append([(0, events[0], 0.0)]) == 1  # the same event again: kept once
        items = journal.head(10)
        assert [item.event for item in items] == events[:5]
        assert journal.pending_events == 5
        assert journal.oldest_queued_at() == 0.0
        journal.remove(items[:2])
        assert [item.event for item in journal.head(10)] == events[2:5]
        assert journal.pending_bytes == sum(item.size for item in items[2:])
    finally:
        journal.close()

    small = SpillJournal(tmp_path / "small.db", max_bytes=len(encode_event(events[0])) + 10)
    try:
        assert small.append([(i, event, 0.0) for i, event in enumerate(events)]) == 1
    finally:
        small.close()


def test_any_text_comes_back_from_the_journal_as_it_went_in(tmp_path: Path) -> None:
    text = 'caf\u00e9 "quoted" \\ back\nslash \u2603 \U0001f600 \x00 end'
    events = run_events(chat_id=text)
    journal = SpillJournal(tmp_path / "spill.db", max_bytes=10_000_000)
    try:
        assert journal.append([(i, event, float(i)) for i, event in enumerate(events)]) == 6
        items = journal.head(10)
        assert [item.event for item in items] == events
        assert [item.size for item in items] == [len(encode_event(e)) for e in events]
        assert journal.pending_bytes == sum(len(encode_event(e)) for e in events)
        journal.remove(items)
        assert journal.pending_events == 0 and journal.pending_bytes == 0
    finally:
        journal.close()


def test_a_batch_read_ahead_is_used_only_while_it_is_still_the_head(tmp_path: Path) -> None:
    events = [event for _ in range(4) for event in run_events()]  # 4 runs, 6 events each
    journal = SpillJournal(tmp_path / "spill.db", max_bytes=10_000_000)
    try:
        journal.append([(order, event, 0.0) for order, event in enumerate(events) if order >= 6])
        batches = ReadAhead(journal, limit=6)
        first = batches.next_batch()
        assert [item.event for item in first] == events[6:12]
        batches.read_after(first)
        journal.remove(first)
        batches.removed()
        # Read ahead while the first was written: the next batch, in order.
        second = batches.next_batch()
        assert [item.event for item in second] == events[12:18]
        batches.read_after(second)
        # Meanwhile an earlier run goes back to the journal (a batch the store refused):
        # it comes before what was read ahead, which is dropped and read again.
        journal.append([(order, events[order], 0.0) for order in range(6)])
        journal.remove(second)
        batches.removed()
        assert [item.event for item in batches.next_batch()] == events[:6]
        # A batch not removed (the store went away while writing it) is read again,
        # not skipped for the one read after it.
        third = batches.next_batch()
        batches.read_after(third)
        assert [item.event for item in batches.next_batch()] == [i.event for i in third]
    finally:
        journal.close()


def test_each_journal_has_its_own_file_and_an_ended_ones_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "spill.db"
    events = run_events()
    first, second = SpillJournal(path, 10**7), SpillJournal(path, 10**7)
    first.append([(0, events[0], 0.0)])
    second.append([(0, events[1], 0.0), (1, events[2], 0.0)])
    assert first.files == [path] and second.files == [slot_paths(path)[1]]
    assert slot_paths(path)[1].name == "spill.1.db"
    # A live journal is nobody else's.
    third = SpillJournal(path, 10**7)
    assert third.adopt_orphans() == 0
    # An ended one (its lock released, its events still there) is.
    second.close()
    assert slot_paths(path)[1].exists()
    assert third.adopt_orphans() == 2
    adopted = third.head(10)
    assert [item.event for item in adopted] == events[1:3] and not any(i.own for i in adopted)
    third.remove(adopted)
    assert not slot_paths(path)[1].exists()  # drained: deleted
    third.close()
    first.remove(first.head(10))
    first.close()
    assert not path.exists()  # an empty journal leaves only its lock file


def _journal_with(path: Path, events: list[Event]) -> None:
    journal = SpillJournal(path, 10**7)
    journal.append([(i, event, 0.0) for i, event in enumerate(events)])
    journal.close()


def test_replaying_a_journal_twice_writes_each_row_once(store: Store, tmp_path: Path) -> None:
    events = run_events()
    path = tmp_path / "spill.db"
    _journal_with(path, events)
    first = replay_spill(path, store, timeout=30)
    assert (first.replayed, first.remaining, first.dropped) == (6, 0, {})
    assert not path.exists()
    run_id = events[0].run_id
    stored = store.get_run(run_id)
    assert stored is not None and stored.status == "completed"
    # A crash after the commit and before the journal let go of the events: replayed
    # again, they leave the same rows (and ends never go back).
    _journal_with(path, events)
    again = replay_spill(path, store, timeout=30)
    assert (again.replayed, again.dropped) == (6, {})
    steps = store.list_steps(run_id)
    assert [(s.step_number, s.status, s.assistant_message_id) for s in steps] == [
        (1, "completed", 18)
    ]
    rerun = store.get_run(run_id)
    assert rerun is not None and rerun.status == "completed"
    assert rerun.finished_at == stored.finished_at
    assert rerun.summary["step_count"] == 1


@pytest.mark.slow
def test_chatdebug_replay_spill_writes_what_an_ended_process_left(
    database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "spill.db"
    held = SpillJournal(path, 10**7)  # a running process's journal is left alone
    held.append([(0, run_events("c-held")[0], 0.0)])
    events = run_events("c-cli") + run_events("c-cli")
    _journal_with(path, events)  # the journal of a process that has ended
    try:
        done = chatdebug("replay-spill", str(path), "--database-url", database_url)
    finally:
        held.remove(held.head(10))
        held.close()
    assert done.returncode == 0, done.stderr
    assert "replayed 12 event(s) from 1 journal file(s); 0 not written" in done.stdout
    assert "in use by a running process" in done.stdout
    shown = chatdebug("runs", "--chat", "c-cli", "--json", "--database-url", database_url)
    assert shown.returncode == 0 and shown.stdout.count('"status": "completed"') == 2
    nothing = chatdebug("replay-spill", str(tmp_path / "none.db"), "--database-url", database_url)
    assert nothing.returncode == 0 and "no spill journal" in nothing.stdout


def test_a_step_journaled_unpriced_comes_back_unpriced_and_old_records_as_priced() -> None:
    update = run_events()[3]
    assert isinstance(update, UpdateStep) and not update.priced
    assert decode_event(encode_event(update)) == update
    priced = decode_event(encode_event(replace(update, priced=True)))
    assert isinstance(priced, UpdateStep) and priced.priced
    # A record written before steps could be journaled unpriced was always priced.
    kind, fields = orjson.loads(encode_event(update))
    del fields["priced"]
    old = decode_event(orjson.dumps([kind, fields]))
    assert isinstance(old, UpdateStep) and old.priced
    assert replace(old, priced=False) == update


class _StuckPricer(Pricer):
    """A pricer whose price database takes until :attr:`release` is set to load."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.loading = threading.Event()

    def _load(self) -> Any:
        self.loading.set()
        assert self.release.wait(30), "never released"
        return super()._load()


@pytest.mark.slow
def test_the_hand_off_journals_while_the_writer_is_stuck_pricing(
    store: Store, tmp_path: Path
) -> None:
    """The writer prices; the hand-off to the journal does not wait for it (loading the
    price database can take seconds on a loaded machine), and each step is priced once,
    when the writer writes it from the journal."""
    pricer = _StuckPricer()
    observed: list[tuple[str, str, float]] = []
    health = ExporterHealth(None)
    journal = SpillJournal(tmp_path / "spill.db", 10**7)
    writer = BackgroundWriter(
        store,
        health=health,
        spill=journal,
        pricer=pricer,
        observe_cost=lambda *seen: observed.append(seen),
        handoff=0.1,
    )
    events = [
        replace(event, models=("gpt-4o",)) if isinstance(event, UpdateStep) else event
        for event in run_events("c-stuck") + run_events("c-stuck")
    ]
    try:
        for event in events:
            assert writer.put(event)
        assert pricer.loading.wait(10)
        deadline = time.monotonic() + 10
        while journal.pending_events < len(events) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert journal.pending_events == len(events)  # all of it, while pricing is stuck
        assert store.list_recent_runs(RunFilter(chat_id="c-stuck"), limit=10) == []
        pricer.release.set()
        assert writer.flush(30)
    finally:
        pricer.release.set()
        writer.shutdown(timeout=5)
    assert journal.pending_events == 0
    runs = store.list_recent_runs(RunFilter(chat_id="c-stuck"), limit=10)
    assert len(runs) == 2
    for run in runs:
        (step,) = store.list_steps(run.id)
        metadata = step.metadata if isinstance(step.metadata, dict) else json.loads(step.metadata)
        assert metadata["cost"]["source"] == "genai-prices"
        assert metadata["cost"]["total_usd"] > 0
    assert len(observed) == 2  # each step priced (and its cost counted) once
    assert sum(health.dropped.values()) == 0
