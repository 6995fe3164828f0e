"""Where each provider's stream ends, through the transport against the loopback server.

A stream is completed once the provider's content is final, however the body then ends
(the caller closes it, the connection drops, or it reaches its end without the last
event); closed one event earlier it is interrupted. Chat Completions usage comes after
the finish reason: a stream closed between the two is completed and says its usage was
not received; usage never becomes 0.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import chatdebug
from chatdebug import _spans as attr
from tests.fakes.server import JSON_HEADERS, SSE_HEADERS, FakeServer, Reply
from tests.fakes.wire import anthropic_stream_chunks, openai_completion, openai_stream_chunks
from tests.instrument.capture.support import (
    CHAT_PATH,
    Client,
    Flavour,
    attempts_of,
    drive,
    flavours,
    step_status,
)
from tests.instrument.support import Spans, jattr

FIXTURES = Path(__file__).parents[1] / "normalize" / "fixtures"
GEMINI_STREAM = "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
CHAT_BODY = {"model": "gpt-4o", "messages": [], "stream": True}
ASKED = {**CHAT_BODY, "stream_options": {"include_usage": True}}


@pytest.fixture
def hold() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def fixture_chunks(name: str) -> list[bytes]:
    """The events of a ``.sse`` fixture, one network chunk each."""
    raw = (FIXTURES / name).read_bytes()
    sep = b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n"
    return [event + sep for event in raw.split(sep) if event.strip()]


def _payload(chunk: bytes) -> Any:
    for line in chunk.decode().splitlines():
        if line.startswith("data:"):
            try:
                return json.loads(line[5:])
            except ValueError:
                return None
    return None


def _chat_finish(p: Any) -> bool:
    return isinstance(p, dict) and any(c.get("finish_reason") for c in p.get("choices", []))


def _anthropic_stop(p: Any) -> bool:
    return p.get("type") == "message_delta" and p["delta"].get("stop_reason") is not None


def _responses_final(p: Any) -> bool:
    return bool(p.get("type") == "response.completed")


def _gemini_finish(p: Any) -> bool:
    return any("finishReason" in c for c in p.get("candidates", []))


@dataclass(frozen=True)
class Case:
    path: str
    body: dict[str, Any]
    chunks: list[bytes]
    is_final: Callable[[Any], bool]
    """Whether an event's data makes the content final."""
    text: str

    @property
    def final(self) -> int:
        """Index of the content-final event."""
        return next(i for i, c in enumerate(self.chunks) if self.is_final(_payload(c)))


CASES = {
    "openai_chat": Case(
        CHAT_PATH, ASKED, openai_stream_chunks(["Hel", "lo"]), _chat_finish, "Hello"
    ),
    "openai_responses": Case(
        "/v1/responses",
        {"model": "gpt-4o", "input": "hi", "stream": True},
        fixture_chunks("openai_responses_text_stream.sse"),
        _responses_final,
        "Bonjour",
    ),
    "anthropic": Case(
        "/v1/messages",
        {"model": "claude-opus-4-6", "max_tokens": 64, "messages": [], "stream": True},
        anthropic_stream_chunks(["Hel", "lo"]),
        _anthropic_stop,
        "Hello",
    ),
    "gemini": Case(
        GEMINI_STREAM,
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        fixture_chunks("gemini_text_stream.sse"),
        _gemini_finish,
        "Bonjour",
    ),
}


def close_after(
    flavour: Flavour, fake_server: FakeServer, hold: threading.Event, case: Case, count: int
) -> None:
    """Read the first ``count`` events of the case's stream, then close it; the server
    sends nothing more until the test ends, so the close is known to come early."""
    fake_server.enqueue(Reply(chunks=case.chunks, headers=SSE_HEADERS, hold=hold, hold_after=count))
    wanted = len(b"".join(case.chunks[:count]))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("POST", fake_server.url + case.path, json=case.body)
            received = b""
            while len(received) < wanted:
                received += b"".join(await resp.take(1))
            assert received == b"".join(case.chunks[:count])
            await resp.close()

    drive(flavour, scenario)


def metadata(step: Any) -> dict[str, Any]:
    value = jattr(step, attr.STEP_METADATA)
    assert isinstance(value, dict)
    return value


@flavours
@pytest.mark.parametrize("name", CASES)
def test_closed_right_after_the_content_final_event_is_completed(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event, name: str
) -> None:
    case = CASES[name]
    close_after(flavour, fake_server, hold, case, case.final + 1)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed" and "error" not in attempt
    assert step_status(step) == "completed"
    assert attr.STEP_ERROR not in step.attributes
    assert case.text in str(step.attributes[attr.STEP_NORMALIZED_RESPONSE])
    assert step.attributes[attr.GEN_AI_RESPONSE_FINISH_REASONS]


@flavours
@pytest.mark.parametrize("name", CASES)
def test_closed_one_event_before_it_is_interrupted(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event, name: str
) -> None:
    case = CASES[name]
    close_after(flavour, fake_server, hold, case, case.final)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert attempt["error"] == "the response body was closed before it was read"
    assert step_status(step) == "interrupted"
    assert jattr(step, attr.STEP_ERROR)["type"] == "stream_interrupted"


