"""Anthropic Messages codec: requests, non-streamed responses, HTTP errors, fixtures."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from anthropic.types import Message, RawMessageStreamEvent, message_create_params
from anthropic.types.shared import ErrorResponse
from pydantic import TypeAdapter

from chatdebug.instrument.normalize._payloads import MAX_TEXT_LENGTH
from chatdebug.instrument.normalize._sse import SSEParser
from chatdebug.instrument.normalize.anthropic import AnthropicMessagesCodec

FIXTURES = Path(__file__).parent / "fixtures"
CODEC = AnthropicMessagesCodec()


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"anthropic_{name}.json").read_text())


def dumped(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _force(value: Any) -> Any:
    # pydantic validates Iterable[...] fields lazily: walk them so every block is checked.
    if isinstance(value, Mapping):
        return {k: _force(v) for k, v in value.items()}
    if isinstance(value, list | tuple | Iterator) or type(value).__name__ == "ValidatorIterator":
        return [_force(v) for v in value]
    return value


class TestFixturesMatchSDK:
    """Every fixture parses with the real SDK's models, so the wire shapes are real."""

    @pytest.mark.parametrize("path", sorted(FIXTURES.glob("anthropic_*_request.json")), ids=str)
    def test_request(self, path: Path) -> None:
        body = json.loads(path.read_text())
        body.pop("stream", None)
        adapter = TypeAdapter(message_create_params.MessageCreateParamsNonStreaming)
        _force(adapter.validate_python(body))

    @pytest.mark.parametrize("path", sorted(FIXTURES.glob("anthropic_*_response.json")), ids=str)
    def test_response(self, path: Path) -> None:
        Message.model_validate_json(path.read_text())

    @pytest.mark.parametrize("path", sorted(FIXTURES.glob("anthropic_*_stream.sse")), ids=str)
    def test_stream(self, path: Path) -> None:
        adapter: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
        parser = SSEParser()
        events = parser.feed(path.read_bytes())
        assert events and parser.errors == 0
        for event in events:
            data = json.loads(event.data)
            assert data["type"] == event.event
            if event.event == "error":
                ErrorResponse.model_validate(data)
            elif event.event != "ping":
                adapter.validate_python(data)

    @pytest.mark.parametrize("path", sorted(FIXTURES.glob("anthropic_error_*.json")), ids=str)
    def test_error(self, path: Path) -> None:
        ErrorResponse.model_validate_json(path.read_text())


