"""Span → store event conversion (pure: no store)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, Tracer

from chatdebug import _spans as attr
from chatdebug._safety import internal_error_counts
from chatdebug._spans import SpanRecord
from chatdebug.exporter._convert import (
    placeholder_run,
    run_ended,
    run_started,
    span_time,
    step_ended,
    step_started,
)
from chatdebug.store import CLEAR, EncodedJSON
from tests.exporter.support import (
    finished_step_attributes,
    run_attributes,
    step_attributes,
    user_request,
)

Recorded = tuple[Tracer, InMemorySpanExporter]


def _errors() -> int:
    return internal_error_counts().get("exporter", 0)


def test_span_time_is_aware_utc_with_microseconds() -> None:
    ns = 1_777_777_777_123_456_789
    assert span_time(ns) == datetime(2026, 5, 3, 3, 9, 37, 123456, tzinfo=UTC)
    assert span_time(None) is None


def test_run_start_and_end(recorded: Recorded) -> None:
    tracer, spans = recorded
    run_id = uuid.uuid4()
    seed = json.dumps({"mcp_connect": [{"server": "git", "ok": True}]})
    with tracer.start_as_current_span(
        attr.RUN_SPAN,
        attributes=run_attributes(
            run_id,
            {
                attr.USER_ID: "u-7",
                attr.RUN_KIND: "title_generation",
                attr.RUN_PROVIDER: "openai",
                attr.RUN_MODEL: "gpt-4o",
                attr.RUN_FIRST_MESSAGE: "  hello\n\n  world  " + "x" * 300,
                attr.RUN_TRIGGER_MESSAGE_ID: 17,
                attr.RUN_HISTORY_TIP_MESSAGE_ID: 16,
                attr.RUN_ROOT_CHAT_ID: "root",
                attr.RUN_PARENT_CHAT_ID: "parent",
                attr.RUN_SUMMARY_SEED: seed,
            },
        ),
    ) as span:
        span.set_attribute(attr.RUN_STATUS, "interrupted")
    (ended,) = spans.get_finished_spans()

    create = run_started(ended)
    assert create is not None
    params = create.params
    assert params.id == run_id
    assert (params.chat_id, params.user_id, params.kind) == ("chat-1", "u-7", "title_generation")
    assert (params.provider, params.model) == ("openai", "gpt-4o")
    assert (params.trigger_message_id, params.history_tip_message_id) == (17, 16)
    assert (params.root_chat_id, params.parent_chat_id) == ("root", "parent")
    assert params.summary is not None
    assert params.summary["first_message"].startswith("hello world xxx")
    assert len(params.summary["first_message"]) == 200
    assert params.summary["mcp_connect"] == [{"server": "git", "ok": True}]
    assert params.started_at == span_time(ended.start_time)
    assert params.trace_id == format(ended.context.trace_id, "032x")
    assert params.span_id == format(ended.context.span_id, "016x")
    assert len(params.trace_id) == 32 and len(params.span_id) == 16

    finish = run_ended(ended)
    assert finish is not None
    assert finish.update.status == "interrupted"
    assert finish.update.finished_at == span_time(ended.end_time)
    assert finish.started_at == params.started_at
    assert finish.seed == params.summary


def test_run_status_defaults(recorded: Recorded) -> None:
    tracer, spans = recorded
    with tracer.start_as_current_span(attr.RUN_SPAN, attributes=run_attributes(uuid.uuid4())):
        pass
    with tracer.start_as_current_span(
        attr.RUN_SPAN, attributes=run_attributes(uuid.uuid4())
    ) as failed:
        failed.set_status(Status(StatusCode.ERROR))
    ok, bad = spans.get_finished_spans()
    assert (finish := run_ended(ok)) is not None and finish.update.status == "completed"
    assert (finish := run_ended(bad)) is not None and finish.update.status == "error"
    assert (create := run_started(ok)) is not None and create.params.summary is None


def test_step_start_and_end(recorded: Recorded) -> None:
    tracer, spans = recorded
    run_id, step_id = uuid.uuid4(), uuid.uuid4()
    attrs = step_attributes(
        run_id,
        step_id,
        3,
        {
            attr.STEP_OPERATION: "stream",
            attr.STEP_NORMALIZED_REQUEST: user_request("hi"),
            attr.STEP_HISTORY_TIP_MESSAGE_ID: 41,
        },
    )
    with tracer.start_as_current_span(attr.STEP_SPAN, attributes=attrs) as span:
        span.set_attributes(finished_step_attributes(input_tokens=7, output_tokens=2))
        span.set_attribute(attr.STEP_ERROR, "null")
        span.set_attribute(attr.STEP_ASSISTANT_MESSAGE_ID, 42)
    (ended,) = spans.get_finished_spans()

    create = step_started(ended)
    assert create is not None
    new = create.params
    assert (new.id, new.run_id, new.chat_id) == (step_id, run_id, "chat-1")
    assert (new.step_number, new.operation, new.history_tip_message_id) == (3, "stream", 41)
    assert new.normalized_request == json.loads(user_request("hi"))
    assert new.started_at == span_time(ended.start_time)
    assert new.trace_id == format(ended.context.trace_id, "032x")

    update = step_ended(ended)
    assert update is not None
    params = update.params
    assert update.run_id == run_id and params.id == step_id
    assert params.status == "completed"
    assert params.error is CLEAR
    assert params.usage == {"input_tokens": 7, "output_tokens": 2}
    assert params.attempts is not None and params.attempts[0]["path"] == "/v1/chat/completions"
    assert params.metadata == {"stream_summary": {"part_count": 3}}
    assert params.normalized_response is not None
    assert params.assistant_message_id == 42
    assert params.finished_at == span_time(ended.end_time)


def test_step_error_payload(recorded: Recorded) -> None:
    tracer, spans = recorded
    with tracer.start_as_current_span(
        attr.STEP_SPAN, attributes=step_attributes(uuid.uuid4(), uuid.uuid4(), 1)
    ) as span:
        span.set_attribute(attr.STEP_STATUS, "error")
        span.set_attribute(attr.STEP_ERROR, json.dumps({"message": "boom", "type": "APIError"}))
    update = step_ended(spans.get_finished_spans()[0])
    assert update is not None
    assert update.params.status == "error"
    assert update.params.error == {"message": "boom", "type": "APIError"}


def test_span_without_run_id_is_ignored(recorded: Recorded) -> None:
    tracer, spans = recorded
    before = _errors()
    with tracer.start_as_current_span(attr.RUN_SPAN, attributes={attr.CHAT_ID: "c"}):
        pass
    with tracer.start_as_current_span(attr.STEP_SPAN, attributes={attr.STEP_NUMBER: 1}):
        pass
    run, step = spans.get_finished_spans()
    assert run_started(run) is None and run_ended(run) is None
    assert step_started(step) is None and step_ended(step) is None
    assert _errors() == before


def test_malformed_values_are_counted_not_raised(recorded: Recorded) -> None:
    tracer, spans = recorded
    with tracer.start_as_current_span(
        attr.RUN_SPAN, attributes={attr.RUN_ID: "not-a-uuid", attr.CHAT_ID: "c"}
    ):
        pass
    before = _errors()
    assert run_started(spans.get_finished_spans()[0]) is None
    assert _errors() == before + 1

    spans.clear()
    run_id, step_id = uuid.uuid4(), uuid.uuid4()
    with tracer.start_as_current_span(
        attr.STEP_SPAN, attributes=step_attributes(run_id, step_id, 1)
    ) as span:
        span.set_attribute(attr.STEP_USAGE, "{not json")
        span.set_attribute(attr.STEP_ATTEMPTS, json.dumps({"not": "a list"}))
        span.set_attribute(attr.STEP_METADATA, json.dumps({"ok": True}))
        span.set_attribute(attr.STEP_STATUS, "exploded")
    before = _errors()
    update = step_ended(spans.get_finished_spans()[0])
    assert update is not None
    assert update.params.usage is None
    assert update.params.attempts is None
    assert update.params.metadata == {"ok": True}
    assert update.params.status == "completed"
    assert _errors() == before + 3


def test_missing_step_id_gets_a_stable_derived_id(recorded: Recorded) -> None:
    tracer, spans = recorded
    attrs = step_attributes(uuid.uuid4(), uuid.uuid4(), 1)
    del attrs[attr.STEP_ID]
    with tracer.start_as_current_span(attr.STEP_SPAN, attributes=attrs):
        pass
    (ended,) = spans.get_finished_spans()
    create, update = step_started(ended), step_ended(ended)
    assert create is not None and update is not None
    assert create.step_id == update.step_id


def test_placeholder_run_from_step(recorded: Recorded) -> None:
    tracer, spans = recorded
    run_id = uuid.uuid4()
    with tracer.start_as_current_span(
        attr.STEP_SPAN, attributes=step_attributes(run_id, uuid.uuid4(), 1, chat_id="c-9")
    ):
        pass
    create = step_started(spans.get_finished_spans()[0])
    assert create is not None
    run = placeholder_run(create).params
    assert (run.id, run.chat_id, run.kind) == (run_id, "c-9", "unknown")
    assert run.started_at == create.params.started_at


def test_record_payloads_are_queued_encoded() -> None:
    """An ended record's payload trees become one JSON string each, decoding to the
    same values a span with the same attributes gives."""
    run_id, step_id = uuid.uuid4(), uuid.uuid4()
    values = step_attributes(
        run_id, step_id, 1, {attr.STEP_NORMALIZED_REQUEST: json.loads(user_request("hi"))}
    )
    finished = {
        key: json.loads(value) if key in attr.PAYLOAD_KEYS else value
        for key, value in finished_step_attributes().items()
    }
    finished[attr.STEP_ERROR] = {"type": "x", "message": "m"}
    started = SpanRecord(attr.STEP_SPAN, values, 1, 2, 1_000)
    ended = SpanRecord(attr.STEP_SPAN, {**values, **finished}, 1, 2, 1_000, 2_000)

    create, update = step_started(started), step_ended(ended)
    assert create is not None and update is not None
    # A starting step's request is left to the writer: no encoding on the caller's thread.
    assert create.params.normalized_request == json.loads(user_request("hi"))
    params = update.params
    for key, column in (
        (attr.STEP_NORMALIZED_RESPONSE, params.normalized_response),
        (attr.STEP_USAGE, params.usage),
        (attr.STEP_ATTEMPTS, params.attempts),
        (attr.STEP_METADATA, params.metadata),
        (attr.STEP_ERROR, params.error),
    ):
        assert type(column) is EncodedJSON, key
        assert json.loads(column) == finished[key], key
