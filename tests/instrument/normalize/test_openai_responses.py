"""OpenAI Responses codec: requests, responses, streams, HTTP errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent, response_create_params
from pydantic import TypeAdapter

from chatdebug.instrument.normalize._payloads import MAX_STREAM_TEXT_BYTES, MAX_TEXT_LENGTH
from chatdebug.instrument.normalize._sse import SSEEvent
from chatdebug.instrument.normalize.openai_responses import OpenAIResponsesCodec

from ._openai_support import FIXTURES, dumped, events, force, load, raw, run, sse, summary

CODEC = OpenAIResponsesCodec()
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
PAIRS = ["text", "tools", "incomplete", "refusal"]


def stream_of(name: str) -> bytes:
    return raw(f"openai_responses_{name}_stream.sse")


def event_dicts(name: str) -> list[dict[str, Any]]:
    return [json.loads(e.data) for e in events(stream_of(name))]


def delta(kind: str, text: str, oi: int = 0, **extra: Any) -> dict[str, Any]:
    event = {"type": kind, "item_id": f"item_{oi}", "output_index": oi, "delta": text}
    if kind in ("response.output_text.delta", "response.refusal.delta"):
        event.setdefault("content_index", 0)
    event.update(extra)
    return event


class TestFixturesMatchSDK:
    """Every fixture parses with the real SDK's types, so the wire shapes are real."""

    @pytest.mark.parametrize(
        "path", sorted(FIXTURES.glob("openai_responses_*_request.json")), ids=str
    )
    def test_request(self, path: Path) -> None:
        body = json.loads(path.read_text())
        if body.get("stream"):
            adapter: TypeAdapter[Any] = TypeAdapter(
                response_create_params.ResponseCreateParamsStreaming
            )
        else:
            adapter = TypeAdapter(response_create_params.ResponseCreateParamsNonStreaming)
        force(adapter.validate_python(body))

    @pytest.mark.parametrize(
        "path", sorted(FIXTURES.glob("openai_responses_*_response.json")), ids=str
    )
    def test_response(self, path: Path) -> None:
        Response.model_validate_json(path.read_text())

    @pytest.mark.parametrize(
        "path", sorted(FIXTURES.glob("openai_responses_*_stream.sse")), ids=str
    )
    def test_stream(self, path: Path) -> None:
        found = events(path.read_bytes())
        assert found
        for event in found:
            data = json.loads(event.data)
            assert event.event == data["type"]
            EVENTS.validate_python(data)