class TestRequest:
    def test_text_with_system_string_and_options(self) -> None:
        out = CODEC.normalize_request(load("text_request"))
        assert out["messages"] == [
            {"role": "system", "parts": [{"type": "text", "text": "You are a terse assistant."}]},
            {"role": "user", "parts": [{"type": "text", "text": "Say hello in French."}]},
        ]
        assert out["options"] == {
            "max_output_tokens": 1024,
            "temperature": 0.7,
            "stop": ["\n\nHuman:"],
        }
        assert out["model"] == "claude-sonnet-4-5-20250929"
        assert out["stream"] is True
        assert out["tools"] == []
        assert out["provider_option_count"] == 2  # metadata, service_tier: counted, not stored
        assert "u-7" not in dumped(out)

    def test_system_blocks(self) -> None:
        out = CODEC.normalize_request(load("cache_request"))
        system = out["messages"][0]
        assert system["role"] == "system"
        assert [p["text"][:20] for p in system["parts"]] == [
            "You are a literary a",
            "Full text of Pride a",
        ]
        assert out["messages"][1] == {
            "role": "user",
            "parts": [{"type": "text", "text": "Summarise chapter 1."}],
        }
        assert "provider_option_count" not in out
        assert "stream" not in out

    def test_multi_turn_tools_and_results(self) -> None:
        out = CODEC.normalize_request(load("tools_request"))
        assert [m["role"] for m in out["messages"]] == ["user", "assistant", "tool", "user"]
        assistant = out["messages"][1]["parts"]
        assert assistant[1] == {
            "type": "tool-call",
            "tool_call_id": "toolu_01A",
            "tool_name": "get_weather",
            "arguments": '{"location":"Paris, France","unit":"celsius"}',
        }
        assert assistant[2]["arguments"] == '{"url":"https://example.com"}'
        assert out["messages"][2]["parts"] == [
            {
                "type": "tool-result",
                "tool_call_id": "toolu_01A",
                "result": "Weather service unavailable",
                "is_error": True,
            },
            {
                "type": "tool-result",
                "tool_call_id": "toolu_01B",
                "result": "Screenshot taken.\n[media output: image/png]",
            },
        ]
        assert out["messages"][3]["parts"] == [
            {"type": "text", "text": "Try the weather again please."}
        ]
        assert "iVBOR" not in dumped(out)  # the PNG's base64

    def test_tools_and_tool_choice(self) -> None:
        out = CODEC.normalize_request(load("tools_request"))
        weather, _, search = out["tools"]
        assert weather["type"] == "function"
        assert weather["name"] == "get_weather"
        assert weather["description"] == "Get the current weather in a given location"
        assert weather["has_input_schema"] is True
        assert weather["input_schema"]["required"] == ["location"]
        assert search == {
            "type": "web_search_20250305",
            "name": "web_search",
            "has_input_schema": False,
            "id": "anthropic.web_search_20250305",
        }
        assert out["tool_choice"] == "auto"
        assert out["options"]["parallel_tool_calls"] is False

    @pytest.mark.parametrize(
        ("choice", "expected"),
        [
            ({"type": "auto"}, "auto"),
            ({"type": "any"}, "any"),
            ({"type": "none"}, "none"),
            ({"type": "tool", "name": "get_weather"}, "tool:get_weather"),
        ],
    )
    def test_tool_choice_forms(self, choice: dict[str, Any], expected: str) -> None:
        body = {"model": "m", "max_tokens": 1, "messages": [], "tool_choice": choice}
        assert CODEC.normalize_request(body)["tool_choice"] == expected

    def test_images_and_documents_keep_no_bytes(self) -> None:
        body = load("images_request")
        out = CODEC.normalize_request(body)
        parts = out["messages"][0]["parts"]
        png = body["messages"][0]["content"][0]["source"]["data"]
        assert parts[0] == {
            "type": "file",
            "media_type": "image/png",
            "source_type": "base64",
            "size_bytes": 8 + 1024,
        }
        assert parts[1] == {
            "type": "file",
            "source_type": "url",
            "url": "https://upload.example.org/cat.jpg",
        }
        assert parts[2] == {"type": "file", "source_type": "file"}
        assert parts[3]["media_type"] == "application/pdf"
        assert parts[3]["filename"] == "report.pdf"
        assert parts[3]["size_bytes"] == 9 + 1024 + 6
        assert parts[4]["media_type"] == "application/pdf"
        assert parts[5] == {
            "type": "file",
            "media_type": "text/plain",
            "source_type": "text",
            "size_bytes": 19,
        }
        text = dumped(out)
        for secret in (png[:40], png[-40:], "s3cr3t", "token=abc", "JVBER", "grass is green"):
            assert secret not in text

    @pytest.mark.parametrize(
        ("url", "kept"),
        [
            (
                "https://bob:hunter2@img.example.org:8443/a.png?x=1#f",
                "https://img.example.org:8443/a.png",
            ),
            ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUg", None),
            ("ftp://files.example.org/a.png", None),
            ("http://[::1", None),
        ],
    )
    def test_image_urls_keep_no_secrets(self, url: str, kept: str | None) -> None:
        block = {"type": "image", "source": {"type": "url", "url": url}}
        body = {"messages": [{"role": "user", "content": [block]}]}
        part = CODEC.normalize_request(body)["messages"][0]["parts"][0]
        assert part.get("url") == kept
        assert part["source_type"] == "url"

    def test_thinking_config_and_history(self) -> None:
        out = CODEC.normalize_request(load("thinking_request"))
        assert out["options"]["thinking"] == {"type": "enabled", "budget_tokens": 10000}
        assert out["tool_choice"] == "tool:get_weather"
        parts = out["messages"][1]["parts"]
        assert parts == [
            {"type": "reasoning", "text": "The user wants the weather.", "has_signature": True},
            {"type": "reasoning", "redacted": True},
        ]
        assert "EqQB" not in dumped(out) and "EmwK" not in dumped(out)

    def test_output_config_and_unknown_keys(self) -> None:
        body = {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}],
            "output_config": {"effort": "high", "format": {"type": "json_schema", "schema": {}}},
            "top_k": 5,
            "top_p": 0.9,
            "container": "c-1",
            "inference_geo": None,
            "some_future_flag": True,
        }
        out = CODEC.normalize_request(body)
        assert out["options"] == {
            "max_output_tokens": 5,
            "top_p": 0.9,
            "top_k": 5,
            "reasoning_effort": "high",
            "response_format": {"type": "json_schema"},
        }
        assert out["provider_option_count"] == 2

    def test_user_message_of_only_tool_results(self) -> None:
        body = {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42"}],
                }
            ]
        }
        out = CODEC.normalize_request(body)
        assert out["messages"] == [
            {
                "role": "tool",
                "parts": [{"type": "tool-result", "tool_call_id": "t1", "result": "42"}],
            }
        ]

    def test_long_text_and_arguments_are_bounded(self) -> None:
        long = "é" * (MAX_TEXT_LENGTH + 1)
        body = {
            "messages": [
                {"role": "user", "content": long},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"x": long}}],
                },
            ]
        }
        user, assistant = CODEC.normalize_request(body)["messages"]
        part = user["parts"][0]
        assert part["text_length"] == MAX_TEXT_LENGTH + 1
        assert part["text"] == "é" * MAX_TEXT_LENGTH + "…"
        call = assistant["parts"][0]
        assert len(call["arguments"]) == MAX_TEXT_LENGTH + 1
        assert call["arguments_length"] == MAX_TEXT_LENGTH + 1 + len('{"x":""}')

    @pytest.mark.parametrize(
        "body",
        [
            None,
            [],
            "text",
            42,
            {},
            {"messages": "nope", "system": 5, "tools": [1, None, {"type": 3}], "tool_choice": 3},
            {"messages": [None, 1, {"role": 5, "content": {"a": 1}}, {"content": [None, 1, {}]}]},
            {"messages": [{"role": "user", "content": [{"type": "image", "source": "x"}]}]},
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "content": 9}]}]},
            {"system": [{"type": "text", "text": None}], "thinking": "on", "stop_sequences": 5},
            {"max_tokens": True, "temperature": "hot", "output_config": {"format": 1}},
        ],
    )
    def test_garbage_never_raises(self, body: Any) -> None:
        out = CODEC.normalize_request(body)
        assert isinstance(out["messages"], list) and isinstance(out["options"], dict)
        json.dumps(out)

    def test_model_and_stream_detection(self) -> None:
        assert CODEC.request_model({"model": "claude-x"}) == "claude-x"
        assert CODEC.request_model({"model": 5}) is None
        assert CODEC.request_model(None) is None
        assert CODEC.is_stream_request({"stream": True}) is True
        assert CODEC.is_stream_request({"stream": "yes"}) is False
        assert CODEC.is_stream_request([]) is False


