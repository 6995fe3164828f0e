"""The writer's bulk path leaves exactly the rows the one-event-at-a-time path leaves.

Every scenario is written twice into the same database: once through the real store
(bulk path) and once through a wrapper that forwards to it but has no bulk path of its
own class (so the writer applies each event through the ordinary operations). The two
sets of rows must be equal, apart from ids and store-clock timestamps.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chatdebug.exporter._bulkplan import merge_step, plan_bulk
from chatdebug.exporter._events import (
    CreateRun,
    CreateStep,
    Event,
    FinishRun,
    TouchStep,
    UpdateStep,
)
from chatdebug.exporter._health import ExporterHealth
from chatdebug.exporter._writer import BackgroundWriter
from chatdebug.store import (
    CLEAR,
    BulkWrites,
    NewRun,
    NewStep,
    RunUpdate,
    StepUpdate,
    Store,
    bulk_writer,
    encode_json,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class Forwarding:
    """A store without a bulk path of its own: the writer goes event by event."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _write(store: object, batches: list[list[Event]]) -> ExporterHealth:
    """Each inner list is queued at once and written as one batch."""
    health = ExporterHealth(None)
    writer = BackgroundWriter(store, health=health, schedule_delay=0)  # type: ignore[arg-type]
    try:
        for batch in batches:
            with writer._cond:  # queue the whole batch before the thread takes any of it
                for event in batch:
                    writer._queue.append((event, 0.0, writer._enqueued))
                    writer._enqueued += 1
                writer._ensure_thread()
                writer._cond.notify_all()
            assert writer.flush(30)
    finally:
        writer.shutdown(5)
    return health


def _scenario(
    chat: str, *, encoded: bool = False
) -> tuple[list[list[Event]], uuid.UUID, uuid.UUID, uuid.UUID]:
    """Runs and steps exercising every rule the bulk path must keep; with ``encoded``,
    the step payloads are given as JSON already encoded, as the exporter queues them.
    The last run is created, given its steps and ended within one batch (its summary
    is computed from the batch's own rows)."""
    run, late, whole = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    pack: Any = encode_json if encoded else (lambda value: value)
    s1, s2, s3, s4 = (uuid.uuid4() for _ in range(4))

    def new_step(step_id: uuid.UUID, run_id: uuid.UUID, number: int, **kw: Any) -> CreateStep:
        return CreateStep(
            NewStep(
                run_id=run_id,
                chat_id=chat,
                operation="generate",
                step_number=number,
                id=step_id,
                started_at=T0,
                normalized_request=pack(
                    {"messages": [{"role": "user", "parts": [{"type": "text", "text": "Hi  you"}]}]}
                ),
                provider="openai",
                **kw,
            )
        )

    def finish(run_id: uuid.UUID, seed: dict[str, Any], **kw: Any) -> FinishRun:
        return FinishRun(
            RunUpdate(id=run_id, chat_id=chat, status="completed", finished_at=T0 + timedelta(1)),
            seed=seed,
            started_at=T0,
            **kw,
        )

    first = [
        CreateRun(NewRun(chat_id=chat, id=run, started_at=T0)),
        new_step(s1, run, 1, error=pack({"message": "retrying"}), metadata=pack({"a": 1})),
        # Ended in the same batch: the error cleared, usage and attempts set, the
        # metadata kept (None keeps), the status completed, finished_at given.
        UpdateStep(
            StepUpdate(
                id=s1,
                chat_id=chat,
                status="completed",
                error=CLEAR,
                usage=pack({"input_tokens": 3, "output_tokens": 4}),
                attempts=pack([{"status": "completed", "method": "POST", "path": "/v1/x"}]),
                finished_at=T0 + timedelta(seconds=2),
                model="gpt-x",
            ),
            run,
        ),
        # A terminal status is never downgraded; finished_at is written once.
        UpdateStep(
            StepUpdate(
                id=s1, chat_id=chat, status="in_progress", finished_at=T0 + timedelta(seconds=9)
            ),
            run,
        ),
        new_step(s2, run, 2),
        TouchStep(s2, run, chat),
        CreateRun(NewRun(chat_id=chat, id=late, started_at=T0)),
        new_step(s3, late, 1),
    ]
    second = [
        UpdateStep(StepUpdate(id=s2, chat_id=chat, status="error", error=pack({"m": "x"})), run),
        # The label comes from the first step's request; a message id set after the end.
        finish(run, {}, step_updates=(StepUpdate(id=s1, chat_id=chat, assistant_message_id=7),)),
        new_step(s4, late, 2, status="completed", usage=pack({"input_tokens": 1})),
        finish(late, {"first_message": "given"}),
        CreateRun(NewRun(chat_id=chat, id=whole, started_at=T0)),
        new_step(
            uuid.uuid4(),
            whole,
            1,
            status="completed",
            usage=pack({"input_tokens": 5, "output_tokens": 2}),
            attempts=pack([{"status": "completed", "method": "POST", "path": "/v1/y"}]),
        ),
        finish(whole, {}),
    ]
    return [first, second], run, late, whole


