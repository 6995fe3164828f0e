"""OpenAI Chat Completions codec: requests, responses, streams, HTTP errors."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from openai.types import ErrorObject
from openai.types.chat import ChatCompletion, ChatCompletionChunk, completion_create_params
from pydantic import TypeAdapter

from chatdebug.instrument.normalize._payloads import MAX_STREAM_TEXT_BYTES, MAX_TEXT_LENGTH
from chatdebug.instrument.normalize._sse import SSEEvent
from chatdebug.instrument.normalize.openai_chat import OpenAIChatCodec

from ._openai_support import FIXTURES, dumped, events, force, load, raw, run, sse, summary

CODEC = OpenAIChatCodec()


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> Any:
    """A ``chat.completion.chunk`` with one choice (index 0 unless ``index`` is given)."""
    choice = {"index": extra.pop("index", 0), "delta": delta or {}, "finish_reason": finish}
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [choice],
    }
    body.update(extra)
    return body


def stream(*items: Any, done: bool = True) -> Any:
    result, _ = run(CODEC.new_stream(), sse(items, done=done))
    return result


class TestFixturesMatchSDK:
    """Every fixture parses with the real SDK's types, so the wire shapes are real."""

    @pytest.mark.parametrize("path", sorted(FIXTURES.glob("openai_chat_*_request.json")), ids=str)
    def test_request(self, path: Path) -> None:
        body = json.loads(path.read_text())
        if body.get("stream"):
            adapter: TypeAdapter[Any] = TypeAdapter(
                completion_create_params.CompletionCreateParamsStreaming
            )
        else:
            body.pop("stream", None)
            adapter = TypeAdapter(completion_create_params.CompletionCreateParamsNonStreaming)
        force(adapter.validate_python(body))

    @pytest.mark.parametrize("path", sorted(FIXTURES.glob("openai_chat_*_response.json")), ids=str)
    def test_response(self, path: Path) -> None:
        ChatCompletion.model_validate_json(path.read_text())

    @pytest.mark.parametrize("path", sorted(FIXTURES.glob("openai_chat_*_stream.sse")), ids=str)
    def test_stream(self, path: Path) -> None:
        checked = 0
        for event in events(path.read_bytes()):
            if event.data == "[DONE]":
                continue
            try:
                data = json.loads(event.data)
            except ValueError:
                assert "malformed" in path.name
                continue
            if isinstance(data, dict) and "error" in data:
                ErrorObject.model_validate(data["error"])
            elif isinstance(data, dict):
                ChatCompletionChunk.model_validate(data)
            checked += 1
        assert checked

    @pytest.mark.parametrize("status", [400, 429, 500])
    def test_error_bodies(self, status: int) -> None:
        ErrorObject.model_validate(load(f"openai_error_{status}.json")["error"])