class TestRequest:
    def test_text(self) -> None:
        body = load("openai_responses_text_request.json")
        assert CODEC.is_stream_request(body) and CODEC.request_model(body) == "gpt-4.1"
        assert CODEC.normalize_request(body) == {
            "messages": [
                {
                    "role": "system",
                    "parts": [{"type": "text", "text": "Answer in one short sentence."}],
                },
                {"role": "user", "parts": [{"type": "text", "text": "Say hello in French."}]},
            ],
            "tools": [],
            "options": {"max_output_tokens": 200, "temperature": 0.3},
            "model": "gpt-4.1",
            "stream": True,
            "provider_option_count": 2,  # store, user
        }

    def test_items_tools_and_options(self) -> None:
        body = load("openai_responses_tools_request.json")
        out = CODEC.normalize_request(body)
        msgs = out["messages"]
        assert [(m["role"], m.get("original_role")) for m in msgs] == [
            ("system", None),
            ("system", "developer"),
            ("user", None),
            ("assistant", None),
            ("tool", None),
            ("tool", None),
            ("user", None),
        ]
        assert msgs[0]["parts"] == [{"type": "text", "text": "You are a travel assistant."}]
        assert msgs[2]["parts"] == [
            {"type": "text", "text": "Where was this photo taken, and what does the PDF say?"},
            {"type": "file", "media_type": "image/png", "size_bytes": 1032},
            {
                "type": "file",
                "media_type": "image/*",
                "source_type": "url",
                "url": "https://cdn.example.com/photos/tower.jpg",
            },
            {
                "type": "file",
                "media_type": "application/pdf",
                "size_bytes": 1039,
                "filename": "itinerary.pdf",
            },
            {"type": "file", "media_type": "application/octet-stream", "file_id": "file-XYZ987"},
        ]
        assert msgs[3]["parts"] == [
            {"type": "reasoning", "text": "Need the city first."},
            {"type": "text", "text": "It looks like Paris."},
            {
                "type": "tool-call",
                "tool_call_id": "call_W1",
                "tool_name": "get_weather",
                "arguments": '{"city":"Paris"}',
            },
        ]
        assert msgs[4]["parts"] == [
            {"type": "tool-result", "tool_call_id": "call_W1", "result": '{"temp_c":18}'}
        ]
        assert msgs[5]["parts"][0]["result"] == "see image\n[media output: image/jpeg]"
        assert out["tools"] == [
            {
                "type": "function",
                "name": "get_weather",
                "description": "Weather for a city",
                "has_input_schema": True,
                "input_schema": body["tools"][0]["parameters"],
            },
            {
                "type": "function",
                "name": "book_museum",
                "description": "Book a museum slot",
                "has_input_schema": False,
            },
            {
                "type": "provider-defined",
                "id": "openai.web_search_preview",
                "name": "web_search_preview",
                "has_input_schema": False,
            },
            {
                "type": "provider-defined",
                "id": "openai.mcp",
                "name": "maps",
                "has_input_schema": False,
            },
        ]
        assert out["options"] == {
            "parallel_tool_calls": True,
            "reasoning_effort": "medium",
            "reasoning_summary": "auto",
            "verbosity": "low",
        }
        assert out["tool_choice"] == "required"
        assert out["response_format"] == {"type": "json_schema", "name": "plan"}
        assert out["provider_option_count"] == 3  # store, metadata, include
        text = dumped(out)
        png = body["input"][1]["content"][1]["image_url"].split(",", 1)[1]
        pdf = body["input"][1]["content"][3]["file_data"].split(",", 1)[1]
        for secret in (
            png[:64],
            pdf[:64],
            "sig=",
            "0123456789abcdef",
            "gAAAAABencrypted",
            "/9j/4AAQ",
        ):
            assert secret not in text

    @pytest.mark.parametrize(
        ("choice", "expected"),
        [
            ("auto", "auto"),
            ({"type": "function", "name": "f"}, "tool:f"),
            ({"type": "custom", "name": "g"}, "tool:g"),
            ({"type": "mcp", "server_label": "maps"}, "tool:maps"),
            ({"type": "mcp", "server_label": "maps", "name": "route"}, "tool:route"),
            ({"type": "web_search_preview"}, "tool:web_search_preview"),
            ({"type": "allowed_tools", "mode": "required", "tools": []}, "required"),
        ],
    )
    def test_tool_choice(self, choice: Any, expected: str) -> None:
        assert (
            CODEC.normalize_request({"input": "x", "tool_choice": choice})["tool_choice"]
            == expected
        )

    def test_hosted_and_custom_items(self) -> None:
        body = {
            "input": [
                {"type": "custom_tool_call", "call_id": "ct", "name": "sql", "input": "SELECT 1"},
                {"type": "custom_tool_call_output", "call_id": "ct", "output": "1"},
                {
                    "type": "computer_call",
                    "id": "cu",
                    "call_id": "cc",
                    "action": {"type": "click", "x": 1, "y": 2, "button": "left"},
                    "pending_safety_checks": [],
                    "status": "completed",
                },
                {
                    "type": "computer_call_output",
                    "call_id": "cc",
                    "output": {
                        "type": "computer_screenshot",
                        "image_url": "data:image/png;base64,iVBORw0KGgo=",
                    },
                },
                {
                    "type": "web_search_call",
                    "id": "ws",
                    "status": "completed",
                    "action": {"type": "search", "query": "q"},
                },
                {"type": "compaction", "encrypted_content": "opaque"},
            ],
            "tools": [{"type": "custom", "name": "sql", "description": "Run SQL"}],
        }
        out = CODEC.normalize_request(body)
        assert out["messages"] == [
            {
                "role": "assistant",
                "parts": [
                    {
                        "type": "tool-call",
                        "tool_call_id": "ct",
                        "tool_name": "sql",
                        "arguments": "SELECT 1",
                    }
                ],
            },
            {
                "role": "tool",
                "parts": [{"type": "tool-result", "tool_call_id": "ct", "result": "1"}],
            },
            {
                "role": "assistant",
                "parts": [
                    {
                        "type": "tool-call",
                        "tool_call_id": "cc",
                        "tool_name": "computer",
                        "arguments": '{"type": "click", "x": 1, "y": 2, "button": "left"}',
                    }
                ],
            },
            {
                "role": "tool",
                "parts": [
                    {
                        "type": "tool-result",
                        "tool_call_id": "cc",
                        "result": "[media output: image/png]",
                    }
                ],
            },
            {
                "role": "assistant",
                "parts": [
                    {
                        "type": "tool-call",
                        "tool_call_id": "ws",
                        "tool_name": "web_search",
                        "provider_executed": True,
                        "arguments": '{"type": "search", "query": "q"}',
                    }
                ],
            },
        ]
        assert out["tools"] == [
            {"type": "custom", "name": "sql", "description": "Run SQL", "has_input_schema": False}
        ]
        assert "opaque" not in dumped(out)

    def test_long_input_bounded(self) -> None:
        out = CODEC.normalize_request({"input": "b" * (MAX_TEXT_LENGTH + 1)})
        part = out["messages"][0]["parts"][0]
        assert (
            part["text"] == "b" * MAX_TEXT_LENGTH + "…"
            and part["text_length"] == MAX_TEXT_LENGTH + 1
        )

    @pytest.mark.parametrize(
        "body",
        [
            None,
            "x",
            [1],
            {"input": 5, "instructions": ["a"], "tools": "all", "reasoning": "high", "text": 3},
            {
                "input": [
                    None,
                    1,
                    "s",
                    {"type": "message"},
                    {"role": 3},
                    {"type": "function_call", "arguments": {}},
                ]
            },
            {
                "input": [
                    {
                        "role": "user",
                        "content": [
                            None,
                            {"type": "input_image"},
                            {"type": "input_file", "file_data": 7},
                        ],
                    }
                ]
            },
        ],
    )
    def test_garbage_never_raises(self, body: Any) -> None:
        out = CODEC.normalize_request(body)
        assert isinstance(out["messages"], list) and isinstance(out["tools"], list)


