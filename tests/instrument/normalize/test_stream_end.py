"""When each format's stream is complete, and what a response without usage says.

A stream is complete once the provider's content is final (``content_final``), whether
or not its last event (``terminal``) comes; usage the provider did not send is None with
a reason in ``metadata["usage_unavailable"]``, never 0. One fixture stream per format is
cut right after, and one event before, the event that makes its content final.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chatdebug.instrument.normalize import (
    USAGE_CLOSED_EARLY,
    USAGE_NOT_REQUESTED,
    USAGE_NOT_SENT,
    USAGE_UNAVAILABLE,
    AnthropicMessagesCodec,
    Codec,
    GeminiCodec,
    GenericCodec,
    OpenAIChatCodec,
    OpenAIResponsesCodec,
    SSEEvent,
    SSEParser,
)

FIXTURES = Path(__file__).parent / "fixtures"
CHAT = OpenAIChatCodec()
ASKED = {"stream": True, "options": {"include_usage": True}}
NOT_ASKED = {"stream": True, "options": {}}


def events_of(name: str) -> list[SSEEvent]:
    parser = SSEParser()
    return parser.feed((FIXTURES / name).read_bytes()) + parser.close()


def data(event: SSEEvent) -> Any:
    try:
        return json.loads(event.data)
    except ValueError:
        return None


def _chat_finish(event: SSEEvent) -> bool:
    chunk = data(event)
    return isinstance(chunk, dict) and any(c.get("finish_reason") for c in chunk["choices"])


def _anthropic_stop(event: SSEEvent) -> bool:
    chunk = data(event)
    return chunk["type"] == "message_delta" and chunk["delta"].get("stop_reason") is not None


def _responses_final(event: SSEEvent) -> bool:
    return bool(data(event)["type"] == "response.completed")


def _gemini_finish(event: SSEEvent) -> bool:
    return any("finishReason" in c for c in data(event)["candidates"])


@dataclass(frozen=True)
class Format:
    codec: Codec
    fixture: str
    is_final: Callable[[SSEEvent], bool]
    """The event that makes the content final."""
    last_event_too: bool
    """That event is also the stream's last one."""


FORMATS = {
    "openai_chat": Format(CHAT, "openai_chat_text_stream.sse", _chat_finish, False),
    "openai_responses": Format(
        OpenAIResponsesCodec(), "openai_responses_text_stream.sse", _responses_final, True
    ),
    "anthropic": Format(
        AnthropicMessagesCodec(), "anthropic_text_stream.sse", _anthropic_stop, False
    ),
    "gemini": Format(
        GeminiCodec("gemini-2.0-flash", True), "gemini_text_stream.sse", _gemini_finish, True
    ),
}


def cut(fmt: Format) -> tuple[list[SSEEvent], int]:
    events = events_of(fmt.fixture)
    final = next(i for i, e in enumerate(events) if fmt.is_final(e))
    return events, final


@pytest.mark.parametrize("name", FORMATS)
def test_complete_right_after_the_content_final_event(name: str) -> None:
    fmt = FORMATS[name]
    events, final = cut(fmt)
    assembler = fmt.codec.new_stream(ASKED)
    for event in events[:final]:
        assembler.feed(event)
        assert not assembler.content_final
    assembler.feed(events[final])
    assert assembler.content_final
    assert assembler.terminal is fmt.last_event_too
    result = assembler.finish()
    assert result.complete and result.error is None
    assert result.finish_reasons  # the finish or stop reason is known


@pytest.mark.parametrize("name", FORMATS)
def test_incomplete_one_event_before_it(name: str) -> None:
    fmt = FORMATS[name]
    events, final = cut(fmt)
    assembler = fmt.codec.new_stream(ASKED)
    for event in events[:final]:
        assembler.feed(event)
    assert not assembler.content_final and not assembler.terminal
    assert assembler.finish().complete is False