class TestRequest:
    def test_text(self) -> None:
        body = load("openai_chat_text_request.json")
        assert CODEC.is_stream_request(body)
        assert CODEC.request_model(body) == "gpt-4o"
        assert CODEC.normalize_request(body) == {
            "messages": [
                {
                    "role": "system",
                    "parts": [{"type": "text", "text": "You are a concise assistant."}],
                },
                {"role": "user", "parts": [{"type": "text", "text": "Say hello in French."}]},
            ],
            "tools": [],
            "options": {"temperature": 0.3, "max_output_tokens": 200, "include_usage": True},
            "model": "gpt-4o",
            "stream": True,
            "provider_option_count": 2,  # user, store
        }

    def test_system_developer_and_tool_turns(self) -> None:
        body = load("openai_chat_tools_request.json")
        assert not CODEC.is_stream_request(body)
        out = CODEC.normalize_request(body)
        roles = [(m["role"], m.get("original_role")) for m in out["messages"]]
        assert roles == [
            ("system", None),
            ("system", "developer"),
            ("user", None),
            ("assistant", None),
            ("tool", None),
            ("tool", None),
            ("assistant", None),
            ("tool", "function"),
            ("assistant", None),
            ("user", None),
        ]
        msgs = out["messages"]
        assert msgs[1]["parts"] == [{"type": "text", "text": "Always answer in metric units."}]
        assert msgs[3]["parts"] == [
            {"type": "text", "text": "Let me check both."},
            {
                "type": "tool-call",
                "tool_call_id": "call_Wx1",
                "tool_name": "get_weather",
                "arguments": '{"city":"Paris"}',
            },
            {
                "type": "tool-call",
                "tool_call_id": "call_Tm2",
                "tool_name": "get_time",
                "arguments": '{"tz":"Asia/Tokyo"}',
            },
        ]
        assert msgs[4]["parts"] == [
            {
                "type": "tool-result",
                "tool_call_id": "call_Wx1",
                "result": '{"temp_c":18,"sky":"cloudy"}',
            }
        ]
        assert msgs[5]["parts"][0]["result"] == "21:04\nJST"
        assert msgs[6]["parts"] == [
            {"type": "tool-call", "tool_name": "legacy_lookup", "arguments": '{"q":"x"}'}
        ]
        assert msgs[7]["parts"] == [
            {"type": "tool-result", "tool_name": "legacy_lookup", "result": "legacy result"}
        ]
        assert msgs[8]["parts"] == [{"type": "refusal", "text": "I can't share that."}]
        assert out["tools"][0] == {
            "type": "function",
            "name": "get_weather",
            "description": "Current weather for a city",
            "has_input_schema": True,
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
        assert out["tools"][2] == {"type": "function", "name": "ping", "has_input_schema": False}
        assert out["options"] == {
            "top_p": 0.9,
            "presence_penalty": 0.1,
            "frequency_penalty": 0.2,
            "stop": ["\n\n"],
            "seed": 42,
            "n": 1,
            "reasoning_effort": "low",
            "parallel_tool_calls": True,
        }
        assert out["tool_choice"] == "auto"
        assert out["response_format"] == {"type": "json_schema", "name": "forecast"}
        assert out["stream"] is False
        assert out["provider_option_count"] == 2  # metadata, logit_bias
        assert "weather" not in dumped(out["options"])  # metadata values are not stored

    def test_media_keeps_type_and_size_only(self) -> None:
        body = load("openai_chat_images_request.json")
        out = CODEC.normalize_request(body)
        assert out["messages"][0]["parts"] == [
            {"type": "text", "text": "What is in these?"},
            {"type": "file", "media_type": "image/png", "size_bytes": 1032},
            {
                "type": "file",
                "media_type": "image/*",
                "source_type": "url",
                "url": "https://cdn.example.com/photos/cat.jpg",
            },
            {"type": "file", "media_type": "audio/wav", "size_bytes": 604},
            {
                "type": "file",
                "media_type": "application/pdf",
                "size_bytes": 1039,
                "filename": "report.pdf",
            },
            {"type": "file", "media_type": "application/octet-stream", "file_id": "file-abc123"},
        ]
        text = dumped(out)
        for part in body["messages"][0]["content"]:
            payload = json.dumps(part)
            for marker in ("base64,", '"data": "', '"file_data": "data:'):
                if marker in payload:
                    b64 = payload.split(marker, 1)[1].split(",")[-1][:64]
                    assert b64 not in text
        assert "X-Amz-Signature" not in text and "deadbeefcafe" not in text

    def test_bare_base64_file(self) -> None:
        data = base64.b64encode(b"x" * 300).decode()
        body = {
            "messages": [
                {"role": "user", "content": [{"type": "file", "file": {"file_data": data}}]}
            ]
        }
        part = CODEC.normalize_request(body)["messages"][0]["parts"][0]
        assert part == {"type": "file", "media_type": "application/octet-stream", "size_bytes": 300}

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            ({"tool_choice": "none"}, "none"),
            ({"tool_choice": "required"}, "required"),
            ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool:f"),
            ({"tool_choice": {"type": "custom", "custom": {"name": "g"}}}, "tool:g"),
            (
                {
                    "tool_choice": {
                        "type": "allowed_tools",
                        "allowed_tools": {"mode": "auto", "tools": []},
                    }
                },
                "auto",
            ),
            ({"function_call": {"name": "h"}}, "tool:h"),
            ({"function_call": "auto"}, "auto"),
        ],
    )
    def test_tool_choice(self, body: dict[str, Any], expected: str) -> None:
        assert CODEC.normalize_request({"messages": [], **body})["tool_choice"] == expected

    def test_custom_tools_and_legacy_functions(self) -> None:
        body = {
            "messages": [],
            "tools": [{"type": "custom", "custom": {"name": "sql", "description": "Run SQL"}}],
            "functions": [{"name": "old", "parameters": {"type": "object"}}],
        }
        assert CODEC.normalize_request(body)["tools"] == [
            {"type": "custom", "name": "sql", "description": "Run SQL", "has_input_schema": False},
            {
                "type": "function",
                "name": "old",
                "has_input_schema": True,
                "input_schema": {"type": "object"},
            },
        ]

    def test_long_text_and_arguments_are_bounded(self) -> None:
        long = "a" * (MAX_TEXT_LENGTH + 1)
        body = {
            "messages": [
                {"role": "user", "content": long},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": long},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c", "content": long},
            ]
        }
        user, call, result = (m["parts"][0] for m in CODEC.normalize_request(body)["messages"])
        assert user["text"] == "a" * MAX_TEXT_LENGTH + "…"
        assert user["text_length"] == MAX_TEXT_LENGTH + 1
        assert call["arguments"].endswith("…") and call["arguments_length"] == MAX_TEXT_LENGTH + 1
        assert (
            len(result["result"]) == MAX_TEXT_LENGTH + 1
            and result["result_length"] == MAX_TEXT_LENGTH + 1
        )

    @pytest.mark.parametrize(
        "body",
        [
            None,
            [],
            "text",
            42,
            {"messages": "nope", "tools": {"a": 1}, "model": 5, "stream": "yes"},
            {
                "messages": [
                    None,
                    1,
                    {"role": 5},
                    {"role": "user", "content": {"x": 1}},
                    {"role": "critic"},
                ],
                "tools": [None, "x", {"type": "function", "function": None}],
                "tool_choice": 3,
                "temperature": None,
                "response_format": "json",
            },
        ],
    )
    def test_garbage_never_raises(self, body: Any) -> None:
        out = CODEC.normalize_request(body)
        assert isinstance(out["messages"], list) and isinstance(out["options"], dict)
        assert CODEC.request_model(body) is None
        assert CODEC.is_stream_request(body) is False

    def test_unknown_role_becomes_user(self) -> None:
        out = CODEC.normalize_request({"messages": [{"role": "critic", "content": "hm"}]})
        assert out["messages"] == [
            {"role": "user", "original_role": "critic", "parts": [{"type": "text", "text": "hm"}]}
        ]