def _store_clock(value: datetime | None) -> bool:
    """A time the store filled in (the scenario's own are all within days of T0)."""
    return value is not None and value - T0 > timedelta(days=30)


def _rows(store: Store, run_id: uuid.UUID) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    run = store.get_run(run_id)
    assert run is not None
    volatile = {"id", "run_id", "updated_at", "chat_id"}
    for step in store.list_steps(run_id):
        # A terminal status without a time of its own gets the store clock's now.
        assert (step.finished_at is None) == (step.status == "in_progress")
    run_row = {k: getattr(run, k) for k in run.__slots__ if k not in volatile}  # type: ignore[attr-defined]
    steps = [
        {
            k: getattr(s, k)
            for k in s.__slots__  # type: ignore[attr-defined]
            if k not in volatile and not (k == "finished_at" and _store_clock(s.finished_at))
        }
        for s in store.list_steps(run_id)
    ]
    return run_row, steps


def test_bulk_and_one_by_one_leave_the_same_rows(store: Store) -> None:
    assert bulk_writer(store) is not None and bulk_writer(Forwarding(store)) is None
    bulk_batches, bulk_run, bulk_late, bulk_whole = _scenario("bulk")
    plain_batches, plain_run, plain_late, plain_whole = _scenario("plain")
    assert plan_bulk(bulk_batches[0]) is not None and plan_bulk(bulk_batches[1]) is not None
    health_bulk = _write(store, bulk_batches)
    health_plain = _write(Forwarding(store), plain_batches)
    assert health_bulk.dropped == health_plain.dropped == {}
    for bulk_id, plain_id in (
        (bulk_run, plain_run),
        (bulk_late, plain_late),
        (bulk_whole, plain_whole),
    ):
        bulk_rows, plain_rows = _rows(store, bulk_id), _rows(store, plain_id)
        assert bulk_rows == plain_rows
    run_row, steps = _rows(store, bulk_run)
    assert run_row["status"] == "completed" and run_row["summary"]["first_message"] == "Hi you"
    assert run_row["summary"]["step_count"] == 2 and run_row["summary"]["has_error"] is True
    assert run_row["provider"] == "openai" and run_row["model"] == "gpt-x"
    first = steps[0]
    assert first["status"] == "completed" and first["error"] is None
    assert first["finished_at"] == T0 + timedelta(seconds=2)
    assert first["metadata"] == {"a": 1} and first["assistant_message_id"] == 7


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "one-by-one"])
def test_payloads_given_encoded_leave_the_same_rows_as_objects(store: Store, bulk: bool) -> None:
    target: object = store if bulk else Forwarding(store)
    encoded_batches, encoded_run, encoded_late, encoded_whole = _scenario("encoded", encoded=True)
    plain_batches, plain_run, plain_late, plain_whole = _scenario("objects")
    assert _write(target, encoded_batches).dropped == {}
    assert _write(target, plain_batches).dropped == {}
    for encoded_id, plain_id in (
        (encoded_run, plain_run),
        (encoded_late, plain_late),
        (encoded_whole, plain_whole),
    ):
        assert _rows(store, encoded_id) == _rows(store, plain_id)
    whole_run, _ = _rows(store, encoded_whole)
    assert whole_run["summary"]["total_input_tokens"] == 5
    assert whole_run["summary"]["endpoint_label"] == "POST /v1/y"
    _, steps = _rows(store, encoded_run)
    assert steps[0]["usage"] == {"input_tokens": 3, "output_tokens": 4}
    assert steps[0]["attempts"] == [{"status": "completed", "method": "POST", "path": "/v1/x"}]


def test_a_batch_the_bulk_path_refuses_is_applied_event_by_event(store: Store) -> None:
    chat = "refused"
    run_id, step_id = uuid.uuid4(), uuid.uuid4()
    create = CreateRun(NewRun(chat_id=chat, id=run_id))
    _write(store, [[create]])
    finished = FinishRun(RunUpdate(id=run_id, chat_id=chat, status="completed"), seed={"x": 1})
    _write(store, [[finished]])
    # The run exists already (a retried batch) and is finalized: the step is refused
    # for that reason, counted once, and the rest of the batch still goes in.
    other = uuid.uuid4()
    health = _write(
        store,
        [
            [
                create,
                CreateStep(NewStep(run_id=run_id, chat_id=chat, operation="generate", id=step_id)),
                CreateRun(NewRun(chat_id=chat, id=other)),
            ]
        ],
    )
    assert health.dropped == {"run_finalized": 1}
    assert store.list_steps(run_id) == []
    assert store.get_run(other) is not None