@pytest.mark.parametrize("name", FORMATS)
def test_read_to_the_end_is_complete_and_terminal(name: str) -> None:
    fmt = FORMATS[name]
    assembler = fmt.codec.new_stream(ASKED)
    for event in events_of(fmt.fixture):
        assembler.feed(event)
    assert assembler.content_final and assembler.terminal
    result = assembler.finish()
    assert result.complete and result.usage is not None
    assert USAGE_UNAVAILABLE not in result.metadata


# -- Chat Completions: the finish reason, then usage, then [DONE] --------------------------


def chat_events(*, usage: bool = True, done: bool = True, n: int = 1) -> list[SSEEvent]:
    base = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o"}
    chunks: list[dict[str, Any]] = []
    for index in range(n):
        delta = {"index": index, "delta": {"content": f"hi{index}"}, "finish_reason": None}
        chunks.append({**base, "choices": [delta]})
    for index in range(n):
        chunks.append({**base, "choices": [{"index": index, "delta": {}, "finish_reason": "stop"}]})
    if usage:
        tokens = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        chunks.append({**base, "choices": [], "usage": tokens})
    out = [SSEEvent("message", json.dumps(c)) for c in chunks]
    if done:
        out.append(SSEEvent("message", "[DONE]"))
    return out


def chat_result(events: list[SSEEvent], request: dict[str, Any] | None) -> Any:
    assembler = CHAT.new_stream(request)
    for event in events:
        assembler.feed(event)
    return assembler, assembler.finish()


def test_chat_closed_after_the_finish_reason_before_usage() -> None:
    events = chat_events()
    assembler, result = chat_result(events[:2], ASKED)  # content, finish reason
    assert assembler.content_final and not assembler.terminal
    assert result.complete
    assert result.response["content"] == [{"type": "text", "text": "hi0"}]
    assert result.usage is None and result.response["usage"] is None
    assert result.metadata[USAGE_UNAVAILABLE] == USAGE_CLOSED_EARLY


def test_chat_usage_chunk_after_the_finish_reason_is_kept() -> None:
    _, result = chat_result(chat_events(done=False), ASKED)
    assert result.complete and result.usage is not None and result.usage["total_tokens"] == 7
    assert USAGE_UNAVAILABLE not in result.metadata


def test_chat_stream_that_did_not_ask_for_usage() -> None:
    assembler, result = chat_result(chat_events(usage=False), NOT_ASKED)
    assert assembler.terminal and result.complete
    assert result.usage is None
    assert result.metadata[USAGE_UNAVAILABLE] == USAGE_NOT_REQUESTED
    # Also when it is cut short: asking is what was missing.
    _, cut_short = chat_result(chat_events(usage=False)[:1], NOT_ASKED)
    assert not cut_short.complete
    assert cut_short.metadata[USAGE_UNAVAILABLE] == USAGE_NOT_REQUESTED


def test_chat_stream_that_asked_and_got_no_usage() -> None:
    _, result = chat_result(chat_events(usage=False), ASKED)
    assert result.metadata[USAGE_UNAVAILABLE] == USAGE_NOT_SENT


def test_chat_stream_request_unknown() -> None:
    """Without the request (or with a body that was not a stream request) nothing is
    claimed about it."""
    for request in (None, {"options": {}}):
        _, result = chat_result(chat_events(usage=False), request)
        assert result.metadata[USAGE_UNAVAILABLE] == USAGE_NOT_SENT
        _, early = chat_result(chat_events(usage=False, done=False), request)
        assert early.metadata[USAGE_UNAVAILABLE] == USAGE_CLOSED_EARLY


def test_chat_every_choice_needs_its_finish_reason() -> None:
    events = chat_events(n=2)  # hi0, hi1, stop 0, stop 1, usage, [DONE]
    assembler = CHAT.new_stream(ASKED)
    for event in events[:3]:
        assembler.feed(event)
    assert not assembler.content_final  # choice 1 is still being written
    assembler.feed(events[3])
    assert assembler.content_final