class TestResponse:
    def test_text(self) -> None:
        result = CODEC.normalize_response(load("openai_chat_text_response.json"))
        assert result.response == {
            "content": [{"type": "text", "text": "Bonjour ! Comment ça va ?"}],
            "finish_reason": "stop",
            "provider_finish_reason": "stop",
            "usage": result.usage,
            "warnings": [],
            "model": "gpt-4o-2024-08-06",
            "id": "chatcmpl-BdX3q7Zr1kFv",
        }
        assert result.usage == {
            "input_tokens": 24,
            "output_tokens": 9,
            "total_tokens": 33,
            "reasoning_tokens": 0,
            "cache_creation_tokens": 0,
            "cache_read_tokens": 0,
        }
        assert result.response_model == "gpt-4o-2024-08-06"
        assert result.finish_reasons == ["stop"]
        assert result.error is None and result.complete

    def test_parallel_tool_calls(self) -> None:
        result = CODEC.normalize_response(load("openai_chat_tools_response.json"))
        assert result.response is not None
        assert result.response["content"] == [
            {
                "type": "tool-call",
                "tool_call_id": "call_Fc1",
                "tool_name": "get_weather",
                "arguments": '{"city":"Paris","day":"tomorrow"}',
            },
            {
                "type": "tool-call",
                "tool_call_id": "call_Fc2",
                "tool_name": "get_weather",
                "arguments": '{"city":"Tokyo","day":"tomorrow"}',
            },
        ]
        assert result.response["finish_reason"] == "tool-calls"
        assert result.finish_reasons == ["tool_calls"]
        assert result.usage is not None and result.usage["cache_read_tokens"] == 256

    def test_reasoning_and_token_details(self) -> None:
        result = CODEC.normalize_response(load("openai_chat_reasoning_response.json"))
        assert result.response is not None
        assert result.response["content"] == [
            {"type": "reasoning", "text": "The user wants a number."},
            {"type": "text", "text": "It is 42."},
        ]
        assert result.usage == {
            "input_tokens": 1200,
            "output_tokens": 300,
            "total_tokens": 1500,
            "reasoning_tokens": 192,
            "cache_creation_tokens": 0,
            "cache_read_tokens": 1024,
        }

    def test_refusal_citation_audio_and_custom_call(self) -> None:
        audio = base64.b64encode(b"\0" * 900).decode()
        body = load("openai_chat_text_response.json")
        body["choices"][0]["message"].update(
            {
                "content": "See the source.",
                "refusal": "Not that part.",
                "annotations": [
                    {
                        "type": "url_citation",
                        "url_citation": {
                            "start_index": 0,
                            "end_index": 3,
                            "url": "https://example.com/a",
                            "title": "A",
                        },
                    }
                ],
                "audio": {"id": "audio_1", "data": audio, "expires_at": 2, "transcript": "See."},
                "tool_calls": [
                    {"id": "ct_1", "type": "custom", "custom": {"name": "sql", "input": "SELECT 1"}}
                ],
            }
        )
        ChatCompletion.model_validate(body)
        result = CODEC.normalize_response(body)
        assert result.response is not None
        assert result.response["content"] == [
            {"type": "text", "text": "See the source."},
            {"type": "refusal", "text": "Not that part."},
            {"type": "source", "source_type": "url", "url": "https://example.com/a", "title": "A"},
            {"type": "file", "media_type": "audio/*", "size_bytes": 900, "transcript": "See."},
            {
                "type": "tool-call",
                "tool_call_id": "ct_1",
                "tool_name": "sql",
                "arguments": "SELECT 1",
            },
        ]
        assert audio[:40] not in dumped(result.response)

    def test_several_choices(self) -> None:
        body = load("openai_chat_text_response.json")
        second = json.loads(json.dumps(body["choices"][0]))
        second.update(index=1, finish_reason="length")
        second["message"]["content"] = "Salut"
        body["choices"].insert(0, second)
        result = CODEC.normalize_response(body)
        assert result.response is not None
        assert result.response["content"] == [{"type": "text", "text": "Bonjour ! Comment ça va ?"}]
        assert result.finish_reasons == ["length", "stop"]

    def test_error_inside_200_body(self) -> None:
        result = CODEC.normalize_response({"error": {"message": "upstream failed", "code": 502}})
        assert result.error == {"message": "upstream failed", "type": "error", "code": 502}
        assert result.response is not None and result.response["finish_reason"] == "error"

    def test_long_text_bounded(self) -> None:
        body = load("openai_chat_text_response.json")
        body["choices"][0]["message"]["content"] = "é" * (MAX_TEXT_LENGTH + 1)
        result = CODEC.normalize_response(body)
        assert result.response is not None
        part = result.response["content"][0]
        assert part["text"] == "é" * MAX_TEXT_LENGTH + "…"
        assert part["text_length"] == MAX_TEXT_LENGTH + 1

    @pytest.mark.parametrize(
        "body",
        [
            None,
            "x",
            [1],
            {"choices": None, "usage": "many"},
            {
                "choices": [
                    None,
                    {"message": None},
                    {"index": 0, "message": {"content": 5, "tool_calls": [1]}},
                ]
            },
            {
                "choices": [
                    {"index": 0, "message": {"tool_calls": [{"function": {"arguments": {"a": 1}}}]}}
                ]
            },
            {
                "usage": {
                    "prompt_tokens": "3",
                    "completion_tokens": True,
                    "prompt_tokens_details": 5,
                }
            },
        ],
    )
    def test_garbage_never_raises(self, body: Any) -> None:
        result = CODEC.normalize_response(body)
        assert result.response is not None
        assert isinstance(result.response["content"], list)


