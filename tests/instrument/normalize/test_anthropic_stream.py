"""Anthropic Messages codec: assembly of SSE streams."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chatdebug.instrument.normalize._payloads import MAX_STREAM_TEXT_BYTES, NormalizedResponse
from chatdebug.instrument.normalize._sse import SSEEvent, SSEParser
from chatdebug.instrument.normalize.anthropic import AnthropicMessagesCodec

FIXTURES = Path(__file__).parent / "fixtures"
CODEC = AnthropicMessagesCodec()
MODEL = "claude-sonnet-4-5-20250929"


def fixture_events(name: str, chunk: int = 0) -> list[SSEEvent]:
    """The events of ``anthropic_<name>_stream.sse`` through the real SSE parser, fed in
    ``chunk``-byte pieces (whole when 0) like a network would deliver them."""
    raw = (FIXTURES / f"anthropic_{name}_stream.sse").read_bytes()
    parser = SSEParser()
    step = chunk or len(raw)
    events = [e for i in range(0, len(raw), step) for e in parser.feed(raw[i : i + step])]
    parser.close()
    return events


def ev(data: dict[str, Any]) -> SSEEvent:
    return SSEEvent(event=str(data.get("type", "message")), data=json.dumps(data))


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


def start(usage: dict[str, Any] | None = None) -> SSEEvent:
    message: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 10, "output_tokens": 1},
    }
    return ev({"type": "message_start", "message": message})


def block_start(index: int, block: dict[str, Any]) -> SSEEvent:
    return ev({"type": "content_block_start", "index": index, "content_block": block})


def delta(index: int, body: dict[str, Any]) -> SSEEvent:
    return ev({"type": "content_block_delta", "index": index, "delta": body})


def text(index: int, value: str) -> SSEEvent:
    return delta(index, {"type": "text_delta", "text": value})


def json_delta(index: int, value: str) -> SSEEvent:
    return delta(index, {"type": "input_json_delta", "partial_json": value})


def end(stop_reason: str = "end_turn", output_tokens: int = 5) -> list[SSEEvent]:
    return [
        ev(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            }
        ),
        ev({"type": "message_stop"}),
    ]


TOOL = {"type": "tool_use", "id": "toolu_9", "name": "lookup", "input": {}}


@pytest.mark.parametrize("name", ["text", "cache", "tools", "thinking", "parallel", "web_search"])
@pytest.mark.parametrize("chunk", [0, 13])
def test_stream_equals_non_streamed(name: str, chunk: int) -> None:
    body = json.loads((FIXTURES / f"anthropic_{name}_response.json").read_text())
    expected = CODEC.normalize_response(body)
    result = run(fixture_events(name, chunk))
    assert result.response == expected.response
    assert result.usage == expected.usage
    assert result.finish_reasons == expected.finish_reasons
    assert result.response_model == expected.response_model == MODEL
    assert result.complete is True and result.error is None


def test_text_summary() -> None:
    events = fixture_events("text")
    result = run(events)
    text_deltas = sum('"text_delta"' in e.data for e in events)
    assert summary(result) == {
        "finish_reason": "stop",
        "text_delta_count": text_deltas,
        "reasoning_delta_count": 0,
        "tool_call_count": 0,
        "source_count": 0,
        "warning_count": 0,
        "error_count": 0,
        "part_count": 1,
        "event_count": len(events),
        "malformed_event_count": 0,
        "signature_delta_count": 0,
        "ping_count": 1,
    }


def test_thinking_then_tool_use() -> None:
    assembler = CODEC.new_stream()
    carried: list[str] = []
    for event in fixture_events("thinking"):
        data = json.loads(event.data)
        if assembler.feed(event):
            carried.append(data["delta"]["type"])
        elif data["type"] == "content_block_delta":
            carried.append(f"empty {data['delta']['type']}")
    # Only non-empty thinking / input deltas carry output; signatures and empties don't.
    assert carried == [
        *["thinking_delta"] * 7,
        "empty signature_delta",
        *["text_delta"] * 4,
        "empty input_json_delta",
        *["input_json_delta"] * 6,
    ]
    result = assembler.finish()
    stats = summary(result)
    assert stats["reasoning_delta_count"] == 7
    assert stats["signature_delta_count"] == 1
    assert stats["tool_call_count"] == 1
    assert result.response is not None
    reasoning, _, call = result.response["content"]
    assert reasoning["has_signature"] is True
    assert call["arguments"] == '{"location":"Paris, France","unit":"celsius"}'
    assert "ErUB" not in json.dumps(result.response)
    assert result.usage is not None and result.usage["reasoning_tokens"] == 96


def test_interleaved_tool_input_per_block() -> None:
    result = run(fixture_events("interleaved"))
    assert result.response is not None
    calls = result.response["content"]
    assert [c["tool_call_id"] for c in calls] == ["toolu_01P", "toolu_01Q"]
    assert calls[0]["arguments"] == '{"location":"Paris, France"}'
    assert calls[1]["arguments"] == '{"location":"Tokyo, Japan","unit":"celsius"}'
    assert summary(result)["tool_call_count"] == 2


def test_text_interleaved_with_tool_input() -> None:
    events = [
        start(),
        block_start(0, {"type": "text", "text": ""}),
        block_start(1, TOOL),
        text(0, "Let me "),
        json_delta(1, '{"q": '),
        text(0, "look."),
        json_delta(1, '"x"}'),
        *end("tool_use"),
    ]
    result = run(events)
    assert result.response is not None
    assert result.response["content"] == [
        {"type": "text", "text": "Let me look."},
        {
            "type": "tool-call",
            "tool_call_id": "toolu_9",
            "tool_name": "lookup",
            "arguments": '{"q":"x"}',
        },
    ]
    assert result.response["finish_reason"] == "tool-calls"


def test_cache_usage_from_start_and_delta() -> None:
    usage = {
        "input_tokens": 5,
        "output_tokens": 1,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 900,
    }
    last = ev(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 7, "cache_creation_input_tokens": 30},
        }
    )
    result = run(
        [
            start(usage),
            ev({"type": "message_delta", "delta": {}, "usage": {"output_tokens": 3}}),
            last,
        ]
    )
    assert result.usage == {
        "input_tokens": 5,
        "output_tokens": 7,
        "total_tokens": 5 + 7 + 30 + 900,
        "reasoning_tokens": 0,
        "cache_creation_tokens": 30,
        "cache_read_tokens": 900,
    }


def test_truncated_stream_is_incomplete() -> None:
    events = fixture_events("text")
    assert json.loads(events[-1].data)["type"] == "message_stop"
    result = run(events[:-2])  # no message_delta, no message_stop
    assert result.complete is False
    assert result.response is not None
    assert result.response["content"][0]["text"].startswith("Bonjour")
    assert result.response["finish_reason"] == "unknown"
    assert result.finish_reasons == []
    assert result.usage is not None and result.usage["input_tokens"] == 14


def test_stream_cut_inside_tool_arguments_keeps_raw_json() -> None:
    result = run([start(), block_start(0, TOOL), json_delta(0, '{"city": "Par')])
    assert result.complete is False
    assert result.response is not None
    assert result.response["content"][0]["arguments"] == '{"city": "Par'


def test_malformed_events_are_counted() -> None:
    events = [
        start(),
        SSEEvent("content_block_delta", "{not json"),
        SSEEvent("message", "[1, 2]"),
        SSEEvent("message", ""),
        ev({"type": "content_block_delta", "index": 0}),
        ev(
            {
                "type": "content_block_delta",
                "index": "zero",
                "delta": {"type": "text_delta", "text": "x"},
            }
        ),
        ev({"type": "content_block_start", "index": 0, "content_block": "text"}),
        ev({"type": "content_block_delta", "index": 0, "delta": {"type": "mystery_delta"}}),
        ev({"type": "brand_new_event"}),
        block_start(0, {"type": "text", "text": "", "citations": 5}),
        text(0, "still fine"),
        delta(0, {"type": "text_delta", "text": None}),
        *end(),
    ]
    result = run(events)
    assert summary(result)["malformed_event_count"] == 8
    assert result.response is not None
    assert result.response["content"] == [{"type": "text", "text": "still fine"}]
    assert result.complete is True


def test_delta_without_block_start_is_kept() -> None:
    result = run([start(), text(3, "orphan"), *end()])
    assert result.response is not None
    assert result.response["content"] == [{"type": "text", "text": "orphan"}]


def test_overloaded_error_event() -> None:
    assembler = CODEC.new_stream()
    for event in fixture_events("overloaded"):
        assembler.feed(event)
    assert assembler.terminal
    result = assembler.finish()
    assert result.error == {
        "message": "Overloaded",
        "type": "overloaded_error",
        "is_retryable": True,
    }
    assert result.response is not None
    assert result.response["finish_reason"] == "error"
    assert result.response["content"][0]["text"] == "Here is the beginning of a long answer"
    stats = summary(result)
    assert stats["error_count"] == 1 and stats["last_error"] == "Overloaded"
    assert stats["finish_reason"] == "error"


def test_error_event_with_text_data() -> None:
    result = run([start(), SSEEvent("error", "upstream exploded")])
    assert result.error == {
        "message": "upstream exploded",
        "type": "stream_error",
        "is_retryable": False,
    }


def test_long_text_is_bounded() -> None:
    pieces = ["ab" * 250] * 21  # 10,500 characters
    result = run(
        [
            start(),
            block_start(0, {"type": "text", "text": ""}),
            *(text(0, p) for p in pieces),
            *end(),
        ]
    )
    assert result.response is not None
    part = result.response["content"][0]
    assert part["text_length"] == 10_500
    assert len(part["text"]) == 10_001 and part["text"].endswith("…")


def test_global_cap_keeps_later_tool_calls() -> None:
    chunk = "€" * 1000  # 3,000 UTF-8 bytes
    events = [
        start(),
        block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        *(delta(0, {"type": "thinking_delta", "thinking": chunk}) for _ in range(10)),
        block_start(1, {"type": "text", "text": ""}),
        *(text(1, chunk) for _ in range(10)),  # 60,000 bytes in all: over the cap
        block_start(2, TOOL | {"id": "toolu_late"}),
        json_delta(2, '{"q": "after the cap"}'),
        block_start(3, {"type": "text", "text": ""}),
        text(3, "dropped"),
        *end("tool_use"),
    ]
    result = run(events)
    assert result.response is not None
    reasoning, cut, call, empty = result.response["content"]
    assert reasoning == {"type": "reasoning", "text": "€" * 10_000}  # 30,000 bytes, uncut
    kept = MAX_STREAM_TEXT_BYTES - 30_000
    assert cut["text"] == "€" * (kept // 3) + "…"
    assert cut["text_length"] == 10_000
    assert call["tool_call_id"] == "toolu_late"
    assert call["arguments"] == "" and call["arguments_truncated"] is True
    assert call["arguments_length"] == len('{"q": "after the cap"}')
    assert empty == {"type": "text", "text": "…", "text_length": 7}
    total = sum(len(p.get("text", "").rstrip("…").encode()) for p in result.response["content"])
    assert total <= MAX_STREAM_TEXT_BYTES
    assert result.response["warnings"] == [
        {"type": "other", "message": "stream text and tool input capped at 50000 bytes"}
    ]
    stats = summary(result)
    assert stats["warning_count"] == 1 and stats["tool_call_count"] == 1


def test_source_count_excludes_tool_results() -> None:
    result = run(fixture_events("web_search"))
    stats = summary(result)
    assert result.response is not None
    types = [p["type"] for p in result.response["content"]]
    assert types.count("tool-result") == 1
    assert stats["source_count"] == types.count("source") == 3


def test_feed_and_finish_never_raise_on_junk() -> None:
    junk = [
        SSEEvent("message", "null"),
        SSEEvent("message", '"text"'),
        SSEEvent("message", "1e999999"),
        SSEEvent("message", "[" * 100_000),
        ev({"type": "message_start", "message": {"usage": "lots", "model": 5}}),
        ev({"type": "message_delta", "delta": "stop", "usage": [1]}),
        ev({"type": "content_block_start", "index": True, "content_block": {"type": "text"}}),
        ev(
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "input": 5},
            }
        ),
        json_delta(1, "{"),
        ev(
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {"type": "web_search_tool_result", "content": 7},
            }
        ),
        ev({"type": "error", "error": "just a string"}),
    ]
    result = run(junk)
    json.dumps(result.response)
    assert result.error is not None and result.error["message"]


def test_blocks_beyond_the_limit_are_dropped_and_counted() -> None:
    events = [start()]
    events += [block_start(i, {"type": "redacted_thinking", "data": "x"}) for i in range(1_005)]
    result = run(events)
    assert summary(result)["part_count"] == 1_000
    assert summary(result)["dropped_part_count"] == 5