def test_a_batch_written_again_leaves_the_same_rows(store: Store) -> None:
    """A backlog replayed after a crash between its commit and its removal from the
    journal: every row once, in the state the first write left."""
    batches, run, late, whole = _scenario("again")
    _write(store, batches)
    before = {run_id: _rows(store, run_id) for run_id in (run, late, whole)}
    _write(store, [batches[0] + batches[1]])
    for run_id, rows in before.items():
        assert _rows(store, run_id) == rows
        steps = store.list_steps(run_id)
        assert len({step.step_number for step in steps}) == len(steps)


def test_updates_of_one_step_in_one_batch_apply_in_order(store: Store) -> None:
    """Several updates of a step created in an earlier batch: one multi-row statement
    cannot apply two of them, so each goes in its own, in order."""
    results = []
    for target, chat in ((store, "order-bulk"), (Forwarding(store), "order-plain")):
        run_id, step_id = uuid.uuid4(), uuid.uuid4()
        create = [
            CreateRun(NewRun(chat_id=chat, id=run_id, started_at=T0)),
            CreateStep(
                NewStep(
                    run_id=run_id,
                    chat_id=chat,
                    operation="generate",
                    step_number=1,
                    id=step_id,
                    started_at=T0,
                )
            ),
        ]
        updates: list[Event] = [
            UpdateStep(StepUpdate(id=step_id, chat_id=chat, metadata={"v": n}), run_id)
            for n in range(1, 4)
        ]
        updates.append(
            UpdateStep(
                StepUpdate(id=step_id, chat_id=chat, status="completed", usage={"n": 4}), run_id
            )
        )
        assert plan_bulk(updates) is not None
        assert _write(target, [create, updates]).dropped == {}
        results.append(_rows(store, run_id))
    assert results[0] == results[1]
    step = results[0][1][0]
    assert step["metadata"] == {"v": 3} and step["usage"] == {"n": 4}
    assert step["status"] == "completed"
    # The store's bulk path itself takes them in order (nothing refused and left to
    # the event-by-event path).
    bulk = bulk_writer(store)
    assert bulk is not None
    run_id, step_id = uuid.uuid4(), uuid.uuid4()
    _write(store, [[
        CreateRun(NewRun(chat_id="order-direct", id=run_id, started_at=T0)),
        CreateStep(NewStep(run_id=run_id, chat_id="order-direct", operation="generate",
                           step_number=1, id=step_id, started_at=T0)),
    ]])  # fmt: skip
    writes = BulkWrites(
        step_updates=[
            StepUpdate(id=step_id, chat_id="order-direct", metadata={"v": n}) for n in range(1, 4)
        ]
    )
    with store.batch():
        assert bulk.write_bulk(writes)
    assert store.list_steps(run_id)[0].metadata == {"v": 3}


@pytest.mark.parametrize(
    ("created", "update", "expected"),
    [
        ("in_progress", "completed", "completed"),
        ("completed", "in_progress", "completed"),
        ("completed", "error", "completed"),
        ("interrupted", "error", "error"),
        ("error", None, "error"),
    ],
)
def test_merge_step_never_downgrades_a_status(
    created: str, update: str | None, expected: str
) -> None:
    step = NewStep(run_id=uuid.uuid4(), chat_id="c", operation="generate", status=created)
    merged = merge_step(step, StepUpdate(id=step.id, chat_id="c", status=update))
    assert merged.status == expected


def test_merge_step_keeps_clears_and_writes_finished_at_once() -> None:
    step = NewStep(
        run_id=uuid.uuid4(),
        chat_id="c",
        operation="stream",
        error={"m": 1},
        usage={"input_tokens": 1},
        finished_at=T0,
    )
    merged = merge_step(
        step, StepUpdate(id=step.id, chat_id="c", error=CLEAR, finished_at=T0 + timedelta(1))
    )
    assert merged.error is None and merged.usage == {"input_tokens": 1}
    assert merged.finished_at == T0 and merged.operation == "stream"
    assert replace(merged, error={"m": 1}) == step


def test_merge_step_keeps_the_history_count_with_its_request() -> None:
    step = NewStep(
        run_id=uuid.uuid4(),
        chat_id="c",
        operation="generate",
        normalized_request={"messages": [1, 2]},
        request_history_sent=1,
    )
    # An update without a request keeps the count of the created one.
    kept = merge_step(step, StepUpdate(id=step.id, chat_id="c", status="completed"))
    assert kept.request_history_sent == 1
    # A new request brings its own count, none included.
    replaced = merge_step(
        step, StepUpdate(id=step.id, chat_id="c", normalized_request={"messages": [3]})
    )
    assert replaced.normalized_request == {"messages": [3]}
    assert replaced.request_history_sent is None