class TestStream:
    def test_text_matches_non_streamed(self) -> None:
        result, flags = run(CODEC.new_stream(), raw("openai_chat_text_stream.sse"))
        expected = CODEC.normalize_response(load("openai_chat_text_response.json"))
        assert result.response == expected.response
        assert result.usage == expected.usage
        assert result.finish_reasons == ["stop"]
        assert result.response_model == "gpt-4o-2024-08-06"
        assert result.complete
        assert flags.count(True) == 7 and flags[0] is False and flags[-1] is False
        assert summary(result) == {
            "finish_reason": "stop",
            "text_delta_count": 7,
            "reasoning_delta_count": 0,
            "tool_call_count": 0,
            "source_count": 0,
            "warning_count": 0,
            "error_count": 0,
            "part_count": 1,
            "event_count": 11,
            "malformed_event_count": 0,
            "extra_choice_count": 0,
        }

    @pytest.mark.parametrize("piece", [1, 7, 64])
    def test_split_anywhere(self, piece: int) -> None:
        whole, _ = run(CODEC.new_stream(), raw("openai_chat_tools_stream.sse"))
        split, _ = run(CODEC.new_stream(), raw("openai_chat_tools_stream.sse"), piece)
        assert split.response == whole.response

    def test_parallel_tool_calls_match_non_streamed(self) -> None:
        assembler = CODEC.new_stream()
        result, _ = run(assembler, raw("openai_chat_tools_stream.sse"))
        expected = CODEC.normalize_response(load("openai_chat_tools_response.json"))
        assert result.response == expected.response
        assert assembler.terminal
        assert summary(result)["tool_call_count"] == 2
        assert result.usage is not None and result.usage["cache_read_tokens"] == 256

    def test_interleaved_text_and_tool_arguments(self) -> None:
        result, flags = run(CODEC.new_stream(), raw("openai_chat_interleaved_stream.sse"))
        assert result.response is not None
        assert result.response["content"] == [
            {"type": "text", "text": "Checking two sources."},
            {
                "type": "tool-call",
                "tool_call_id": "call_A",
                "tool_name": "search",
                "arguments": '{"q":"cats"}',
            },
            {
                "type": "tool-call",
                "tool_call_id": "call_B",
                "tool_name": "lookup",
                "arguments": '{"id":42}',
            },
        ]
        assert all(flags[:7]) and result.usage is None

    def test_reasoning_runs_keep_order(self) -> None:
        result, _ = run(CODEC.new_stream(), raw("openai_chat_reasoning_stream.sse"))
        assert result.response is not None
        assert result.response["content"] == [
            {"type": "reasoning", "text": "The user wants a number."},
            {"type": "text", "text": "It is 42."},
            {"type": "reasoning", "text": "Double-check: fine."},
            {"type": "text", "text": " Done."},
        ]
        assert result.usage is not None
        assert (result.usage["reasoning_tokens"], result.usage["cache_read_tokens"]) == (192, 1024)
        stats = summary(result)
        assert (stats["reasoning_delta_count"], stats["text_delta_count"], stats["part_count"]) == (
            3,
            3,
            4,
        )

    def test_truncated_stream_is_incomplete(self) -> None:
        assembler = CODEC.new_stream()
        result, _ = run(assembler, raw("openai_chat_truncated_stream.sse"))
        assert not assembler.terminal and not result.complete
        assert result.response is not None
        assert result.response["finish_reason"] == "other"
        assert result.response["content"] == [
            {
                "type": "tool-call",
                "tool_call_id": "call_Fc1",
                "tool_name": "get_weather",
                "arguments": '{"city":"Pa',
            }
        ]

    def test_malformed_lines_are_counted(self) -> None:
        result, _ = run(CODEC.new_stream(), raw("openai_chat_malformed_stream.sse"))
        assert result.response is not None
        assert result.response["content"] == [{"type": "text", "text": "Hi there"}]
        assert summary(result)["malformed_event_count"] == 3
        assert result.complete and result.response["finish_reason"] == "stop"

    def test_in_stream_error(self) -> None:
        result, _ = run(CODEC.new_stream(), raw("openai_chat_error_stream.sse"))
        assert result.error == {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
        }
        assert result.response is not None
        assert result.response["finish_reason"] == "error"
        assert result.response["content"] == [{"type": "text", "text": "Partial"}]
        stats = summary(result)
        assert stats["error_count"] == 1 and stats["last_error"] == result.error["message"]
        assert not result.complete

    def test_error_event_name(self) -> None:
        data = b'event: error\ndata: {"message": "overloaded", "code": "overloaded"}\n\n'
        result, _ = run(CODEC.new_stream(), data)
        assert result.error == {"message": "overloaded", "type": "overloaded", "code": "overloaded"}

    def test_extra_choices_counted_not_assembled(self) -> None:
        result = stream(
            chunk({"content": "A"}),
            chunk({"content": "B"}, index=1),
            chunk({}, "stop"),
            chunk({}, "length", index=1),
        )
        assert result.response is not None
        assert result.response["content"] == [{"type": "text", "text": "A"}]
        assert result.finish_reasons == ["stop", "length"]
        assert summary(result)["extra_choice_count"] == 1

    def test_legacy_function_call_and_reused_index(self) -> None:
        legacy = stream(
            chunk({"function_call": {"name": "old", "arguments": ""}}),
            chunk({"function_call": {"arguments": '{"a":1}'}}, "function_call"),
        )
        assert legacy.response is not None
        assert legacy.response["content"] == [
            {"type": "tool-call", "tool_name": "old", "arguments": '{"a":1}'}
        ]
        assert legacy.response["finish_reason"] == "tool-calls"
        reused = stream(
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}
                    ]
                }
            ),
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "b", "function": {"name": "g", "arguments": "[]"}}
                    ]
                }
            ),
        )
        assert reused.response is not None
        assert [p["tool_call_id"] for p in reused.response["content"]] == ["a", "b"]

    def test_groq_usage_and_refusal(self) -> None:
        result = stream(
            chunk({"refusal": "No."}),
            chunk(
                {},
                "stop",
                x_groq={
                    "id": "req_1",
                    "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
                },
            ),
        )
        assert result.response is not None
        assert result.response["content"] == [{"type": "refusal", "text": "No."}]
        assert result.usage is not None and result.usage["total_tokens"] == 6

    def test_audio_matches_non_streamed(self) -> None:
        first, second = (
            base64.b64encode(b"\1" * 300).decode(),
            base64.b64encode(b"\2" * 600).decode(),
        )
        result = stream(
            chunk({"audio": {"id": "audio_1", "transcript": "Hel", "data": first}}),
            chunk({"audio": {"transcript": "lo", "data": second}}),
            chunk({"audio": {"expires_at": 9}}, "stop"),
        )
        body = load("openai_chat_text_response.json")
        body["choices"][0]["message"].update(
            content=None,
            audio={
                "id": "audio_1",
                "data": base64.b64encode(b"\0" * 900).decode(),
                "expires_at": 9,
                "transcript": "Hello",
            },
        )
        expected = CODEC.normalize_response(body)
        assert result.response is not None and expected.response is not None
        assert (
            result.response["content"]
            == expected.response["content"]
            == [{"type": "file", "media_type": "audio/*", "size_bytes": 900, "transcript": "Hello"}]
        )
        assert first[:20] not in dumped(result.response)

    def test_global_cap_cuts_at_character_boundary_and_keeps_tool_calls(self) -> None:
        # Three runs of 9,000 three-byte characters: the second crosses the 50,000-byte cap.
        piece = "€" * 1000
        items = [chunk({"content": piece}) for _ in range(9)]
        items += [chunk({"reasoning_content": piece}) for _ in range(9)]
        items += [chunk({"content": piece}) for _ in range(9)]
        items.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "late",
                            "function": {"name": "f", "arguments": '{"x":1}'},
                        }
                    ]
                }
            )
        )
        items.append(chunk({}, "tool_calls"))
        result = stream(*items)
        assert result.response is not None
        text, reasoning, tail, call = result.response["content"]
        kept = (MAX_STREAM_TEXT_BYTES - 27_000) // 3
        assert text == {"type": "text", "text": "€" * 9000}
        assert reasoning == {"type": "reasoning", "text": "€" * kept + "…", "text_length": 9000}
        assert tail == {"type": "text", "text": "…", "text_length": 9000}
        assert call == {
            "type": "tool-call",
            "tool_call_id": "late",
            "tool_name": "f",
            "arguments": "",
            "arguments_length": 7,
            "arguments_truncated": True,
        }
        assert len(result.response["warnings"]) == 1
        assert summary(result)["warning_count"] == 1

    def test_tool_arguments_keep_what_fits(self) -> None:
        filler = "x" * (MAX_STREAM_TEXT_BYTES - 10)
        result = stream(
            chunk({"content": filler[:25_000]}),
            chunk({"content": filler[25_000:]}),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "c",
                            "function": {"name": "f", "arguments": '{"query": "cats"}'},
                        }
                    ]
                }
            ),
        )
        assert result.response is not None
        call = result.response["content"][-1]
        assert call["arguments"] == '{"query": ' and call["arguments_truncated"] is True
        assert call["arguments_length"] == 17

    @pytest.mark.parametrize(
        "data",
        [
            "",
            "null",
            "[DONE]  ",
            '"text"',
            '{"choices": 5, "usage": [], "model": 1}',
            '{"choices": [null, 3, {"delta": null}, {"index": "0", "delta": {"content": 5}}]}',
            '{"choices": [{"index": 0, "delta": {"tool_calls": [null, {"index": true}]}}]}',
            '{"choices": [{"index": 0, "delta": {"tool_calls": [{"function": 3}]}}]}',
            '{"choices": [{"index": 0, "delta": {"audio": {"data": 5, "transcript": null}}}]}',
            '{"error": null, "choices": []}',
            '{"error": "boom"}',
        ],
    )
    def test_garbage_events_never_raise(self, data: str) -> None:
        assembler = CODEC.new_stream()
        assembler.feed(SSEEvent("message", data))
        result = assembler.finish()
        assert result.response is not None and isinstance(result.response["content"], list)


