"""The application's TracerProvider settings never shape our rows.

Span limits truncate or drop attributes and a sampler may drop every span (then no span
processor is even called), yet the stored runs and steps stay complete: the
instrumentation hands them to the exporter as records. Spans still reach the
application's provider, parented as before, for its own backends.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import openai
import pytest
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from prometheus_client import CollectorRegistry

import chatdebug
from chatdebug import _spans as attr
from chatdebug.exporter._summary import truncate_label
from chatdebug.metrics import Metrics
from tests.fakes import wire
from tests.fakes.server import FakeServer

LONG_QUESTION = "Tell me everything about the weather in Paris. " * 60  # ~2,900 chars
ANSWER = "It is sunny. " * 150  # ~1,950 chars
PIECES = ["The ", "forecast ", "says ", "rain ", "later."] * 40


def _limited_length() -> TracerProvider:
    return TracerProvider(span_limits=SpanLimits(max_attribute_length=1000))


def _few_attributes() -> TracerProvider:
    return TracerProvider(span_limits=SpanLimits(max_span_attributes=3))


PARENT_BASED_OFF = ParentBased(ALWAYS_OFF)
DROP_ALL = (ALWAYS_OFF, PARENT_BASED_OFF)


def _always_off() -> TracerProvider:
    return TracerProvider(sampler=ALWAYS_OFF)


def _parent_based_off() -> TracerProvider:
    return TracerProvider(sampler=PARENT_BASED_OFF)


PROVIDERS: dict[str, Callable[[], TracerProvider]] = {
    "max_attribute_length=1000": _limited_length,
    "max_span_attributes=3": _few_attributes,
    "ALWAYS_OFF": _always_off,
    "ParentBased(ALWAYS_OFF)": _parent_based_off,
}


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(params=sorted(PROVIDERS))
def user_provider(
    request: pytest.FixtureRequest, spans: InMemorySpanExporter
) -> Iterator[TracerProvider]:
    provider = PROVIDERS[request.param]()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    yield provider
    provider.shutdown()


def _configure(database_url: str, provider: TracerProvider) -> chatdebug.Configuration:
    return chatdebug.configure(
        database_url,
        enabled=True,
        tracer_provider=provider,
        metrics=Metrics(CollectorRegistry()),
    )


def _one_turn(server: FakeServer) -> uuid.UUID:
    server.enqueue(wire.openai_reply(ANSWER))
    server.enqueue(wire.openai_stream_reply(PIECES))
    client = openai.OpenAI(
        base_url=server.url + "/v1",
        api_key="sk-proj-limitsTESTkey0123456789abcdefghij",
        http_client=chatdebug.httpx2_client(),
        max_retries=0,
    )
    messages: list[dict[str, str]] = [{"role": "user", "content": LONG_QUESTION}]
    with client, chatdebug.run("chat-limits", user_id="u-1", first_message=LONG_QUESTION) as run:
        client.chat.completions.create(model="gpt-4o", messages=messages)  # type: ignore[arg-type]
        stream = client.chat.completions.create(
            model="gpt-4o",
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        streamed = "".join(
            chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices
        )
    assert streamed == "".join(PIECES)
    assert run.id is not None
    return run.id


def _texts(value: object) -> list[str]:
    """Every ``text`` of a normalized payload, wherever it sits."""
    if isinstance(value, dict):
        found = [value["text"]] if isinstance(value.get("text"), str) else []
        return found + [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


def _assert_complete(config: chatdebug.Configuration, run_id: uuid.UUID) -> None:
    assert chatdebug.flush()
    store = config.store
    stored = store.get_run(run_id)
    assert stored is not None
    assert (stored.status, stored.chat_id, stored.user_id) == ("completed", "chat-limits", "u-1")
    assert stored.summary["step_count"] == 2
    assert stored.summary["first_message"] == truncate_label(LONG_QUESTION)
    generate, streamed = store.list_steps(run_id)
    assert (generate.operation, streamed.operation) == ("generate", "stream")
    for step in (generate, streamed):
        assert step.status == "completed"
        assert step.finished_at is not None
        request = step.normalized_request
        assert request is not None
        assert request["messages"][0]["parts"][0]["text"] == LONG_QUESTION
        assert step.usage is not None and step.usage["input_tokens"] > 0
        assert step.attempts is not None and len(step.attempts) == 1
    response = generate.normalized_response
    assert response is not None
    assert ANSWER in _texts(response)
    streamed_response = streamed.normalized_response
    assert streamed_response is not None
    assert "".join(PIECES) in _texts(streamed_response)


def test_rows_are_complete_whatever_the_provider_keeps(
    database_url: str,
    fake_server: FakeServer,
    user_provider: TracerProvider,
    spans: InMemorySpanExporter,
) -> None:
    config = _configure(database_url, user_provider)
    try:
        run_id = _one_turn(fake_server)
        _assert_complete(config, run_id)
        exported = spans.get_finished_spans()
        if user_provider.sampler in DROP_ALL:
            assert exported == ()  # the application asked for no spans: none reach it
            return
        # Spans still reach the application's provider, the steps under the run.
        (run_span,) = [s for s in exported if s.name == attr.RUN_SPAN]
        steps = [s for s in exported if s.name == attr.STEP_SPAN]
        assert len(steps) == 2
        for step in steps:
            assert step.parent is not None
            assert step.parent.span_id == run_span.context.span_id  # type: ignore[union-attr]
        stored = config.store.get_run(run_id)
        assert stored is not None
        assert stored.trace_id == format(run_span.context.trace_id, "032x")  # type: ignore[union-attr]
    finally:
        chatdebug.shutdown()


def test_attribute_length_limit_from_the_environment(
    database_url: str,
    fake_server: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
    spans: InMemorySpanExporter,
) -> None:
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "1000")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    config = _configure(database_url, provider)
    try:
        run_id = _one_turn(fake_server)
        _assert_complete(config, run_id)
        (run_span,) = [s for s in spans.get_finished_spans() if s.name == attr.RUN_SPAN]
        # The provider did cut what it keeps (the first message is longer than that).
        first = run_span.attributes[attr.RUN_FIRST_MESSAGE]  # type: ignore[index]
        assert isinstance(first, str) and len(first) == 1000
    finally:
        chatdebug.shutdown()
        provider.shutdown()


def test_spans_keep_the_genai_attributes_but_no_payloads(
    database_url: str, fake_server: FakeServer, spans: InMemorySpanExporter
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    config = _configure(database_url, provider)
    try:
        run_id = _one_turn(fake_server)
        _assert_complete(config, run_id)
        steps = [s for s in spans.get_finished_spans() if s.name == attr.STEP_SPAN]
        for step in steps:
            values = dict(step.attributes or {})
            assert values[attr.GEN_AI_PROVIDER_NAME] == "openai"
            assert values[attr.GEN_AI_REQUEST_MODEL] == "gpt-4o"
            assert values[attr.GEN_AI_USAGE_INPUT_TOKENS] > 0  # type: ignore[operator]
            assert values[attr.STEP_STATUS] == "completed"
            assert not set(values) & attr.PAYLOAD_KEYS
    finally:
        chatdebug.shutdown()
        provider.shutdown()


@pytest.mark.slow
def test_open_records_get_heartbeats_under_a_drop_all_sampler(
    database_url: str, fake_server: FakeServer
) -> None:
    """Rows in progress stay fresh although no span processor ever sees our spans."""
    provider = TracerProvider(sampler=ALWAYS_OFF)
    config = chatdebug.configure(
        database_url,
        enabled=True,
        tracer_provider=provider,
        stale_threshold=0.1,
        metrics=Metrics(CollectorRegistry()),
    )
    fake_server.enqueue(wire.openai_stream_reply(["slow "] * 12, chunk_delay=0.1))
    client = openai.OpenAI(
        base_url=fake_server.url + "/v1",
        api_key="sk-proj-limitsTESTkey0123456789abcdefghij",
        http_client=chatdebug.httpx2_client(),
        max_retries=0,
    )
    try:
        with client, chatdebug.run("chat-beat") as run:
            stream = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            chunks = iter(stream)
            next(chunks)
            assert chatdebug.flush()
            assert run.id is not None
            (step0,) = config.store.list_steps(run.id)
            assert step0.status == "in_progress"
            for _ in range(6):  # ~0.6 s: several heartbeat intervals
                next(chunks)
            assert chatdebug.flush()
            (open_step,) = config.store.list_steps(run.id)
            for _ in chunks:
                pass
        assert open_step.status == "in_progress"
        assert open_step.updated_at > step0.updated_at  # heartbeats while it streamed
        assert chatdebug.flush()
        (done,) = config.store.list_steps(run.id)
        assert done.status == "completed"
    finally:
        chatdebug.shutdown()
        provider.shutdown()
