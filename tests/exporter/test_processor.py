"""StoreSpanProcessor against real stores (SQLite always, PostgreSQL when reachable)."""

from __future__ import annotations

import gc
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.sdk.trace import TracerProvider

from chatdebug import _spans as attr
from chatdebug._safety import internal_error_counts
from chatdebug.exporter import StoreSpanProcessor
from chatdebug.exporter._convert import span_time
from chatdebug.metrics import Metrics
from chatdebug.store import Store
from tests.exporter.support import (
    finished_step_attributes,
    sample,
    start_run,
    start_step,
    user_request,
    wait_for,
)


def _processor(store: Store, provider: TracerProvider, **kw: object) -> StoreSpanProcessor:
    processor = StoreSpanProcessor(store, **kw)  # type: ignore[arg-type]
    provider.add_span_processor(processor)
    return processor


def test_run_is_in_progress_while_its_span_is_open(store: Store, provider: TracerProvider) -> None:
    processor = _processor(store, provider)
    tracer = provider.get_tracer("test")
    run_id = uuid.uuid4()
    span = start_run(
        tracer,
        run_id,
        {
            attr.USER_ID: "u-7",
            attr.RUN_KIND: "chat_turn",
            attr.RUN_PROVIDER: "openai",
            attr.RUN_MODEL: "gpt-4o",
            attr.RUN_FIRST_MESSAGE: "What is\n\nthe weather?",
            attr.RUN_TRIGGER_MESSAGE_ID: 17,
        },
    )
    assert processor.force_flush(10_000)
    run = store.get_run(run_id)
    assert run is not None
    assert run.status == "in_progress"
    assert run.finished_at is None
    assert (run.chat_id, run.user_id, run.kind) == ("chat-1", "u-7", "chat_turn")
    assert (run.provider, run.model, run.trigger_message_id) == ("openai", "gpt-4o", 17)
    assert run.summary == {"first_message": "What is the weather?"}
    assert run.started_at == span_time(span.start_time)  # type: ignore[attr-defined]
    assert run.trace_id == format(span.get_span_context().trace_id, "032x")
    assert run.span_id == format(span.get_span_context().span_id, "016x")
    span.end()


@pytest.mark.slow
def test_run_row_appears_without_a_flush(store: Store, provider: TracerProvider) -> None:
    _processor(store, provider)
    run_id = uuid.uuid4()
    span = start_run(provider.get_tracer("test"), run_id)
    wait_for(lambda: store.get_run(run_id), what="the writer to write the run on its own")
    span.end()


def test_steps_and_final_summary(store: Store, provider: TracerProvider) -> None:
    processor = _processor(store, provider)
    tracer = provider.get_tracer("test")
    run_id = uuid.uuid4()
    run = start_run(tracer, run_id, {attr.RUN_FIRST_MESSAGE: "hello"})
    step1, step1_id = start_step(
        tracer, run, run_id, 1, {attr.STEP_NORMALIZED_REQUEST: user_request("hello")}
    )
    assert processor.force_flush(10_000)
    (open_step,) = store.list_steps(run_id)
    assert open_step.id == step1_id
    assert open_step.status == "in_progress"
    assert open_step.normalized_request == json.loads(user_request("hello"))

    step1.set_attributes(finished_step_attributes(input_tokens=10, output_tokens=5))
    step1.end()
    step2, step2_id = start_step(tracer, run, run_id, 2, {attr.STEP_OPERATION: "stream"})
    step2.set_attributes(finished_step_attributes(input_tokens=20, output_tokens=7))
    step2.set_attribute(attr.STEP_STATUS, "error")
    step2.set_attribute(attr.STEP_ERROR, json.dumps({"message": "rate limited"}))
    step2.end()
    run.set_attribute(attr.RUN_STATUS, "error")
    run.end()
    assert processor.force_flush(10_000)

    stored = store.get_run(run_id)
    assert stored is not None
    assert stored.status == "error"
    assert stored.finished_at == span_time(run.end_time)  # type: ignore[attr-defined]
    expected_ms = (run.end_time - run.start_time) // 1_000_000  # type: ignore[attr-defined]
    assert stored.summary == {
        "first_message": "hello",
        "step_count": 2,
        "total_input_tokens": 30,
        "total_output_tokens": 12,
        "has_error": True,
        "error": {"type": "error", "message": "rate limited", "step_number": 2},
        "endpoint_label": "POST /v1/chat/completions",
        "duration_ms": expected_ms,
        "total_cost_usd": pytest.approx((30 * 2.5 + 12 * 10) / 1e6),
    }
    first, second = store.list_steps(run_id)
    assert (first.id, first.step_number, first.status) == (step1_id, 1, "completed")
    assert first.usage == {"input_tokens": 10, "output_tokens": 5}
    # Each ended step is priced (gpt-4o at $2.50 in / $10 out per million tokens).
    assert first.metadata["stream_summary"] == {"part_count": 3}
    assert first.metadata["cost"]["total_usd"] == pytest.approx((10 * 2.5 + 5 * 10) / 1e6)
    assert first.attempts[0]["method"] == "POST"
    assert first.normalized_response is not None
    assert first.finished_at == span_time(step1.end_time)  # type: ignore[attr-defined]
    assert first.trace_id == format(step1.get_span_context().trace_id, "032x")
    assert first.span_id == format(step1.get_span_context().span_id, "016x")
    assert (second.id, second.operation, second.status) == (step2_id, "stream", "error")
    assert second.error == {"message": "rate limited"}