class TestErrorPayload:
    def test_400(self) -> None:
        assert CODEC.error_payload(400, load("openai_error_400.json")) == {
            "message": "Invalid value for 'temperature': expected a number between 0 and 2.",
            "type": "invalid_request_error",
            "provider_title": "Bad Request",
            "provider_status": 400,
            "is_retryable": False,
            "code": "invalid_value",
            "param": "temperature",
        }

    def test_429_is_retryable(self) -> None:
        payload = CODEC.error_payload(429, load("openai_error_429.json"))
        assert payload["is_retryable"] is True
        assert payload["type"] == "tokens" and payload["code"] == "rate_limit_exceeded"
        assert payload["provider_title"] == "Too Many Requests"

    def test_500(self) -> None:
        payload = CODEC.error_payload(500, load("openai_error_500.json"))
        assert payload["type"] == "server_error" and payload["is_retryable"] is True
        assert "code" not in payload

    @pytest.mark.parametrize(
        ("body", "message", "kind"),
        [
            ({"error": "model 'llama9' not found"}, "model 'llama9' not found", "http_error"),
            (
                {"object": "error", "message": "bad", "type": "BadRequestError", "code": 400},
                "bad",
                "BadRequestError",
            ),
            ({"detail": "Not Found"}, "Not Found", "http_error"),
            ({"error": {"code": "model_not_found", "message": "nope"}}, "nope", "model_not_found"),
            (None, "404 Not Found", "http_error"),
            ("oops", "404 Not Found", "http_error"),
            ({"error": [1]}, "404 Not Found", "http_error"),
        ],
    )
    def test_compatible_servers_and_garbage(self, body: Any, message: str, kind: str) -> None:
        payload = CODEC.error_payload(404, body)
        assert (payload["message"], payload["type"]) == (message, kind)
        assert payload["provider_status"] == 404 and payload["is_retryable"] is False


