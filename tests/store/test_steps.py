"""Steps: create (guard, numbering, retries), update, touch, list."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

import pytest

from chatdebug.store import (
    CLEAR,
    NewStep,
    RunFinalized,
    RunNotFound,
    RunUpdate,
    StepUpdate,
    Store,
    StoreError,
)
from tests.store.support import T0, FakeClock, is_sqlite, make_run, make_step, raw


def test_create_step_stores_every_field(store: Store, clock: FakeClock) -> None:
    run = make_run(store)
    now = clock.advance(seconds=2)
    params = NewStep(
        run_id=run.id,
        chat_id=run.chat_id,
        operation="stream",
        step_number=1,
        history_tip_message_id=16,
        assistant_message_id=18,
        normalized_request={"messages": [{"role": "user", "parts": [{"type": "text"}]}]},
        normalized_response={"finish_reason": "stop"},
        usage={"input_tokens": 10, "output_tokens": 3},
        attempts=[{"number": 1, "status": "completed", "duration_ms": 12}],
        error={"message": "boom"},
        metadata={"stream_summary": {"chunks": 4}},
        started_at=T0,
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="00f067aa0ba902b7",
    )
    step = store.create_step(params)

    assert step.id == params.id
    assert (step.run_id, step.chat_id, step.step_number) == (run.id, run.chat_id, 1)
    assert (step.operation, step.status) == ("stream", "in_progress")
    assert (step.history_tip_message_id, step.assistant_message_id) == (16, 18)
    assert step.normalized_request == params.normalized_request
    assert step.normalized_response == params.normalized_response
    assert step.usage == params.usage
    assert step.attempts == params.attempts
    assert step.error == params.error
    assert step.metadata == params.metadata
    assert (step.started_at, step.updated_at, step.finished_at) == (T0, now, None)
    assert (step.trace_id, step.span_id) == (params.trace_id, params.span_id)
    assert store.list_steps(run.id) == [step]


def test_create_step_defaults(store: Store, clock: FakeClock) -> None:
    run = make_run(store)
    step = make_step(store, run)
    assert step.step_number == 1
    assert step.normalized_request == {} and step.metadata == {} and step.attempts == []
    assert step.normalized_response is None and step.usage is None and step.error is None
    assert step.started_at == step.updated_at == T0


def test_create_step_bumps_the_run(store: Store, clock: FakeClock) -> None:
    run = make_run(store)
    now = clock.advance(minutes=3)
    make_step(store, run)
    bumped = store.get_run(run.id)
    assert bumped is not None and bumped.updated_at == now


def test_create_step_without_number_takes_the_next_free_one(store: Store) -> None:
    run = make_run(store)
    numbers = [make_step(store, run).step_number for _ in range(3)]
    assert numbers == [1, 2, 3]
    make_step(store, run, step_number=7)
    assert make_step(store, run).step_number == 8


def test_create_step_retries_duplicate_step_numbers(store: Store) -> None:
    run = make_run(store)
    assert make_step(store, run, step_number=1).step_number == 1
    assert make_step(store, run, step_number=1).step_number == 2
    make_step(store, run, step_number=3)
    make_step(store, run, step_number=5)
    # Taken: max + 1, at least the requested number + 1.
    assert make_step(store, run, step_number=2).step_number == 6
    # Free: used as asked.
    assert make_step(store, run, step_number=4).step_number == 4
    assert [s.step_number for s in store.list_steps(run.id)] == [1, 2, 3, 4, 5, 6]


def test_create_step_gives_up_after_ten_collisions(store: Store, database_url: str) -> None:
    run = make_run(store)
    # Make every insert collide on the step-number index, whatever number it uses.
    if is_sqlite(database_url):
        raw(
            database_url,
            "CREATE TRIGGER always_collide BEFORE INSERT ON chat_debug_steps BEGIN "
            "SELECT RAISE(ABORT, 'UNIQUE constraint failed: chat_debug_steps.run_id, "
            "chat_debug_steps.step_number'); END",
        )
    else:
        raw(database_url, "CREATE SEQUENCE collisions")
        raw(
            database_url,
            "CREATE FUNCTION always_collide() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN PERFORM nextval('collisions'); RAISE unique_violation USING "
            "CONSTRAINT = 'idx_chat_debug_steps_run_step', MESSAGE = 'forced'; END $$",
        )
        raw(
            database_url,
            "CREATE TRIGGER always_collide BEFORE INSERT ON chat_debug_steps "
            "FOR EACH ROW EXECUTE FUNCTION always_collide()",
        )
    with pytest.raises(StoreError) as caught:
        make_step(store, run, step_number=1)
    assert str(caught.value) == (
        f"chatdebug: failed to create step after 10 retries (run {run.id})"
    )
    assert store.list_steps(run.id) == []
    if not is_sqlite(database_url):
        # A sequence is not rolled back: it counts the attempts.
        assert raw(database_url, "SELECT last_value FROM collisions") == [(10,)]


def test_create_step_rejects_a_finalized_run(store: Store, clock: FakeClock) -> None:
    run = make_run(store)
    finished = store.update_run(RunUpdate(id=run.id, chat_id=run.chat_id, status="completed"))
    clock.advance(minutes=1)
    with pytest.raises(RunFinalized, match="parent run is already finalized"):
        make_step(store, run)
    assert store.list_steps(run.id) == []
    assert store.get_run(run.id) == finished  # updated_at not bumped


def test_create_step_missing_run_reports_not_found(store: Store) -> None:
    with pytest.raises(RunNotFound, match="parent run not found"):
        store.create_step(NewStep(run_id=uuid.uuid4(), chat_id="chat-1", operation="stream"))


def test_create_step_chat_id_mismatch_reports_not_found(store: Store) -> None:
    run = make_run(store, chat_id="chat-1")
    with pytest.raises(RunNotFound):
        store.create_step(NewStep(run_id=run.id, chat_id="chat-2", operation="stream"))
    assert store.list_steps(run.id) == []
    assert store.get_run(run.id) == run


def test_create_step_is_idempotent_by_id(store: Store, clock: FakeClock) -> None:
    run = make_run(store)
    first = make_step(store, run, metadata={"v": 1})
    clock.advance(seconds=1)
    again = store.create_step(
        NewStep(id=first.id, run_id=run.id, chat_id=run.chat_id, operation="x", metadata={"v": 2})
    )
    assert again == first
    assert store.list_steps(run.id) == [first]
    # Also once the run is finished: a retried create still finds its step.
    store.update_run(RunUpdate(id=run.id, chat_id=run.chat_id, status="completed"))
    assert (
        store.create_step(
            NewStep(id=first.id, run_id=run.id, chat_id=run.chat_id, operation="generate")
        )
        == first
    )


def test_update_step_changes_only_given_fields(store: Store, clock: FakeClock) -> None:
    run = make_run(store)
    step = make_step(
        store, run, operation="stream", normalized_request={"messages": []}, metadata={"m": 1}
    )
    now = clock.advance(seconds=4)
    updated = store.update_step(
        StepUpdate(
            id=step.id,
            chat_id=run.chat_id,
            normalized_response={"content": [{"type": "text", "text": "hi"}]},
            usage={"input_tokens": 5},
            attempts=[{"number": 1, "status": "completed"}],
            assistant_message_id=99,
            history_tip_message_id=98,
        )
    )
    assert updated.normalized_response == {"content": [{"type": "text", "text": "hi"}]}
    assert updated.usage == {"input_tokens": 5}
    assert updated.attempts == [{"number": 1, "status": "completed"}]
    assert (updated.assistant_message_id, updated.history_tip_message_id) == (99, 98)
    assert updated.normalized_request == {"messages": []}
    assert updated.metadata == {"m": 1}
    assert updated.operation == "stream"
    assert updated.status == "in_progress" and updated.finished_at is None
    assert updated.updated_at == now
    assert store.list_steps(run.id) == [updated]


def test_update_step_autofills_finished_at_on_terminal_status(
    store: Store, clock: FakeClock
) -> None:
    run = make_run(store)
    step = make_step(store, run)
    now = clock.advance(seconds=7)
    updated = store.update_step(StepUpdate(id=step.id, chat_id=run.chat_id, status="error"))
    assert (updated.status, updated.finished_at) == ("error", now)
    clock.advance(seconds=7)
    again = store.update_step(StepUpdate(id=step.id, chat_id=run.chat_id, status="completed"))
    assert (again.status, again.finished_at) == ("completed", now)


def test_update_step_none_attempts_preserve_existing_value(store: Store) -> None:
    run = make_run(store)
    attempts = [{"number": 1, "status": "failed"}, {"number": 2, "status": "completed"}]
    step = make_step(store, run, attempts=attempts)
    updated = store.update_step(
        StepUpdate(id=step.id, chat_id=run.chat_id, attempts=None, status="completed")
    )
    assert updated.attempts == attempts


def test_update_step_clear_writes_json_null_error(store: Store, database_url: str) -> None:
    run = make_run(store)
    step = make_step(store, run, error={"message": "rate limited"})
    kept = store.update_step(StepUpdate(id=step.id, chat_id=run.chat_id, error=None))
    assert kept.error == {"message": "rate limited"}
    cleared = store.update_step(StepUpdate(id=step.id, chat_id=run.chat_id, error=CLEAR))
    assert cleared.error is None
    # The column holds a JSON null (which the COALESCE of later updates keeps), not SQL NULL.
    json_type = "json_type" if is_sqlite(database_url) else "jsonb_typeof"
    stored = raw(
        database_url,
        f"SELECT error IS NULL, {json_type}(error) FROM chat_debug_steps WHERE id = %s",
        [step.id],
    )
    assert not stored[0][0]
    assert stored[0][1] == "null"


@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        ("completed", "interrupted", "completed"),
        ("error", "interrupted", "error"),
        ("interrupted", "completed", "completed"),
        ("error", "completed", "completed"),
    ],
)
def test_update_step_never_downgrades_a_terminal_status(
    store: Store, current: str, new: str, expected: str
) -> None:
    run = make_run(store)
    step = make_step(store, run)
    store.update_step(StepUpdate(id=step.id, chat_id=run.chat_id, status=current))
    updated = store.update_step(
        StepUpdate(id=step.id, chat_id=run.chat_id, status=new, usage={"input_tokens": 1})
    )
    assert updated.status == expected
    assert updated.usage == {"input_tokens": 1}


def test_update_step_of_unknown_step_or_other_chat_is_not_found(store: Store) -> None:
    run = make_run(store)
    step = make_step(store, run)
    with pytest.raises(RunNotFound):
        store.update_step(StepUpdate(id=uuid.uuid4(), chat_id=run.chat_id, status="completed"))
    with pytest.raises(RunNotFound):
        store.update_step(StepUpdate(id=step.id, chat_id="other-chat", status="completed"))
    assert store.list_steps(run.id) == [step]


def test_touch_step_bumps_run_and_step(store: Store, clock: FakeClock) -> None:
    run = make_run(store)
    step = make_step(store, run)
    now = clock.advance(minutes=2)
    store.touch_step(step.id, run.id, run.chat_id)
    touched_run = store.get_run(run.id)
    (touched_step,) = store.list_steps(run.id)
    assert touched_run is not None and touched_run.updated_at == now
    assert touched_step.updated_at == now
    assert touched_step.status == "in_progress"


def test_touch_step_with_a_mismatched_triple_changes_nothing(
    store: Store, clock: FakeClock
) -> None:
    run = make_run(store)
    other = make_run(store, chat_id="chat-2")
    step = make_step(store, run)
    before_run, before_other = store.get_run(run.id), store.get_run(other.id)
    clock.advance(minutes=2)
    store.touch_step(step.id, other.id, other.chat_id)  # step of another run
    store.touch_step(step.id, run.id, "chat-2")  # wrong chat
    store.touch_step(uuid.uuid4(), run.id, run.chat_id)  # unknown step
    assert store.get_run(run.id) == before_run
    assert store.get_run(other.id) == before_other
    assert store.list_steps(run.id) == [step]


def test_list_steps_orders_by_number_then_start(store: Store) -> None:
    run = make_run(store)
    third = make_step(store, run, step_number=3, started_at=T0 - timedelta(seconds=9))
    first = make_step(store, run, step_number=1, started_at=T0)
    second = make_step(store, run, step_number=2, started_at=T0 + timedelta(seconds=1))
    assert store.list_steps(run.id) == [first, second, third]
    assert store.list_steps(uuid.uuid4()) == []


def test_list_steps_without_payloads_leaves_only_the_large_columns_out(store: Store) -> None:
    run = make_run(store)
    make_step(
        store,
        run,
        normalized_request={"messages": [{"role": "user"}]},
        normalized_response={"content": []},
        usage={"input_tokens": 3},
        attempts=[{"number": 1}],
        error={"message": "x"},
        metadata={"k": "v"},
    )
    make_step(store, run)
    full = store.list_steps(run.id)
    light = store.list_steps(run.id, payloads=False)
    assert [s.normalized_request for s in light] == [{}, {}]
    assert [s.normalized_response for s in light] == [None, None]
    assert [s.normalized_request for s in full] == [{"messages": [{"role": "user"}]}, {}]
    stripped = [replace(s, normalized_request={}, normalized_response=None) for s in full]
    assert light == stripped