class TestResponse:
    def test_text(self) -> None:
        result = CODEC.normalize_response(load("text_response"))
        assert result.response == {
            "content": [
                {"type": "text", "text": "Bonjour ! Comment puis-je vous aider aujourd'hui ?"}
            ],
            "finish_reason": "stop",
            "provider_finish_reason": "end_turn",
            "usage": {
                "input_tokens": 14,
                "output_tokens": 15,
                "total_tokens": 29,
                "reasoning_tokens": 0,
                "cache_creation_tokens": 0,
                "cache_read_tokens": 0,
            },
            "warnings": [],
            "model": "claude-sonnet-4-5-20250929",
            "id": "msg_01TextXYZ",
        }
        assert result.usage == result.response["usage"]
        assert result.response_model == "claude-sonnet-4-5-20250929"
        assert result.finish_reasons == ["end_turn"]
        assert result.error is None and result.complete

    @pytest.mark.parametrize(
        ("raw", "neutral"),
        [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("tool_use", "tool-calls"),
            ("refusal", "content-filter"),
            ("pause_turn", "other"),
            ("something_new", "other"),
            (None, "unknown"),
        ],
    )
    def test_finish_reasons(self, raw: str | None, neutral: str) -> None:
        body = load("text_response") | {"stop_reason": raw}
        result = CODEC.normalize_response(body)
        assert result.response is not None
        assert result.response["finish_reason"] == neutral
        assert result.response["provider_finish_reason"] == raw
        assert result.finish_reasons == ([raw] if raw else [])

    def test_stop_sequence_and_refusal_details(self) -> None:
        body = load("text_response") | {
            "stop_reason": "refusal",
            "stop_sequence": "END",
            "stop_details": {"type": "refusal", "category": "cyber", "explanation": None},
        }
        response = CODEC.normalize_response(body).response
        assert response is not None
        assert response["stop_sequence"] == "END"
        assert response["stop_details"] == {"type": "refusal", "category": "cyber"}

    def test_tool_use(self) -> None:
        result = CODEC.normalize_response(load("tools_response"))
        assert result.response is not None
        assert result.response["content"][1] == {
            "type": "tool-call",
            "tool_call_id": "toolu_01C",
            "tool_name": "get_weather",
            "arguments": '{"location":"Paris, France","unit":"celsius"}',
        }
        assert result.response["finish_reason"] == "tool-calls"

    def test_thinking_keeps_no_signature(self) -> None:
        result = CODEC.normalize_response(load("thinking_response"))
        assert result.response is not None
        content = result.response["content"]
        assert [p["type"] for p in content] == ["reasoning", "text", "tool-call"]
        assert content[0]["has_signature"] is True
        assert "ErUB" not in dumped(result.response)
        assert result.usage is not None and result.usage["reasoning_tokens"] == 96

    def test_cache_tokens(self) -> None:
        created = CODEC.normalize_response(load("cache_response")).usage
        read = CODEC.normalize_response(load("cache_read_response")).usage
        # input_tokens is the uncached part as Anthropic reports it; total adds cache.
        assert created == {
            "input_tokens": 21,
            "output_tokens": 18,
            "total_tokens": 21 + 18 + 2051,
            "reasoning_tokens": 0,
            "cache_creation_tokens": 2051,
            "cache_read_tokens": 0,
        }
        assert read is not None
        assert read["cache_read_tokens"] == 2051 and read["total_tokens"] == 21 + 9 + 2051

    def test_web_search_server_tool(self) -> None:
        result = CODEC.normalize_response(load("web_search_response"))
        assert result.response is not None
        content = result.response["content"]
        assert [p["type"] for p in content] == [
            "text", "tool-call", "tool-result", "source", "source", "text", "source"
        ]  # fmt: skip
        assert content[1]["provider_executed"] is True
        assert content[1]["arguments"] == '{"query":"Claude Shannon"}'
        assert content[2]["tool_name"] == "web_search"
        assert content[2]["tool_call_id"] == "srvtoolu_01W"
        assert content[2]["provider_executed"] is True
        assert content[3] == {
            "type": "source",
            "source_type": "url",
            "title": "Claude Shannon - Wikipedia",
            "url": "https://en.wikipedia.org/wiki/Claude_Shannon",
        }
        assert content[6]["title"] == "Claude Shannon - Wikipedia"
        text = dumped(result.response)
        assert "encrypted" not in text and "EqgfCioI" not in text and "Eo8BCioI" not in text

    def test_server_tool_error_and_code_execution(self) -> None:
        body = load("text_response") | {
            "content": [
                {
                    "type": "web_search_tool_result",
                    "tool_use_id": "s1",
                    "content": {
                        "type": "web_search_tool_result_error",
                        "error_code": "max_uses_exceeded",
                    },
                },
                {
                    "type": "code_execution_tool_result",
                    "tool_use_id": "s2",
                    "content": {
                        "type": "code_execution_result",
                        "stdout": "4\n",
                        "stderr": "",
                        "return_code": 0,
                        "content": [],
                    },
                },
            ]
        }
        Message.model_validate(body)
        response = CODEC.normalize_response(body).response
        assert response is not None
        error, code = response["content"]
        assert error["is_error"] is True and error["result"] == "max_uses_exceeded"
        assert code["tool_name"] == "code_execution"
        assert json.loads(code["result"])["stdout"] == "4\n"

    def test_long_text_bounded(self) -> None:
        body = load("text_response") | {"content": [{"type": "text", "text": "x" * 10_001}]}
        response = CODEC.normalize_response(body).response
        assert response is not None
        part = response["content"][0]
        assert part["text_length"] == 10_001 and len(part["text"]) == 10_001

    def test_error_object_in_body(self) -> None:
        result = CODEC.normalize_response(load("error_529"))
        assert result.error == {
            "message": "Overloaded",
            "type": "overloaded_error",
            "is_retryable": True,
            "request_id": "req_011CSHoEeqs5C35K2UUqR7G0",
        }
        assert result.response is not None and result.response["finish_reason"] == "error"

    @pytest.mark.parametrize(
        "body",
        [
            None,
            "x",
            [],
            {},
            {"content": "text", "usage": "many", "stop_reason": 5, "model": 7},
            {"content": [None, 1, {"type": None}, {"type": "tool_use", "input": {1, 2}}]},
            {"content": [{"type": "text", "text": 5, "citations": [1, {"type": 2}]}]},
            {
                "content": [
                    {"type": "web_fetch_tool_result", "content": {"type": "web_fetch_result"}}
                ]
            },
            {"usage": {"input_tokens": "1", "output_tokens": True}, "stop_details": "x"},
        ],
    )
    def test_garbage_never_raises(self, body: Any) -> None:
        result = CODEC.normalize_response(body)
        assert result.response is not None
        json.dumps(result.response, default=str)