PLAIN_DELTAS: list[list[dict[str, Any]]] = [
    [{"role": "assistant", "content": ""}, {"content": "Hel"}, {"content": "lo"}, {}],
    [{"role": "assistant"}, {"content": None}, {"content": "x", "refusal": None}],
    [{"content": "a"}, {"refusal": "I can't"}, {"content": "b"}],  # a refusal run between
    [{"content": 5}, {"content": ["not", "parts"]}, {"role": None, "content": "ok"}],
    [{"role": "assistant", "content": [{"type": "text", "text": "parts"}]}, {"content": "!"}],
]


@pytest.mark.parametrize("deltas", PLAIN_DELTAS)
def test_plain_text_deltas_assemble_as_the_general_path_does(deltas: list[dict[str, Any]]) -> None:
    # Plain deltas take a shortcut; the same deltas with one more (empty) field take the
    # general path. Both must give the same parts, returns and counts.
    from chatdebug.instrument.normalize._openai_chat_content import ChatContent, absorb
    from chatdebug.instrument.normalize._openai_content import StreamStats

    def assemble(extra: dict[str, Any]) -> tuple[Any, list[bool], StreamStats]:
        content, stats = ChatContent(None), StreamStats()
        returns = [absorb(content, {**delta, **extra}, stats) for delta in deltas]
        return content.builder.parts(), returns, stats

    shortcut = assemble({})
    general = assemble({"tool_calls": None})
    assert shortcut == general
    assert shortcut[0], "something was assembled"