class TestResponse:
    def test_text(self) -> None:
        result = CODEC.normalize_response(load("openai_responses_text_response.json"))
        assert result.response == {
            "content": [{"type": "text", "text": "Bonjour ! Comment ça va ?"}],
            "finish_reason": "stop",
            "provider_finish_reason": "completed",
            "usage": {
                "input_tokens": 36,
                "output_tokens": 9,
                "total_tokens": 45,
                "reasoning_tokens": 0,
                "cache_creation_tokens": 0,
                "cache_read_tokens": 0,
            },
            "warnings": [],
            "model": "gpt-4.1-2025-04-14",
            "id": "resp_67ccd2bed1ec8190b14f964abc054267",
        }
        assert (
            result.finish_reasons == ["completed"] and result.response_model == "gpt-4.1-2025-04-14"
        )

    def test_reasoning_search_citation_and_parallel_calls(self) -> None:
        result = CODEC.normalize_response(load("openai_responses_tools_response.json"))
        assert result.response is not None
        assert result.response["content"] == [
            {"type": "reasoning", "text": "**Checking weather**\n\nI need tomorrow's forecast."},
            {"type": "reasoning", "text": "Then I'll look for sources."},
            {
                "type": "tool-call",
                "tool_call_id": "ws_0001",
                "tool_name": "web_search",
                "provider_executed": True,
                "arguments": '{"type": "search", "query": "Paris museums open tomorrow"}',
            },
            {"type": "text", "text": "The Louvre is open tomorrow."},
            {
                "type": "source",
                "source_type": "url",
                "url": "https://www.louvre.fr/en/visit?utm_source=openai",
                "title": "Visit - Louvre",
            },
            {
                "type": "tool-call",
                "tool_call_id": "call_Aa1",
                "tool_name": "get_weather",
                "arguments": '{"city":"Paris","day":"tomorrow"}',
            },
            {
                "type": "tool-call",
                "tool_call_id": "call_Bb2",
                "tool_name": "book_museum",
                "arguments": '{"museum":"Louvre"}',
            },
        ]
        assert result.response["finish_reason"] == "tool-calls"
        assert result.usage is not None
        assert (result.usage["reasoning_tokens"], result.usage["cache_read_tokens"]) == (320, 1536)

    def test_incomplete_is_length(self) -> None:
        result = CODEC.normalize_response(load("openai_responses_incomplete_response.json"))
        assert result.response is not None
        assert result.response["finish_reason"] == "length"
        assert result.response["provider_finish_reason"] == "max_output_tokens"
        assert result.finish_reasons == ["max_output_tokens"]

    def test_content_filter_and_refusal(self) -> None:
        body = load("openai_responses_incomplete_response.json")
        body["incomplete_details"] = {"reason": "content_filter"}
        assert CODEC.normalize_response(body).response["finish_reason"] == "content-filter"  # type: ignore[index]
        result = CODEC.normalize_response(load("openai_responses_refusal_response.json"))
        assert result.response is not None
        assert result.response["content"] == [
            {"type": "refusal", "text": "I'm sorry, I can't help with that."}
        ]

    def test_failed_carries_error(self) -> None:
        result = CODEC.normalize_response(load("openai_responses_failed_response.json"))
        assert result.error == {
            "message": "The model produced invalid content.",
            "type": "server_error",
            "code": "server_error",
        }
        assert result.response is not None and result.response["finish_reason"] == "error"

    def test_cache_write_tokens(self) -> None:
        body = load("openai_responses_text_response.json")
        body["usage"]["input_tokens_details"]["cache_write_tokens"] = 7
        assert CODEC.normalize_response(body).usage["cache_creation_tokens"] == 7  # type: ignore[index]

    def test_long_text_bounded(self) -> None:
        body = load("openai_responses_text_response.json")
        body["output"][0]["content"][0]["text"] = "z" * (MAX_TEXT_LENGTH + 5)
        part = CODEC.normalize_response(body).response["content"][0]  # type: ignore[index]
        assert part["text"].endswith("…") and part["text_length"] == MAX_TEXT_LENGTH + 5

    def test_image_generation_result_not_stored(self) -> None:
        body = load("openai_responses_text_response.json")
        body["output"] = [
            {
                "type": "image_generation_call",
                "id": "ig_1",
                "status": "completed",
                "result": "iVBORw0KGgoAAAANSUhEUgAA" * 50,
                "revised_prompt": "a cat",
            }
        ]
        Response.model_validate(body)
        result = CODEC.normalize_response(body)
        assert result.response is not None
        assert result.response["content"] == [
            {
                "type": "tool-call",
                "tool_call_id": "ig_1",
                "tool_name": "image_generation",
                "provider_executed": True,
                "arguments": "a cat",
            }
        ]
        assert "iVBORw0KGgo" not in dumped(result.response)
        assert result.response["finish_reason"] == "stop"

    @pytest.mark.parametrize(
        "body",
        [
            None,
            "x",
            [],
            {"output": "x", "status": 5, "usage": [], "incomplete_details": "why"},
            {
                "output": [
                    None,
                    1,
                    {
                        "type": "message",
                        "content": [
                            None,
                            {"type": "output_text", "text": 3, "annotations": [None]},
                        ],
                    },
                ]
            },
            {
                "output": [
                    {"type": "reasoning", "summary": "s"},
                    {"type": "function_call", "arguments": None},
                ]
            },
            {"status": "failed", "error": "boom"},
        ],
    )
    def test_garbage_never_raises(self, body: Any) -> None:
        result = CODEC.normalize_response(body)
        assert result.response is not None and isinstance(result.response["content"], list)


