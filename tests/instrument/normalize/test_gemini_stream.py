"""Gemini codec: assembly of ``streamGenerateContent`` streams (SSE and JSON array)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chatdebug.instrument.normalize._payloads import MAX_STREAM_TEXT_BYTES, NormalizedResponse
from chatdebug.instrument.normalize._sse import SSEEvent, SSEParser
from chatdebug.instrument.normalize.gemini import MAX_PARTS, GeminiCodec, GeminiStreamAssembler

FIXTURES = Path(__file__).parent / "fixtures"
CODEC = GeminiCodec("gemini-2.0-flash", stream=True)


def fixture_events(name: str, chunk: int = 0) -> list[SSEEvent]:
    """The events of ``gemini_<name>_stream.sse`` through the real SSE parser, fed in
    ``chunk``-byte pieces (whole when 0) like a network would deliver them."""
    raw = (FIXTURES / f"gemini_{name}_stream.sse").read_bytes()
    parser = SSEParser()
    step = chunk or len(raw)
    events = [e for i in range(0, len(raw), step) for e in parser.feed(raw[i : i + step])]
    parser.close()
    return events


def ev(data: Any) -> SSEEvent:
    return SSEEvent(event="message", data=json.dumps(data))


def chunk(
    *parts: dict[str, Any], finish: str | None = None, index: int = 0, **extra: Any
) -> SSEEvent:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": list(parts)}, "index": index}
    if finish is not None:
        candidate["finishReason"] = finish
    return ev({"candidates": [candidate], "modelVersion": "gemini-2.0-flash", **extra})


def run(events: list[SSEEvent]) -> NormalizedResponse:
    assembler = CODEC.new_stream()
    for event in events:
        assembler.feed(event)
    result = assembler.finish()
    assert result.complete == assembler.content_final
    return result


def summary(result: NormalizedResponse) -> dict[str, Any]:
    value: dict[str, Any] = result.metadata["stream_summary"]
    return value


@pytest.mark.parametrize("name", ["text", "tools", "thinking", "blocked"])
@pytest.mark.parametrize("size", [0, 1, 13])
def test_stream_equals_non_streamed(name: str, size: int) -> None:
    body = json.loads((FIXTURES / f"gemini_{name}_response.json").read_text())
    expected = CODEC.normalize_response(body)
    result = run(fixture_events(name, size))
    assert result.response == expected.response
    assert result.usage == expected.usage
    assert result.finish_reasons == expected.finish_reasons
    assert result.response_model == expected.response_model
    assert result.complete is True and result.error is None


def test_json_array_stream_equals_the_sse_stream() -> None:
    array = json.loads((FIXTURES / "gemini_array_stream.json").read_text())
    from_array = CODEC.normalize_response(array)
    from_sse = run(fixture_events("text"))
    assert from_array == from_sse
    assert from_array.complete is True
    assert summary(from_array)["event_count"] == 4


def test_text_stream_summary_and_usage_from_the_last_chunk() -> None:
    result = run(fixture_events("text"))
    assert result.response is not None
    assert result.response["content"] == [
        {"type": "text", "text": "Bonjour ! Comment puis-je vous aider aujourd'hui ?"}
    ]
    assert result.usage == {
        "input_tokens": 6,
        "output_tokens": 12,
        "total_tokens": 18,
        "reasoning_tokens": 0,
        "cache_creation_tokens": 0,
        "cache_read_tokens": 0,
    }
    assert result.response["safety_ratings"][0]["category"] == "HARM_CATEGORY_HATE_SPEECH"
    assert summary(result) == {
        "finish_reason": "stop",
        "text_delta_count": 4,
        "reasoning_delta_count": 0,
        "tool_call_count": 0,
        "source_count": 0,
        "warning_count": 0,
        "error_count": 0,
        "part_count": 1,
        "event_count": 4,
        "malformed_event_count": 0,
        "extra_candidate_count": 0,
    }


def test_streamed_function_calls() -> None:
    result = run(fixture_events("tools"))
    assert result.response is not None
    assert [p["type"] for p in result.response["content"]] == ["text", "tool-call", "tool-call"]
    assert result.response["finish_reason"] == "tool-calls"
    assert summary(result)["tool_call_count"] == 2


def test_thinking_stream_counts_and_signature_on_the_last_empty_part() -> None:
    result = run(fixture_events("thinking"))
    assert result.response is not None
    assert [p["type"] for p in result.response["content"]] == ["reasoning", "text"]
    assert result.response["content"][1]["has_signature"] is True
    assert summary(result)["reasoning_delta_count"] == 2
    assert summary(result)["text_delta_count"] == 2
    assert result.usage is not None and result.usage["reasoning_tokens"] == 412


def test_a_stream_cut_before_any_finish_reason_is_incomplete() -> None:
    assembler = CODEC.new_stream()
    for event in fixture_events("truncated"):
        assembler.feed(event)
    assert assembler.terminal is False
    result = assembler.finish()
    assert result.complete is False
    assert result.response is not None
    assert result.response["content"] == [{"type": "text", "text": "Bonjour ! Comment puis-je"}]
    assert result.response["finish_reason"] == "unknown"
    assert "provider_finish_reason" not in result.response
    assert result.finish_reasons == []
    # What the provider had reported so far (the prompt), not invented zeros for the rest.
    assert result.usage is not None and result.usage["input_tokens"] == 6


def test_a_cut_json_array_stream_is_incomplete() -> None:
    array = json.loads((FIXTURES / "gemini_array_stream.json").read_text())
    result = CODEC.normalize_response(array[:2])
    assert result.complete is False
    assert result.response is not None and result.response["finish_reason"] == "unknown"


def test_terminal_once_the_finish_reason_arrives() -> None:
    assembler = CODEC.new_stream()
    assert assembler.feed(chunk({"text": "a"})) is True
    assert assembler.terminal is False
    assert assembler.feed(chunk({"text": "b"}, finish="STOP")) is True
    assert assembler.terminal is True
    # A trailing usage-only chunk still counts, and carries no output.
    assert assembler.feed(ev({"usageMetadata": {"promptTokenCount": 2, "totalTokenCount": 4,
                                                "candidatesTokenCount": 2}})) is False  # fmt: skip
    result = assembler.finish()
    assert result.usage is not None and result.usage["total_tokens"] == 4
    assert result.response is not None
    assert result.response["content"] == [{"type": "text", "text": "ab"}]


def test_blocked_prompt_stream_is_terminal() -> None:
    result = run(fixture_events("blocked"))
    assert result.complete is True
    assert result.response is not None
    assert result.response["finish_reason"] == "content-filter"
    assert result.response["prompt_feedback"]["block_reason"] == "SAFETY"


def test_error_chunk_inside_a_200_stream() -> None:
    result = run(fixture_events("error"))
    assert result.complete is True
    assert result.error is not None
    assert result.error["type"] == "INTERNAL"
    assert result.error["provider_status"] == 500 and result.error["is_retryable"] is True
    assert result.error["message"].startswith("An internal error has occurred")
    assert result.response is not None
    assert result.response["finish_reason"] == "error"
    assert result.response["content"] == [{"type": "text", "text": "Bonjour ! Comment puis-je"}]
    assert summary(result)["error_count"] == 1
    assert summary(result)["last_error"] == result.error["message"]


def test_error_without_a_code_or_as_text() -> None:
    result = run([ev({"error": {"message": "boom"}})])
    assert result.error == {"message": "boom", "type": "stream_error"}
    result = run([ev({"error": "flat"})])
    assert result.error == {"message": "flat", "type": "stream_error"}


def test_several_candidates() -> None:
    events = [
        ev({"candidates": [{"index": 0, "content": {"parts": [{"text": "a"}]}},
                           {"index": 1, "content": {"parts": [{"text": "b"}]}}]}),
        ev({"candidates": [{"index": 0, "content": {"parts": [{"text": "c"}]},
                            "finishReason": "STOP"}]}),
    ]  # fmt: skip
    assembler = CODEC.new_stream()
    for event in events:
        assembler.feed(event)
    # Candidate 1 has not finished: the stream is not over yet.
    assert assembler.terminal is False
    assembler.feed(ev({"candidates": [{"index": 1, "finishReason": "MAX_TOKENS"}]}))
    assert assembler.terminal is True
    result = assembler.finish()
    assert result.response is not None
    assert result.response["content"] == [{"type": "text", "text": "ac"}]
    assert result.finish_reasons == ["STOP", "MAX_TOKENS"]
    assert summary(result)["extra_candidate_count"] == 1


def test_text_cap_and_tool_calls_after_it() -> None:
    big = "é" * (MAX_STREAM_TEXT_BYTES // 2 + 10)  # two bytes each: over the cap
    events = [
        chunk({"text": big}),
        chunk({"text": "lost"}),
        chunk({"functionCall": {"name": "f", "args": {"q": "still here"}}}, finish="STOP"),
    ]
    result = run(events)
    assert result.response is not None
    text, call = result.response["content"]
    assert text["text_length"] == len(big) + 4
    assert text["text"].endswith("…")
    assert call["type"] == "tool-call" and call["tool_name"] == "f"
    assert call["arguments"] == "" and call["arguments_truncated"] is True
    assert call["arguments_length"] == len('{"q":"still here"}')
    assert result.response["warnings"] == [
        {
            "type": "other",
            "message": f"stream text and tool input capped at {MAX_STREAM_TEXT_BYTES} bytes",
        }
    ]
    assert summary(result)["warning_count"] == 1
    assert result.response["finish_reason"] == "tool-calls"


def test_parts_beyond_the_cap_are_counted() -> None:
    call = {"functionCall": {"name": "f", "args": {}}}
    events = [chunk(*[call] * 100) for _ in range(MAX_PARTS // 100 + 1)]
    result = run([*events, chunk({"text": "t"}, finish="STOP")])
    assert result.response is not None
    assert len(result.response["content"]) == MAX_PARTS
    assert summary(result)["dropped_part_count"] == 101


def test_sources_are_deduplicated_across_chunks() -> None:
    grounding = {"groundingChunks": [{"web": {"uri": "https://a.example/", "title": "A"}}]}
    events = [
        ev(
            {
                "candidates": [
                    {"content": {"parts": [{"text": "x"}]}, "groundingMetadata": grounding}
                ]
            }
        ),
        ev({"candidates": [{"finishReason": "STOP", "groundingMetadata": grounding}]}),
    ]
    result = run(events)
    assert result.response is not None
    assert result.response["content"] == [
        {"type": "text", "text": "x"},
        {"type": "source", "source_type": "url", "title": "A", "url": "https://a.example/"},
    ]
    assert summary(result)["source_count"] == 1


def test_proto_field_names_and_media_chunks() -> None:
    audio = {"inline_data": {"mime_type": "audio/wav", "data": "UklGRg=="}}
    events = [
        ev(
            {
                "candidates": [{"content": {"parts": [audio]}, "finish_reason": "STOP"}],
                "usage_metadata": {"prompt_token_count": 3, "candidates_token_count": 4},
                "model_version": "gemini-2.5-flash-preview-tts",
            }
        ),
    ]
    result = run(events)
    assert result.complete is True
    assert result.response is not None
    assert result.response["content"] == [
        {"type": "file", "media_type": "audio/wav", "source_type": "base64", "size_bytes": 4}
    ]
    assert result.response_model == "gemini-2.5-flash-preview-tts"
    assert result.usage is not None and result.usage["total_tokens"] == 7


def test_malformed_events_are_counted_never_raised() -> None:
    events = [
        SSEEvent(event="message", data="not json"),
        SSEEvent(event="message", data="[1, 2]"),
        SSEEvent(event="message", data=""),
        SSEEvent(event="message", data="{" * 100_000),
        chunk({"text": "ok"}, finish="STOP"),
    ]
    result = run(events)
    assert result.response is not None
    assert result.response["content"] == [{"type": "text", "text": "ok"}]
    assert summary(result)["malformed_event_count"] == 3
    assert summary(result)["event_count"] == 4


def test_absorb_tolerates_anything() -> None:
    assembler = GeminiStreamAssembler()
    values: list[Any] = [None, 1, "x", [], {"candidates": [1, None, {"content": "x"}]}]
    for value in values:
        assert assembler.absorb(value) is False
    result = assembler.finish()
    assert result.complete is False
    assert summary(result)["malformed_event_count"] == 4
