"""Where a stream ends, through the real client libraries: the ``anthropic`` and
``openai`` SDKs stopped where other libraries stop them, and LiteLLM itself (when
installed), whose sync Anthropic stream closes the response after ``message_delta``
without reading ``message_stop``."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

import chatdebug
from tests.fakes.server import SSE_HEADERS, FakeServer, Reply
from tests.fakes.wire import anthropic_stream_chunks, openai_stream_chunks
from tests.instrument.capture.instrument_httpx_support import MESSAGES, Recorded, recorded

__all__ = ["recorded"]  # the fixture, imported for the tests below

KEY = "sk-ant-test-0123456789abcdefghij"
MODEL = "claude-opus-4-6"
# anthropic_stream_chunks: message_start, content_block_start, ping, one delta per piece,
# content_block_stop, message_delta (stop reason and final usage), message_stop.
PIECES = ["Hel", "lo"]
MESSAGE_DELTA = 3 + len(PIECES) + 1


@pytest.fixture
def hold() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def held_anthropic_stream(hold: threading.Event, events: int) -> Reply:
    """The stream, with nothing after its first ``events`` events until the test ends."""
    chunks = anthropic_stream_chunks(PIECES, model=MODEL)
    return Reply(chunks=chunks, headers=SSE_HEADERS, hold=hold, hold_after=events)


def read_events_then_close(client: anthropic.Anthropic, last: str) -> list[str]:
    """Iterate the SDK's event stream up to the first ``last`` event, then close it."""
    stream = client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    seen: list[str] = []
    for event in stream:
        seen.append(event.type)
        if event.type == last:
            break
    stream.close()
    return seen


@pytest.mark.parametrize(
    ("last", "events", "status"),
    [
        ("message_delta", MESSAGE_DELTA + 1, "completed"),
        ("content_block_stop", MESSAGE_DELTA, "interrupted"),
    ],
    ids=["after-message_delta", "before-message_delta"],
)
def test_anthropic_sdk_stream_closed_around_message_delta(
    recorded: Recorded,
    fake_server: FakeServer,
    hold: threading.Event,
    last: str,
    events: int,
    status: str,
) -> None:
    fake_server.enqueue(held_anthropic_stream(hold, events))
    client = anthropic.Anthropic(base_url=fake_server.url, api_key=KEY, max_retries=0)
    with client, chatdebug.run("c-claude") as run:
        seen = read_events_then_close(client, last)
    assert seen[-1] == last and "message_stop" not in seen
    step = recorded.only_step(run)
    assert step.status == status, step.error
    assert step.normalized_response is not None
    assert step.normalized_response["content"] == [{"type": "text", "text": "Hello"}]
    if status == "completed":
        assert step.error is None
        assert step.usage is not None
        assert (step.usage["input_tokens"], step.usage["output_tokens"]) == (11, 2)
    else:
        assert step.error is not None and step.error["type"] == "stream_interrupted"


def test_anthropic_raw_http_stream_closed_after_message_delta(
    recorded: Recorded, fake_server: FakeServer, hold: threading.Event
) -> None:
    """The same close on the raw HTTP response under the SDK, line by line."""
    fake_server.enqueue(held_anthropic_stream(hold, MESSAGE_DELTA + 1))
    client = anthropic.Anthropic(base_url=fake_server.url, api_key=KEY, max_retries=0)
    with client, chatdebug.run("c-claude") as run:
        with client.messages.with_streaming_response.create(
            model=MODEL, max_tokens=64, messages=MESSAGES, stream=True
        ) as response:
            lines = response.iter_lines()
            for line in lines:
                if line == "event: message_delta":
                    next(lines)  # its data line
                    break
    step = recorded.only_step(run)
    assert step.status == "completed", step.error
    assert step.usage is not None and step.usage["output_tokens"] == 2


def test_openai_sdk_stream_stopped_at_finish_reason_before_usage(
    recorded: Recorded, fake_server: FakeServer, hold: threading.Event
) -> None:
    """A caller that stops at the finish reason although it asked for usage: the step
    is completed and says its usage was not received."""
    chunks = openai_stream_chunks(PIECES)  # role, pieces, finish reason, usage, [DONE]
    final = 1 + len(PIECES)
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS, hold=hold, hold_after=final + 1))
    client = openai.OpenAI(base_url=fake_server.url + "/v1", api_key=KEY, max_retries=0)
    with client, chatdebug.run("c-openai") as run:
        stream = client.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].finish_reason:
                break
        stream.close()
    step = recorded.only_step(run)
    assert step.status == "completed", step.error
    assert step.usage is None
    assert step.metadata["usage_unavailable"] == "stream closed before usage"


def test_openai_sdk_stream_without_include_usage(
    recorded: Recorded, fake_server: FakeServer
) -> None:
    chunks = openai_stream_chunks(PIECES, usage=False)
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS))
    client = openai.OpenAI(base_url=fake_server.url + "/v1", api_key=KEY, max_retries=0)
    with client, chatdebug.run("c-openai") as run:
        stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello"
    step = recorded.only_step(run)
    assert step.status == "completed"
    assert step.usage is None
    assert step.metadata["usage_unavailable"] == "stream without include_usage"
    summary = recorded.config.store.get_run(run.id).summary  # type: ignore[arg-type, union-attr]
    assert summary["steps_without_usage"] == 1


# -- LiteLLM ---------------------------------------------------------------------------


@pytest.fixture
def litellm(monkeypatch: pytest.MonkeyPatch) -> Any:
    # Its pricing table ships with the package: no download at import.
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    with warnings.catch_warnings():
        # Its own models warn while pydantic builds them: not ours to fix.
        warnings.simplefilter("ignore")
        import litellm

        return litellm


# LiteLLM imports its provider modules lazily, on the first call; pydantic warns about
# some of their types then.
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.slow  # importing LiteLLM takes seconds
def test_litellm_sync_anthropic_stream_is_completed(
    litellm: Any, recorded: Recorded, fake_server: FakeServer, hold: threading.Event
) -> None:
    """LiteLLM stops reading at ``message_delta`` and closes the response: held back,
    ``message_stop`` is never sent before that close."""
    fake_server.enqueue(held_anthropic_stream(hold, MESSAGE_DELTA + 1))
    with chatdebug.run("c-litellm") as run:
        response = litellm.completion(
            model=f"anthropic/{MODEL}",
            messages=MESSAGES,
            stream=True,
            api_base=fake_server.url,
            api_key=KEY,
        )
        text = "".join(c.choices[0].delta.content or "" for c in response)
    assert text == "Hello"
    step = recorded.only_step(run)
    assert step.status == "completed", step.error
    assert step.error is None
    assert step.usage is not None
    assert (step.usage["input_tokens"], step.usage["output_tokens"]) == (11, 2)
    assert step.normalized_response is not None
    assert step.normalized_response["content"] == [{"type": "text", "text": "Hello"}]