class TestStream:
    @pytest.mark.parametrize("name", PAIRS)
    def test_matches_non_streamed(self, name: str) -> None:
        assembler = CODEC.new_stream()
        result, _ = run(assembler, stream_of(name))
        expected = CODEC.normalize_response(load(f"openai_responses_{name}_response.json"))
        assert result.response == expected.response
        assert result.usage == expected.usage
        assert result.finish_reasons == expected.finish_reasons
        assert result.response_model == expected.response_model
        assert assembler.terminal and result.complete and result.error is None

    @pytest.mark.parametrize("piece", [3, 100])
    def test_split_anywhere(self, piece: int) -> None:
        whole, _ = run(CODEC.new_stream(), stream_of("tools"))
        split, _ = run(CODEC.new_stream(), stream_of("tools"), piece)
        assert split.response == whole.response

    def test_summary_and_first_output_flags(self) -> None:
        result, flags = run(CODEC.new_stream(), stream_of("tools"))
        kinds = [e["type"] for e in event_dicts("tools")]
        first = flags.index(True)
        assert kinds[first] == "response.reasoning_summary_text.delta"
        assert not any(flags[:first])
        assert summary(result) == {
            "finish_reason": "tool-calls",
            "text_delta_count": 3,
            "reasoning_delta_count": 5,
            "tool_call_count": 3,
            "source_count": 1,
            "warning_count": 0,
            "error_count": 0,
            "part_count": 7,
            "event_count": len(kinds),
            "malformed_event_count": 0,
        }

    def test_done_events_alone_rebuild_the_output(self) -> None:
        # A server that sends no deltas still yields the same content.
        kept = [e for e in event_dicts("tools") if not e["type"].endswith(".delta")]
        result, flags = run(CODEC.new_stream(), sse(kept, named=True, done=False))
        expected = CODEC.normalize_response(load("openai_responses_tools_response.json"))
        assert result.response == expected.response
        assert any(flags)
        only_final = [e for e in event_dicts("tools") if e["type"] == "response.completed"]
        result, _ = run(CODEC.new_stream(), sse(only_final, named=True, done=False))
        assert result.response == expected.response

    def test_truncated_stream_is_incomplete(self) -> None:
        kept = [e for e in event_dicts("text") if e["type"] != "response.completed"][:8]
        assembler = CODEC.new_stream()
        result, _ = run(assembler, sse(kept, named=True, done=False))
        assert not assembler.terminal and not result.complete
        assert result.response is not None
        assert result.response["finish_reason"] == "other"
        assert result.response["content"] == [{"type": "text", "text": "Bonjour ! Comment"}]
        assert result.usage is None and result.finish_reasons == []
        assert "provider_finish_reason" not in result.response
        assert result.response_model == "gpt-4.1-2025-04-14"

    def test_failed_stream(self) -> None:
        assembler = CODEC.new_stream()
        result, _ = run(assembler, stream_of("failed"))
        assert assembler.terminal and result.complete
        assert result.error == {
            "message": "The model produced invalid content.",
            "type": "server_error",
            "code": "server_error",
        }
        assert result.response is not None
        assert result.response["finish_reason"] == "error"
        assert result.response["content"] == [{"type": "text", "text": "Partial answ"}]
        stats = summary(result)
        assert (
            stats["error_count"] == 1
            and stats["last_error"] == "The model produced invalid content."
        )
        assert assembler.finish().metadata == result.metadata  # finishing twice changes nothing

    def test_failed_without_error_object(self) -> None:
        items = [{"type": "response.failed", "response": {"status": "failed", "output": []}}]
        result, _ = run(CODEC.new_stream(), sse(items, named=True, done=False))
        assert result.error == {"message": "response failed", "type": "failed"}
        assert summary(result)["error_count"] == 1 and result.finish_reasons == ["failed"]

    def test_error_event_is_terminal(self) -> None:
        assembler = CODEC.new_stream()
        result, _ = run(assembler, stream_of("error"))
        assert assembler.terminal
        assert result.error == {
            "message": "Rate limit reached for o4-mini.",
            "type": "rate_limit_exceeded",
            "code": "rate_limit_exceeded",
        }
        assert result.response is not None and result.response["finish_reason"] == "error"
        assert summary(result)["error_count"] == 1

    def test_malformed_events_are_counted(self) -> None:
        good = event_dicts("text")
        data = (
            sse(good[:5], named=True, done=False)
            + b"event: response.output_text.delta\ndata: {oops\n\ndata: 17\n\n"
        )
        data += sse(good[5:], named=True, done=False)
        result, _ = run(CODEC.new_stream(), data)
        assert summary(result)["malformed_event_count"] == 2
        assert result.response is not None
        assert result.response["content"] == [{"type": "text", "text": "Bonjour ! Comment ça va ?"}]

    def test_interleaved_parallel_arguments(self) -> None:
        items = [
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {
                    "type": "function_call",
                    "id": "fc_a",
                    "call_id": "a",
                    "name": "f",
                    "arguments": "",
                },
            },
            {
                "type": "response.output_item.added",
                "output_index": 1,
                "item": {
                    "type": "function_call",
                    "id": "fc_b",
                    "call_id": "b",
                    "name": "g",
                    "arguments": "",
                },
            },
            delta("response.function_call_arguments.delta", '{"x":', 1),
            delta("response.function_call_arguments.delta", '{"y":', 0),
            delta("response.output_text.delta", "Hi", 2),
            delta("response.function_call_arguments.delta", "2}", 1),
            delta("response.function_call_arguments.delta", "1}", 0),
        ]
        result, flags = run(CODEC.new_stream(), sse(items, named=True, done=False))
        assert result.response is not None
        assert result.response["content"] == [
            {"type": "tool-call", "tool_call_id": "a", "tool_name": "f", "arguments": '{"y":1}'},
            {"type": "tool-call", "tool_call_id": "b", "tool_name": "g", "arguments": '{"x":2}'},
            {"type": "text", "text": "Hi"},
        ]
        assert all(flags)

    def test_reasoning_text_and_custom_tool_input(self) -> None:
        items = [
            delta("response.reasoning_text.delta", "think ", 0, content_index=0),
            delta("response.reasoning_text.delta", "more", 0, content_index=0),
            {
                "type": "response.output_item.added",
                "output_index": 1,
                "item": {"type": "custom_tool_call", "call_id": "c", "name": "sql", "input": ""},
            },
            delta("response.custom_tool_call_input.delta", "SELECT ", 1),
            delta("response.custom_tool_call_input.delta", "1", 1),
            {
                "type": "response.completed",
                "response": {"status": "completed", "model": "gpt-5", "output": []},
            },
        ]
        result, _ = run(CODEC.new_stream(), sse(items, named=True, done=False))
        assert result.response is not None
        assert result.response["content"] == [
            {"type": "reasoning", "text": "think more"},
            {"type": "tool-call", "tool_call_id": "c", "tool_name": "sql", "arguments": "SELECT 1"},
        ]
        assert result.response["finish_reason"] == "tool-calls"

    def test_global_cap_keeps_later_tool_call(self) -> None:
        piece = "ü" * 5000  # 10,000 bytes each
        items: list[Any] = [delta("response.output_text.delta", piece) for _ in range(6)]
        items += [
            {
                "type": "response.output_item.added",
                "output_index": 1,
                "item": {
                    "type": "function_call",
                    "id": "fc",
                    "call_id": "late",
                    "name": "f",
                    "arguments": "",
                },
            },
            delta("response.function_call_arguments.delta", '{"a":1}', 1),
            {"type": "response.completed", "response": {"status": "completed", "output": []}},
        ]
        result, _ = run(CODEC.new_stream(), sse(items, named=True, done=False))
        assert result.response is not None
        text, call = result.response["content"]
        assert text == {"type": "text", "text": "ü" * MAX_TEXT_LENGTH + "…", "text_length": 30_000}
        assert call == {
            "type": "tool-call",
            "tool_call_id": "late",
            "tool_name": "f",
            "arguments": "",
            "arguments_length": 7,
            "arguments_truncated": True,
        }
        assert result.response["warnings"] and summary(result)["warning_count"] == 1
        assert MAX_STREAM_TEXT_BYTES == 50_000

    @pytest.mark.parametrize(
        "data",
        [
            "",
            "[]",
            "null",
            '{"type": 5}',
            '{"type": "response.output_text.delta", "delta": 5, "output_index": "x"}',
            '{"type": "response.output_item.done", "item": [1]}',
            '{"type": "response.output_item.added", "item": {"type": "function_call", "name": 3}}',
            '{"type": "response.completed", "response": {"output": [null, {"type": "message"}]}}',
            '{"type": "response.completed", "response": {"output": [{"content": 4}]}}',
            '{"type": "response.failed", "response": {"error": "x"}}',
            '{"type": "error"}',
            '{"type": "response.output_text.annotation.added", "annotation": null}',
            '{"type": "response.reasoning_summary_part.done", "part": 3}',
            '{"type": "response.content_part.done", "content_index": 2, "part": {"type": 1}}',
            '{"type": "response.content_part.done", "part": {"type": "refusal"}}',
        ],
    )
    def test_garbage_events_never_raise(self, data: str) -> None:
        assembler = CODEC.new_stream()
        assembler.feed(SSEEvent("message", data))
        result = assembler.finish()
        assert result.response is not None and isinstance(result.response["content"], list)