class TestServiceTier:
    """The tier that served the call is kept in the step metadata (it is priced)."""

    def test_response(self) -> None:
        body = load("openai_chat_text_response.json")
        assert CODEC.normalize_response(body).metadata == {"service_tier": "default"}
        body["service_tier"] = "flex"
        assert CODEC.normalize_response(body).metadata["service_tier"] == "flex"

    @pytest.mark.parametrize("tier", [None, 3, "", "x" * 65])
    def test_missing_or_bad_tier_is_not_recorded(self, tier: Any) -> None:
        body = load("openai_chat_text_response.json")
        body["service_tier"] = tier
        assert "service_tier" not in CODEC.normalize_response(body).metadata

    def test_stream_keeps_the_last_chunk_tier(self) -> None:
        result, _ = run(CODEC.new_stream(), raw("openai_chat_text_stream.sse"))
        assert result.metadata["service_tier"] == "default"
        result = stream(
            chunk({"content": "Hi"}, service_tier="auto"),
            chunk({}, "stop", service_tier="flex"),
            chunk(choices=[], usage={"prompt_tokens": 3, "completion_tokens": 1}),
        )
        assert result.metadata["service_tier"] == "flex"
        assert "service_tier" not in stream(chunk({"content": "Hi"}, "stop")).metadata