class TestErrorPayload:
    @pytest.mark.parametrize(
        ("status", "error_type", "title", "retryable"),
        [
            (400, "invalid_request_error", "Bad Request", False),
            (429, "rate_limit_error", "Too Many Requests", True),
            (529, "overloaded_error", "Overloaded", True),
        ],
    )
    def test_anthropic_error_bodies(
        self, status: int, error_type: str, title: str, retryable: bool
    ) -> None:
        body = load(f"error_{status}")
        payload = CODEC.error_payload(status, body)
        assert payload == {
            "message": body["error"]["message"],
            "type": error_type,
            "provider_title": title,
            "provider_status": status,
            "is_retryable": retryable,
            "request_id": body["request_id"],
        }

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (None, "502 Bad Gateway"),
            ("upstream connect error", "upstream connect error"),
            ([], "502 Bad Gateway"),
            ({"error": "gateway says no"}, "gateway says no"),
            ({"message": "proxy failure"}, "proxy failure"),
            ({"detail": "fastapi detail"}, "fastapi detail"),
            ({"error": {"message": 5, "type": None}}, "502 Bad Gateway"),
        ],
    )
    def test_other_bodies(self, body: Any, message: str) -> None:
        payload = CODEC.error_payload(502, body)
        assert payload["message"] == message
        assert payload["type"] == "http_error"
        assert payload["is_retryable"] is True