def test_error_payload() -> None:
    payload = CODEC.error_payload(429, load("openai_error_429.json"))
    assert payload["is_retryable"] is True and payload["provider_status"] == 429
    assert CODEC.error_payload(500, b"\xff")["type"] == "http_error"


class TestServiceTier:
    """The tier that served the call is kept in the step metadata (it is priced)."""

    def test_response(self) -> None:
        body = load("openai_responses_text_response.json")
        assert CODEC.normalize_response(body).metadata == {"service_tier": "default"}
        body["service_tier"] = "flex"
        assert CODEC.normalize_response(body).metadata["service_tier"] == "flex"
        body["service_tier"] = None
        assert "service_tier" not in CODEC.normalize_response(body).metadata

    def test_stream_takes_the_final_response_tier(self) -> None:
        result, _ = run(CODEC.new_stream(), stream_of("text"))
        assert result.metadata["service_tier"] == "default"
        kept = event_dicts("text")
        for event in kept:
            if isinstance(event.get("response"), dict):
                # Early snapshots echo the requested tier; the final one says which served.
                final = event["type"] == "response.completed"
                event["response"]["service_tier"] = "flex" if final else "auto"
        result, _ = run(CODEC.new_stream(), sse(kept, named=True, done=False))
        assert result.metadata["service_tier"] == "flex"
        cut = [e for e in kept if e["type"] != "response.completed"]
        result, _ = run(CODEC.new_stream(), sse(cut, named=True, done=False))
        assert "service_tier" not in result.metadata
