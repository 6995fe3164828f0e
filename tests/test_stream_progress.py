"""A streaming step's progress while its response arrives: chunks, text so far (bounded
and redacted), time to first chunk, stored in the open step's metadata by the heartbeat at
most once a second and replaced by the final write; the run's ``updated_at`` moves with
it. Through the real openai SDK into SQLite and PostgreSQL, and the pieces on their own."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import openai
import pytest

import chatdebug
from chatdebug._spans import PROGRESS_TEXT_CHARS
from chatdebug.exporter._bulkplan import plan_bulk
from chatdebug.exporter._events import (
    STREAM_PROGRESS,
    CreateStep,
    StepProgress,
    UpdateStep,
    apply_event,
)
from chatdebug.instrument.capture._response_body import ResponseBody
from chatdebug.instrument.normalize import Codec, detect
from chatdebug.store import NewRun, NewStep, StepUpdate, Store, open_store
from tests.fakes import wire
from tests.fakes.server import SSE_HEADERS, FakeServer, Reply
from tests.support import wait_for

SECRET = "sk-proj-PROGRESSsecret0123456789abcdefXYZ"
CODEC = detect("POST", "api.openai.com", "/v1/chat/completions").codec


def _codec() -> tuple[Codec, dict[str, Any] | None]:
    return CODEC, None


# -- the pieces ---------------------------------------------------------------------------


def test_response_body_progress_counts_events_and_reports_only_what_is_new() -> None:
    chunks = wire.openai_stream_chunks(["Hel", "lo ", "world"])
    body = ResponseBody([("content-type", "text/event-stream")], _codec, 100_000, 0.0)
    assert body.progress(PROGRESS_TEXT_CHARS) is None  # nothing arrived yet
    body.feed(chunks[0])
    body.feed(chunks[1])
    first = body.progress(PROGRESS_TEXT_CHARS)
    assert first is not None
    events, text, length = first
    assert (events, text, length) == (2, "Hel", 3)  # the role chunk, then "Hel"
    assert body.progress(PROGRESS_TEXT_CHARS) is None  # nothing new since
    for chunk in chunks[2:]:
        body.feed(chunk)
    later = body.progress(PROGRESS_TEXT_CHARS)
    assert later is not None and later[1] == "Hello world" and later[0] > events
    # Asking for progress consumed nothing: the result is the whole stream.
    body.end()
    body.close_parser()
    result = body.normalize()
    assert result.complete
    assert result.response is not None
    assert result.response["content"] == [{"type": "text", "text": "Hello world"}]


def test_response_body_progress_text_is_bounded_with_a_margin_and_whole_length() -> None:
    long_text = "x" * (PROGRESS_TEXT_CHARS * 3)
    body = ResponseBody([("content-type", "text/event-stream")], _codec, 10_000_000, 0.0)
    for chunk in wire.openai_stream_chunks([long_text], done=False):
        body.feed(chunk)
    found = body.progress(10)
    assert found is not None
    _, text, length = found
    assert length == len(long_text)
    assert 10 < len(text) < 10 + 1000  # the cut plus the redaction margin, not the rest


def test_a_json_body_has_no_progress() -> None:
    body = ResponseBody([("content-type", "application/json")], _codec, 100_000, 0.0)
    body.feed(b'{"a": 1}')
    assert body.progress(PROGRESS_TEXT_CHARS) is None


def _seed(store: Store) -> tuple[uuid.UUID, uuid.UUID]:
    from datetime import UTC, datetime

    run_id, step_id = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    store.create_run(NewRun(id=run_id, chat_id="c-progress", started_at=now))
    store.create_step(
        NewStep(
            id=step_id,
            run_id=run_id,
            chat_id="c-progress",
            operation="stream",
            started_at=now,
            normalized_request={},
            metadata={},
        )
    )
    return run_id, step_id


def test_progress_then_final_update_in_one_bulk_plan_keeps_the_final_metadata() -> None:
    """The writer's bulk path merges a step's events of one batch: its progress and then
    its final update must leave the final metadata, never the progress."""
    from datetime import UTC, datetime

    run_id, step_id = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    create = CreateStep(
        NewStep(
            id=step_id,
            run_id=run_id,
            chat_id="c",
            operation="stream",
            started_at=now,
            normalized_request={},
            metadata={},
        )
    )
    progress = StepProgress(step_id, run_id, "c", {"chunks": 3, "text": "Hel"})
    final = UpdateStep(
        StepUpdate(id=step_id, chat_id="c", status="completed", metadata={"m": 1}), run_id
    )
    plan = plan_bulk([create, progress, final])
    assert plan is not None
    (step,) = plan.writes.new_steps
    assert step.metadata == {"m": 1}
    plan = plan_bulk([create, progress])
    assert plan is not None
    assert plan.writes.new_steps[0].metadata == {STREAM_PROGRESS: progress.progress}
    assert plan.writes.step_touches == [(step_id, run_id, "c")]


def test_progress_is_stored_then_replaced_by_the_final_update(store: Store) -> None:
    run_id, step_id = _seed(store)
    before = store.get_run(run_id)
    assert before is not None
    progress = {"chunks": 2, "text_chars": 3, "time_to_first_chunk_ms": 1.5, "text": "Hel"}
    apply_event(store, StepProgress(step_id, run_id, "c-progress", progress))
    (step,) = store.list_steps(run_id)
    assert step.status == "in_progress"
    assert step.metadata == {STREAM_PROGRESS: progress}
    apply_event(
        store,
        UpdateStep(
            StepUpdate(id=step_id, chat_id="c-progress", status="completed", metadata={}),
            run_id,
        ),
    )
    (step,) = store.list_steps(run_id)
    assert step.status == "completed"
    assert STREAM_PROGRESS not in step.metadata


# -- through the SDK into a real store ----------------------------------------------------


@pytest.mark.slow
def test_a_stream_in_flight_shows_its_progress_and_the_end_replaces_it(
    configured: chatdebug.Configuration, fake_server: FakeServer, database_url: str
) -> None:
    pieces = ["The key is ", SECRET, " and more"]
    hold = threading.Event()
    chunks = wire.openai_stream_chunks(pieces)
    # Everything up to the secret's piece, then the server waits for the test.
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS, hold=hold, hold_after=4))
    client = openai.OpenAI(
        base_url=fake_server.url + "/v1",
        api_key="sk-proj-e2eTESTkey0123456789abcdefghij",
        http_client=chatdebug.httpx2_client(),
        max_retries=0,
    )
    reader = open_store(database_url)
    received: list[str] = []
    try:
        with chatdebug.run("c-live", user_id="u-1") as run:
            stream = client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            iterator = iter(stream)
            for _ in range(3):  # role chunk, then the first two pieces
                chunk = next(iterator)
                if chunk.choices and chunk.choices[0].delta.content:
                    received.append(chunk.choices[0].delta.content)
            assert run.id is not None
            run_id = run.id
            started = wait_for(lambda: reader.get_run(run_id))
            assert started is not None

            def progress() -> dict[str, Any] | None:
                steps = reader.list_steps(run_id)
                if len(steps) != 1:
                    return None
                found = steps[0].metadata.get(STREAM_PROGRESS)
                return found if isinstance(found, dict) else None

            seen = wait_for(progress, timeout=15)
            assert seen is not None, "no progress written while the stream was held"
            (step,) = reader.list_steps(run_id)
            assert step.status == "in_progress"
            assert seen["chunks"] >= 3
            assert seen["time_to_first_chunk_ms"] is not None
            assert seen["text"].startswith("The key is ")
            assert SECRET not in seen["text"]  # redacted like everything else
            assert seen["text_chars"] >= len("The key is ")
            moved = reader.get_run(run_id)
            assert moved is not None and moved.updated_at > started.updated_at
            hold.set()
            for chunk in iterator:
                if chunk.choices and chunk.choices[0].delta.content:
                    received.append(chunk.choices[0].delta.content)
        assert "".join(received) == "".join(pieces)  # the caller's stream is untouched
        chatdebug.flush()
        (step,) = reader.list_steps(run_id)
        assert step.status == "completed"
        assert STREAM_PROGRESS not in step.metadata
        assert step.normalized_response is not None
    finally:
        hold.set()
        reader.close()
