"""Lifecycle records handed to the installed sink: complete, once, in order, and a
successful attempt finished off the caller's thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider

import chatdebug
from chatdebug import _spans as attr
from chatdebug._spans import SpanRecord
from chatdebug.instrument import InstrumentSettings, install
from chatdebug.instrument.capture._reaper import drain
from tests.fakes import wire
from tests.fakes.server import FakeServer


class RecordingSink:
    """Keeps every record with the name of the thread that published it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str, SpanRecord]] = []

    def record_started(self, record: SpanRecord) -> None:
        with self.lock:
            self.events.append(("start", threading.current_thread().name, record))

    def record_ended(self, record: SpanRecord) -> None:
        with self.lock:
            self.events.append(("end", threading.current_thread().name, record))

    def ends(self, name: str) -> list[tuple[str, SpanRecord]]:
        return [(t, r) for kind, t, r in self.events if kind == "end" and r.name == name]


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    recording = RecordingSink()
    provider = TracerProvider()
    install(InstrumentSettings(tracer_provider=provider, force_enabled=True, sink=recording))
    try:
        yield recording
    finally:
        drain()
        install(InstrumentSettings())
        provider.shutdown()


def _client(server: FakeServer) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.url + "/v1",
        api_key="sk-proj-recordsTESTkey0123456789abcdefghij",
        http_client=chatdebug.httpx2_client(),
        max_retries=0,
    )


MESSAGES: Any = [{"role": "user", "content": "hello"}]


def test_successful_steps_end_off_the_callers_thread_before_their_run(
    sink: RecordingSink, fake_server: FakeServer
) -> None:
    for _ in range(20):
        fake_server.enqueue(wire.openai_reply("plain answer"))
        fake_server.enqueue(wire.openai_stream_reply(["streamed ", "answer"]))
    with _client(fake_server) as client:
        for _ in range(20):
            # The run ends right after the calls: their steps must still end first.
            with chatdebug.run("chat-records"):
                client.chat.completions.create(model="m", messages=MESSAGES)
                for _chunk in client.chat.completions.create(
                    model="m", messages=MESSAGES, stream=True
                ):
                    pass
    steps = sink.ends(attr.STEP_SPAN)
    assert len(steps) == 40
    threads = [thread for thread, _ in steps]
    # Off the caller's thread, unless the run's end came first and settled it itself.
    assert set(threads) <= {"chatdebug-reaper", threading.current_thread().name}
    assert "chatdebug-reaper" in threads
    for _, record in steps:
        values = record.attributes
        assert values[attr.STEP_STATUS] == "completed"
        assert values[attr.STEP_NORMALIZED_RESPONSE]  # a Python object, not JSON text
        assert isinstance(values[attr.STEP_ATTEMPTS], list)
        assert record.end_ns is not None and record.end_ns >= record.start_ns
    # Per run: both step ends precede the run's end, each exactly once.
    order = [(kind, r.name, r.attributes[attr.RUN_ID]) for kind, _, r in sink.events]
    for kind, name, run_id in order:
        if kind == "end" and name == attr.RUN_SPAN:
            run_end = order.index((kind, name, run_id))
            step_ends = [
                i for i, entry in enumerate(order) if entry == ("end", attr.STEP_SPAN, run_id)
            ]
            assert len(step_ends) == 2
            assert max(step_ends) < run_end


def test_an_explicit_step_exits_with_its_attempt_settled(
    sink: RecordingSink, fake_server: FakeServer
) -> None:
    fake_server.enqueue(wire.openai_reply("inside a step"))
    with _client(fake_server) as client, chatdebug.run("chat-records"):
        with chatdebug.step():
            client.chat.completions.create(model="m", messages=MESSAGES)
        ((thread, record),) = sink.ends(attr.STEP_SPAN)
    assert thread == threading.current_thread().name  # ended by the block's exit
    assert record.attributes[attr.STEP_STATUS] == "completed"
    assert record.attributes[attr.STEP_NORMALIZED_RESPONSE]
    assert len(record.attributes[attr.STEP_ATTEMPTS]) == 1


def test_http_errors_are_finished_on_the_callers_thread(
    sink: RecordingSink, fake_server: FakeServer
) -> None:
    fake_server.enqueue(wire.openai_error_reply(400, "bad request", "invalid_request_error"))
    with _client(fake_server) as client, chatdebug.run("chat-records"):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="m", messages=MESSAGES)
        ((thread, record),) = sink.ends(attr.STEP_SPAN)
    assert thread == threading.current_thread().name
    assert record.attributes[attr.STEP_STATUS] == "error"


def test_a_step_says_how_much_of_its_history_the_previous_step_sent(
    sink: RecordingSink, fake_server: FakeServer
) -> None:
    # An agent sends its whole history with every call: each step notes how many
    # leading messages its run's previous step already sent (the search index leaves
    # them out). A new conversation, or one rewritten, starts again from zero.
    history: list[dict[str, str]] = [{"role": "user", "content": "find the parcel"}]
    with _client(fake_server) as client, chatdebug.run("chat-agent"):
        for turn in range(3):
            fake_server.enqueue(wire.openai_reply(f"answer {turn}"))
            client.chat.completions.create(model="m", messages=history)
            history = [*history, {"role": "assistant", "content": f"answer {turn}"}]
            history.append({"role": "user", "content": f"question {turn}"})
        fake_server.enqueue(wire.openai_reply("summary"))
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "new"}])
        with chatdebug.step("explicit"):
            fake_server.enqueue(wire.openai_reply("again"))
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "new"}])
    drain()
    sent = [
        record.attributes[attr.STEP_REQUEST_HISTORY_SENT]
        for _, record in sorted(
            sink.ends(attr.STEP_SPAN), key=lambda e: e[1].attributes[attr.STEP_NUMBER]
        )
    ]
    assert sent == [0, 1, 3, 0, 1]


@pytest.mark.parametrize(
    ("previous", "messages", "expected"),
    [
        (None, [1, 2], 0),  # the run's first step
        ([1, 2], [1, 2], 2),  # the same request again
        ([1, 2], [1, 2, 3, 4], 2),  # a history that grew
        ([1, 2, 3, 4], [3, 4, 5, 6], 2),  # kept to a sliding window
        ([1, 2, 3], [9, 2, 3, 4], 0),  # rewritten: what was sent is not all of it
        ([1, 2], [7, 8], 0),  # another conversation
        ([1, 2], [], 0),
        ([2, 2], [2, 2, 2], 2),  # the longest overlap
        ([1] + [2] * 50, [3] + [2] * 60, 0),  # many candidates: a bounded search
    ],
)
def test_carried_over_counts_the_messages_a_history_repeats(
    previous: list[int] | None, messages: list[int], expected: int
) -> None:
    from chatdebug.instrument._state import carried_over

    assert carried_over(previous, messages) == expected