def test_first_message_falls_back_to_first_user_message(
    store: Store, provider: TracerProvider
) -> None:
    processor = _processor(store, provider)
    tracer = provider.get_tracer("test")
    run_id = uuid.uuid4()
    run = start_run(tracer, run_id)
    step, _ = start_step(
        tracer, run, run_id, 1, {attr.STEP_NORMALIZED_REQUEST: user_request("  Hi\nthere ")}
    )
    step.end()
    run.end()
    assert processor.force_flush(10_000)
    stored = store.get_run(run_id)
    assert stored is not None and stored.status == "completed"
    assert stored.summary["first_message"] == "Hi there"
    assert stored.summary["step_count"] == 1


@pytest.mark.slow
def test_heartbeats_bump_updated_at(store: Store, provider: TracerProvider) -> None:
    processor = _processor(store, provider, stale_threshold=timedelta(milliseconds=40))
    tracer = provider.get_tracer("test")
    run_id = uuid.uuid4()
    run = start_run(tracer, run_id)
    step, _ = start_step(tracer, run, run_id, 1)
    assert processor.force_flush(10_000)
    run0 = store.get_run(run_id)
    (step0,) = store.list_steps(run_id)
    assert run0 is not None

    def bumped() -> bool:
        current = store.get_run(run_id)
        (current_step,) = store.list_steps(run_id)
        assert current is not None
        return current.updated_at > run0.updated_at and current_step.updated_at > step0.updated_at

    wait_for(bumped, what="heartbeat to bump updated_at of the run and the step")
    step.end()
    # With no open step left, the run keeps its own heartbeat.
    assert processor.force_flush(10_000)
    after_step = store.get_run(run_id)
    assert after_step is not None
    wait_for(
        lambda: store.get_run(run_id).updated_at > after_step.updated_at,  # type: ignore[union-attr]
        what="run heartbeat",
    )
    run.end()


def test_other_spans_are_ignored(store: Store, provider: TracerProvider, metrics: Metrics) -> None:
    processor = _processor(store, provider, metrics=metrics)
    tracer = provider.get_tracer("anthropic")
    with tracer.start_as_current_span(
        "chat claude-sonnet-4",
        attributes={
            attr.GEN_AI_OPERATION_NAME: "chat",
            attr.GEN_AI_PROVIDER_NAME: "anthropic",
            attr.GEN_AI_USAGE_INPUT_TOKENS: 5,
            attr.RUN_ID: str(uuid.uuid4()),  # even with our keys: not our span name
            attr.CHAT_ID: "chat-1",
        },
    ):
        with tracer.start_as_current_span("POST"):
            pass
    assert processor.force_flush(10_000)
    assert store.list_runs("chat-1") == []
    written = sum(
        sample(metrics, "chatdebug_exporter_events_written_total", kind=k)
        for k in ("run_create", "run_finish", "step_create", "step_update")
    )
    assert written == 0
    assert (
        metrics.registry.get_sample_value(
            "gen_ai_client_operation_duration_seconds_count",
            {"provider": "anthropic", "model": "", "operation": "chat", "error_type": ""},
        )
        is None
    )


def test_late_step_on_stale_finalized_run_is_counted(
    store: Store, provider: TracerProvider, metrics: Metrics
) -> None:
    processor = _processor(store, provider, metrics=metrics)
    tracer = provider.get_tracer("test")
    run_id = uuid.uuid4()
    run = start_run(tracer, run_id)
    assert processor.force_flush(10_000)
    result = store.finalize_stale(datetime.now(UTC) + timedelta(seconds=60))
    assert result.runs_finalized == 1
    finalized = store.get_run(run_id)
    assert finalized is not None and finalized.status == "interrupted"

    step, _ = start_step(tracer, run, run_id, 1)  # must not raise
    step.set_attributes(finished_step_attributes())
    step.end()
    run.end()
    assert processor.force_flush(10_000)
    assert store.list_steps(run_id) == []
    # the step's creation and its final update
    assert sample(metrics, "chatdebug_exporter_events_dropped_total", reason="run_finalized") == 2
    assert processor.health.dropped["run_finalized"] == 2
    assert sample(metrics, "chatdebug_exporter_write_errors_total", kind="step_create") == 0