@flavours
def test_anthropic_closed_after_message_delta_keeps_text_and_tokens(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    """What LiteLLM's sync Anthropic stream does: close after ``message_delta`` (stop
    reason and final usage), never reading ``message_stop``."""
    case = CASES["anthropic"]
    close_after(flavour, fake_server, hold, case, case.final + 1)
    step = spans.only_step()
    assert step_status(step) == "completed"
    assert jattr(step, attr.STEP_USAGE)["input_tokens"] == 11
    assert step.attributes[attr.GEN_AI_USAGE_OUTPUT_TOKENS] == 2
    assert "usage_unavailable" not in metadata(step)


@flavours
def test_chat_closed_after_finish_reason_before_usage(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    case = CASES["openai_chat"]
    close_after(flavour, fake_server, hold, case, case.final + 1)
    step = spans.only_step()
    assert step_status(step) == "completed"
    assert attr.STEP_USAGE not in step.attributes  # unknown, not 0
    assert attr.GEN_AI_USAGE_INPUT_TOKENS not in step.attributes
    assert metadata(step)["usage_unavailable"] == "stream closed before usage"
    assert jattr(step, attr.STEP_NORMALIZED_RESPONSE)["usage"] is None


@flavours
def test_chat_closed_after_the_usage_chunk_has_usage(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    case = CASES["openai_chat"]
    close_after(flavour, fake_server, hold, case, case.final + 2)  # not [DONE]
    step = spans.only_step()
    assert step_status(step) == "completed"
    assert jattr(step, attr.STEP_USAGE)["input_tokens"] == 9
    assert "usage_unavailable" not in metadata(step)


def _run_to_end(
    flavour: Flavour, fake_server: FakeServer, reply: Reply, path: str, body: dict[str, Any]
) -> None:
    fake_server.enqueue(reply)

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("POST", fake_server.url + path, json=body)
            await resp.rest()
            await resp.close()

    drive(flavour, scenario)


@flavours
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (CHAT_BODY, "stream without include_usage"),
        (ASKED, "provider sent no usage"),
    ],
    ids=["not-asked", "asked"],
)
def test_chat_stream_read_to_done_without_usage(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, body: dict[str, Any], reason: str
) -> None:
    """What LiteLLM, LangChain and LlamaIndex send by default: a stream that never asks
    for usage, so the provider sends none."""
    reply = Reply(chunks=openai_stream_chunks(["Hel", "lo"], usage=False), headers=SSE_HEADERS)
    _run_to_end(flavour, fake_server, reply, CHAT_PATH, body)
    step = spans.only_step()
    assert step_status(step) == "completed"
    assert attr.STEP_USAGE not in step.attributes
    assert metadata(step)["usage_unavailable"] == reason


@flavours
@pytest.mark.parametrize("name", ["openai_chat", "anthropic"])
def test_eof_after_content_final_without_the_last_event_is_completed(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, name: str
) -> None:
    """A server that ends the body after the content-final event, without ``[DONE]`` or
    ``message_stop``: the answer is whole, so the step is completed."""
    case = CASES[name]
    reply = Reply(chunks=case.chunks[: case.final + 1], headers=SSE_HEADERS)
    _run_to_end(flavour, fake_server, reply, case.path, case.body)
    step = spans.only_step()
    assert step_status(step) == "completed"
    if name == "openai_chat":
        assert metadata(step)["usage_unavailable"] == "stream closed before usage"


@flavours
@pytest.mark.parametrize("name", ["openai_chat", "anthropic"])
def test_eof_before_content_final_is_interrupted(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, name: str
) -> None:
    case = CASES[name]
    reply = Reply(chunks=case.chunks[: case.final], headers=SSE_HEADERS)
    _run_to_end(flavour, fake_server, reply, case.path, case.body)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"  # the HTTP exchange itself was whole
    assert step_status(step) == "interrupted"
    assert jattr(step, attr.STEP_ERROR)["type"] == "incomplete_stream"


@flavours
@pytest.mark.parametrize(("extra", "status"), [(1, "completed"), (0, "error")])
def test_connection_dropped_around_message_delta(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, extra: int, status: str
) -> None:
    """A read error once the content is final leaves the call complete; one before it
    fails the step."""
    case = CASES["anthropic"]
    fake_server.enqueue(
        Reply(chunks=case.chunks, headers=SSE_HEADERS, drop_after=case.final + extra)
    )

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("POST", fake_server.url + case.path, json=case.body)
            with pytest.raises(flavour.lib.TransportError):
                await resp.rest()
            await resp.close()

    drive(flavour, scenario)
    assert step_status(spans.only_step()) == status


@flavours
def test_whole_chat_response_without_usage(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    body = openai_completion("Hi")
    del body["usage"]
    reply = Reply(body=json.dumps(body).encode(), headers=JSON_HEADERS)
    fake_server.enqueue(reply)

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            await client.call("POST", fake_server.url + CHAT_PATH, json={"model": "gpt-4o"})

    drive(flavour, scenario)
    step = spans.only_step()
    assert step_status(step) == "completed"
    assert attr.STEP_USAGE not in step.attributes
    assert metadata(step) == {"usage_unavailable": "provider sent no usage"}