def test_chat_request_keeps_whether_usage_was_asked_for() -> None:
    body: dict[str, Any] = {"model": "gpt-4o", "messages": [], "stream": True}
    assert "include_usage" not in CHAT.normalize_request(body)["options"]
    body["stream_options"] = {"include_usage": True}
    out = CHAT.normalize_request(body)
    assert out["options"]["include_usage"] is True
    assert "provider_option_count" not in out
    body["stream_options"] = {"include_usage": False}
    assert CHAT.normalize_request(body)["options"]["include_usage"] is False


# -- usage the provider did not send ----------------------------------------------------


def test_anthropic_stream_cut_before_message_start_usage() -> None:
    assembler = AnthropicMessagesCodec().new_stream()
    result = assembler.finish()
    assert result.usage is None and result.metadata[USAGE_UNAVAILABLE] == USAGE_CLOSED_EARLY


def test_responses_stream_cut_before_the_final_event() -> None:
    fmt = FORMATS["openai_responses"]
    events, final = cut(fmt)
    assembler = fmt.codec.new_stream()
    for event in events[:final]:
        assembler.feed(event)
    result = assembler.finish()
    assert result.usage is None and result.metadata[USAGE_UNAVAILABLE] == USAGE_CLOSED_EARLY


def _without_usage(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("usage", "usageMetadata")}


@pytest.mark.parametrize(
    ("codec", "fixture"),
    [
        (CHAT, "openai_chat_text_response.json"),
        (OpenAIResponsesCodec(), "openai_responses_text_response.json"),
        (AnthropicMessagesCodec(), "anthropic_text_response.json"),
        (GeminiCodec("gemini-2.0-flash"), "gemini_text_response.json"),
    ],
    ids=["openai_chat", "openai_responses", "anthropic", "gemini"],
)
def test_whole_response_without_usage(codec: Codec, fixture: str) -> None:
    body = json.loads((FIXTURES / fixture).read_text())
    with_usage = codec.normalize_response(body)
    assert with_usage.usage is not None and USAGE_UNAVAILABLE not in with_usage.metadata
    result = codec.normalize_response(_without_usage(body))
    assert result.usage is None
    assert result.response is not None and result.response["usage"] is None
    assert result.metadata[USAGE_UNAVAILABLE] == USAGE_NOT_SENT


def test_a_provider_error_is_not_missing_usage() -> None:
    result = CHAT.normalize_response({"error": {"message": "boom", "type": "server_error"}})
    assert result.error is not None and result.usage is None
    assert USAGE_UNAVAILABLE not in result.metadata
    assembler = AnthropicMessagesCodec().new_stream()
    assembler.feed(SSEEvent(event="error", data='{"type":"error","error":{"type":"x"}}'))
    assert USAGE_UNAVAILABLE not in assembler.finish().metadata


def test_generic_calls_that_cost_tokens() -> None:
    embeddings = GenericCodec("POST", "/v1/embeddings", "embeddings")
    assert embeddings.normalize_response({"data": []}).metadata == {
        USAGE_UNAVAILABLE: USAGE_NOT_SENT
    }
    with_usage = embeddings.normalize_response({"usage": {"prompt_tokens": 3, "total_tokens": 3}})
    assert with_usage.usage is not None and with_usage.metadata == {}
    listing = GenericCodec("GET", "/v1/models")
    assert listing.normalize_response({"data": []}).metadata == {}
    stream = GenericCodec("POST", "/v1/completions", "text_completion").new_stream()
    stream.feed(SSEEvent("message", '{"choices": [{"text": "hi"}]}'))
    assert not stream.content_final
    assert stream.finish().metadata[USAGE_UNAVAILABLE] == USAGE_CLOSED_EARLY
    stream.feed(SSEEvent("message", "[DONE]"))
    assert stream.content_final and stream.terminal
    assert stream.finish().metadata[USAGE_UNAVAILABLE] == USAGE_NOT_SENT