def test_genai_metrics_recorded_at_step_end(
    store: Store, provider: TracerProvider, metrics: Metrics
) -> None:
    processor = _processor(store, provider, metrics=metrics)
    tracer = provider.get_tracer("test")
    run_id = uuid.uuid4()
    run = start_run(tracer, run_id)
    step, _ = start_step(tracer, run, run_id, 1)
    step.set_attributes(finished_step_attributes(input_tokens=100, output_tokens=20))
    step.set_attribute(attr.GEN_AI_RESPONSE_MODEL, "gpt-4o-2024-08-06")
    step.set_attribute(attr.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, 64)
    step.set_attribute(attr.STEP_TTFT_MS, 250)
    step.end()
    failed, _ = start_step(tracer, run, run_id, 2)
    failed.set_attributes({attr.STEP_STATUS: "error", attr.GEN_AI_PROVIDER_NAME: "openai"})
    failed.end()
    run.end()
    assert processor.force_flush(10_000)

    labels = {"provider": "openai", "model": "gpt-4o-2024-08-06", "operation": "chat"}
    get = metrics.registry.get_sample_value
    assert get("gen_ai_client_operation_duration_seconds_count", {**labels, "error_type": ""}) == 1
    assert get("gen_ai_client_token_usage_sum", {**labels, "token_type": "input"}) == 100
    assert get("gen_ai_client_token_usage_sum", {**labels, "token_type": "output"}) == 20
    assert get("gen_ai_client_token_usage_sum", {**labels, "token_type": "cache_read"}) == 64
    assert get("gen_ai_client_token_usage_count", {**labels, "token_type": "reasoning"}) is None
    assert get("gen_ai_client_time_to_first_chunk_seconds_sum", labels) == 0.25
    failed_labels = {"provider": "openai", "model": "", "operation": "", "error_type": "_OTHER"}
    assert get("gen_ai_client_operation_duration_seconds_count", failed_labels) == 1
    assert sample(metrics, "chatdebug_exporter_events_written_total", kind="step_update") == 2
    assert sample(metrics, "chatdebug_exporter_events_written_total", kind="run_finish") == 1
    assert sample(metrics, "chatdebug_exporter_write_duration_seconds_count") >= 5
    assert sample(metrics, "chatdebug_exporter_queue_depth") == 0


def test_step_without_usage_observes_no_tokens_and_is_counted_in_the_summary(
    store: Store, provider: TracerProvider, metrics: Metrics
) -> None:
    """Usage the provider did not send is unknown: no token observation at all (a 0
    would drag the histograms down), and the run summary counts the step."""
    processor = _processor(store, provider, metrics=metrics)
    tracer = provider.get_tracer("test")
    run_id = uuid.uuid4()
    run = start_run(tracer, run_id)
    reported, _ = start_step(tracer, run, run_id, 1)
    reported.set_attributes(finished_step_attributes(input_tokens=8, output_tokens=2))
    reported.end()
    unreported, _ = start_step(tracer, run, run_id, 2)
    values = finished_step_attributes()
    for key in (attr.STEP_USAGE, attr.GEN_AI_USAGE_INPUT_TOKENS, attr.GEN_AI_USAGE_OUTPUT_TOKENS):
        del values[key]
    values[attr.STEP_METADATA] = json.dumps({"usage_unavailable": "stream without include_usage"})
    values[attr.GEN_AI_PROVIDER_NAME] = "groq"
    unreported.set_attributes(values)
    unreported.end()
    run.end()
    assert processor.force_flush(10_000)

    labels = {"provider": "groq", "model": "gpt-4o", "operation": "chat"}
    get = metrics.registry.get_sample_value
    assert get("gen_ai_client_operation_duration_seconds_count", {**labels, "error_type": ""}) == 1
    for token_type in ("input", "output"):
        assert get("gen_ai_client_token_usage_count", {**labels, "token_type": token_type}) is None
    stored = store.list_steps(run_id)
    assert stored[1].usage is None
    assert stored[1].metadata == {
        "usage_unavailable": "stream without include_usage",
        "cost_unavailable": "usage unknown",
    }
    finished = store.get_run(run_id)
    assert finished is not None
    assert finished.summary["steps_without_usage"] == 1
    assert (finished.summary["total_input_tokens"], finished.summary["total_output_tokens"]) == (
        8,
        2,
    )


def test_malformed_span_is_ignored_and_counted(store: Store, provider: TracerProvider) -> None:
    processor = _processor(store, provider)
    before = internal_error_counts().get("exporter", 0)
    span = provider.get_tracer("test").start_span(
        attr.RUN_SPAN, attributes={attr.RUN_ID: "not-a-uuid", attr.CHAT_ID: "chat-1"}
    )
    span.end()
    assert processor.force_flush(10_000)
    assert store.list_runs("chat-1") == []
    assert internal_error_counts()["exporter"] == before + 2  # at start and at end


@pytest.mark.slow
def test_abandoned_span_stops_getting_heartbeats(store: Store, provider: TracerProvider) -> None:
    processor = _processor(store, provider, stale_threshold=timedelta(milliseconds=20))
    run_id = uuid.uuid4()
    span = start_run(provider.get_tracer("test"), run_id)
    assert processor.force_flush(10_000)
    assert store.get_run(run_id) is not None
    del span  # never ended
    gc.collect()
    # Nothing left to heartbeat: the heartbeat thread goes idle, and the stale
    # finalizer can close the run.
    wait_for(lambda: processor._heartbeat is None, what="the heartbeat to go idle")
    assert processor.force_flush(10_000)
    assert store.finalize_stale(datetime.now(UTC) + timedelta(seconds=60)).runs_finalized == 1
