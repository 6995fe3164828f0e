"""Gemini codec: detection, requests, non-streamed responses, HTTP errors, fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.genai import types

from chatdebug.instrument.normalize import detect
from chatdebug.instrument.normalize._gemini_parts import FINISH_REASONS, field, usage_from
from chatdebug.instrument.normalize._payloads import MAX_TEXT_LENGTH
from chatdebug.instrument.normalize._sse import SSEParser
from chatdebug.instrument.normalize.gemini import GeminiAuxCodec, GeminiCodec, gemini_route

FIXTURES = Path(__file__).parent / "fixtures"
GOOGLE_AI = "generativelanguage.googleapis.com"
VERTEX = "us-central1-aiplatform.googleapis.com"
FLASH_PATH = "/v1beta/models/gemini-2.0-flash:generateContent"
CODEC = GeminiCodec("gemini-2.0-flash")


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"gemini_{name}.json").read_text())


def dumped(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def request(body: dict[str, Any]) -> dict[str, Any]:
    return CODEC.normalize_request(body)


def turn(*parts: dict[str, Any], role: str | None = "user") -> dict[str, Any]:
    content: dict[str, Any] = {"parts": list(parts)}
    if role is not None:
        content["role"] = role
    return content


def answer(*parts: dict[str, Any], finish: str | None = "STOP", **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": list(parts)}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], **extra}


# -- the fixtures are real wire shapes ---------------------------------------------------


class TestFixturesMatchSDK:
    """Every fixture validates against the google-genai SDK's models, which forbid
    unknown fields, so the hand-written shapes are the API's."""

    @pytest.mark.parametrize("path", sorted(FIXTURES.glob("gemini_*_request.json")), ids=str)
    def test_request(self, path: Path) -> None:
        body = json.loads(path.read_text())
        assert body["contents"]
        for content in body["contents"]:
            types.Content.model_validate(content)
        system = field(body, "systemInstruction")
        if system is not None:
            types.Content.model_validate(system)
        for tool in body.get("tools", []):
            types.Tool.model_validate(tool)
        if "toolConfig" in body:
            types.ToolConfig.model_validate(body["toolConfig"])
        config = field(body, "generationConfig")
        if config is not None:
            types.GenerationConfig.model_validate(config)
        for setting in body.get("safetySettings", []):
            types.SafetySetting.model_validate(setting)

    @pytest.mark.parametrize("path", sorted(FIXTURES.glob("gemini_*_response.json")), ids=str)
    def test_response(self, path: Path) -> None:
        types.GenerateContentResponse.model_validate_json(path.read_text())

    @pytest.mark.parametrize("path", sorted(FIXTURES.glob("gemini_*_stream.sse")), ids=str)
    def test_stream(self, path: Path) -> None:
        parser = SSEParser()
        events = parser.feed(path.read_bytes())
        assert events and parser.errors == 0
        for event in events:
            data = json.loads(event.data)
            if "error" in data:
                assert set(data["error"]) == {"code", "message", "status"}
            else:
                types.GenerateContentResponse.model_validate(data)

    def test_array_stream(self) -> None:
        chunks = load("array_stream")
        assert isinstance(chunks, list) and len(chunks) == 4
        for chunk in chunks:
            types.GenerateContentResponse.model_validate(chunk)

    @pytest.mark.parametrize("path", sorted(FIXTURES.glob("gemini_error_*.json")), ids=str)
    def test_error(self, path: Path) -> None:
        error = json.loads(path.read_text())["error"]
        assert isinstance(error["code"], int) and error["status"].isupper()


# -- detection ---------------------------------------------------------------------------


GEN = "gemini.generate_content"
EMBED = "gemini.embed_content"
COUNT = "gemini.count_tokens"
VERTEX_MODEL = "/v1/projects/my-proj/locations/us-central1/publishers/google/models"


@pytest.mark.parametrize(
    ("host", "path", "codec", "operation", "provider", "model", "stream"),
    [
        (GOOGLE_AI, "/v1beta/models/gemini-2.5-flash:generateContent", GEN, "generate_content",
         "gcp.gemini", "gemini-2.5-flash", False),
        (GOOGLE_AI, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", GEN,
         "generate_content", "gcp.gemini", "gemini-2.5-flash", True),
        (GOOGLE_AI, "/v1/models/gemini-2.0-flash:streamGenerateContent", GEN, "generate_content",
         "gcp.gemini", "gemini-2.0-flash", True),
        (GOOGLE_AI, "/v1beta/tunedModels/my-tuned-x1:generateContent", GEN, "generate_content",
         "gcp.gemini", "tunedModels/my-tuned-x1", False),
        (GOOGLE_AI, "/v1beta/models/gemini-2.0-flash:countTokens", COUNT, "other", "gcp.gemini",
         "gemini-2.0-flash", False),
        (GOOGLE_AI, "/v1beta/models/text-embedding-004:embedContent", EMBED, "embeddings",
         "gcp.gemini", "text-embedding-004", False),
        (GOOGLE_AI, "/v1beta/models/gemini-embedding-001:batchEmbedContents", EMBED, "embeddings",
         "gcp.gemini", "gemini-embedding-001", False),
        (VERTEX, f"{VERTEX_MODEL}/gemini-2.0-flash:generateContent", GEN, "generate_content",
         "gcp.vertex_ai", "gemini-2.0-flash", False),
        (VERTEX, f"{VERTEX_MODEL}/gemini-2.0-flash:streamGenerateContent?alt=sse", GEN,
         "generate_content", "gcp.vertex_ai", "gemini-2.0-flash", True),
        (VERTEX, "/v1beta1/projects/p/locations/us-central1/publishers/google/models/"
         "gemini-2.5-pro:countTokens", COUNT, "other", "gcp.vertex_ai", "gemini-2.5-pro", False),
        ("aiplatform.googleapis.com", "/v1/projects/p/locations/global/publishers/google/models/"
         "gemini-2.5-flash:generateContent", GEN, "generate_content", "gcp.vertex_ai",
         "gemini-2.5-flash", False),
        # Vertex AI express mode (an API key, no project) and a tuned-model endpoint.
        ("aiplatform.googleapis.com", "/v1/publishers/google/models/gemini-2.5-flash:"
         "generateContent", GEN, "generate_content", "gcp.vertex_ai", "gemini-2.5-flash", False),
        (VERTEX, "/v1/projects/p/locations/us-central1/endpoints/1234567890:generateContent", GEN,
         "generate_content", "gcp.vertex_ai", "endpoints/1234567890", False),
        # Loopback and gateways: the format's owner.
        ("127.0.0.1:8123", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", GEN,
         "generate_content", "gcp.gemini", "gemini-2.5-flash", True),
        ("localhost", "/gemini/v1beta/models/Gemini-2.5-Flash:GENERATECONTENT", GEN,
         "generate_content", "gcp.gemini", "Gemini-2.5-Flash", False),
        ("gateway.example.com", "/vertex_ai/v1/projects/p/locations/l/publishers/google/models/"
         "gemini-2.0-flash:generateContent", GEN, "generate_content", "gcp.vertex_ai",
         "gemini-2.0-flash", False),
        # Not a Gemini method, or not a model resource: generic.
        (GOOGLE_AI, "/v1beta/models/gemini-2.0-flash", "generic", "other", "gcp.gemini", None,
         False),
        (GOOGLE_AI, "/v1beta/models/gemini-2.0-flash:batchGenerateContent", "generic", "other",
         "gcp.gemini", None, False),
        (GOOGLE_AI, "/v1beta/cachedContents/abc:generateContent", "generic", "other",
         "gcp.gemini", None, False),
        ("127.0.0.1", "/v1beta/models/x:predict", "generic", "other", "unknown", None, False),
        ("127.0.0.1", "/v1beta/models:generateContent", "generic", "other", "unknown", None,
         False),
        (GOOGLE_AI, "/v1beta/openai/chat/completions", "openai.chat_completions", "chat",
         "gcp.gemini", None, False),
    ],
)  # fmt: skip
def test_detection(
    host: str,
    path: str,
    codec: str,
    operation: str,
    provider: str,
    model: str | None,
    stream: bool,
) -> None:
    detection = detect("POST", host, path)
    assert detection.codec.name == codec
    assert detection.codec.operation_name == operation
    assert detection.provider == provider
    assert detection.codec.request_model(None) == model
    assert detection.codec.is_stream_request({"stream": False}) is stream


def test_detection_needs_post_and_makes_a_codec_per_request() -> None:
    assert detect("GET", GOOGLE_AI, FLASH_PATH).codec.name == "generic"
    first = detect("POST", GOOGLE_AI, FLASH_PATH).codec
    second = detect("POST", GOOGLE_AI, "/v1beta/models/gemini-2.5-pro:streamGenerateContent").codec
    assert isinstance(first, GeminiCodec) and isinstance(second, GeminiCodec)
    assert (first.model, first.stream) == ("gemini-2.0-flash", False)
    assert (second.model, second.stream) == ("gemini-2.5-pro", True)
    assert "gemini-2.0-flash" in repr(first)
    aux = detect("POST", GOOGLE_AI, "/v1beta/models/m:countTokens").codec
    assert isinstance(aux, GeminiAuxCodec) and "countTokens" in repr(aux)


@pytest.mark.parametrize(
    "route",
    ["", ":", "/:generateContent", "models/:generateContent", "/v1/models/x:", "/v1/x:y:z",
     "/v1/models/x:generateContent/extra"],
)  # fmt: skip
def test_route_rejects_odd_paths(route: str) -> None:
    assert gemini_route(route) is None


# -- requests ----------------------------------------------------------------------------


class TestRequest:
    def test_text_with_options(self) -> None:
        out = request(load("text_request"))
        assert out == {
            "messages": [
                {"role": "user", "parts": [{"type": "text", "text": "Say hello in French."}]}
            ],
            "tools": [],
            "options": {
                "temperature": 0.7,
                "top_p": 0.95,
                "top_k": 40,
                "max_output_tokens": 1024,
                "n": 1,
                "stop": ["\n\nUser:"],
            },
            "model": "gemini-2.0-flash",
            "stream": False,
            "provider_option_count": 1,  # safetySettings: counted, not stored
        }
        assert "HARM_CATEGORY" not in dumped(out)

    def test_the_url_decides_model_and_stream(self) -> None:
        codec = detect("POST", GOOGLE_AI, "/v1beta/models/gemini-2.5-pro:streamGenerateContent")
        out = codec.codec.normalize_request({"model": "ignored", **load("text_request")})
        assert out["model"] == "gemini-2.5-pro" and out["stream"] is True

    def test_multi_turn_with_system_instruction_and_proto_names(self) -> None:
        out = request(load("chat_request"))
        assert out["messages"] == [
            {
                "role": "system",
                "parts": [
                    {"type": "text", "text": "You are a patient French tutor."},
                    {"type": "text", "text": "Answer in one sentence."},
                ],
            },
            {"role": "user", "parts": [{"type": "text", "text": "How do I say 'cat'?"}]},
            {"role": "assistant", "parts": [{"type": "text", "text": "'Cat' is 'le chat'."}]},
            {"role": "user", "parts": [{"type": "text", "text": "And 'dog'?"}]},
        ]
        assert out["options"] == {
            "max_output_tokens": 256,
            "temperature": 0.2,
            "presence_penalty": 0.1,
            "frequency_penalty": 0.2,
            "seed": 7,
            "response_mime_type": "text/plain",
            "thinking": {"budget_tokens": 0},
        }
        assert "response_format" not in out
        assert out["provider_option_count"] == 1  # cached_content
        assert "cachedContents/abc123" not in dumped(out)

    def test_tools_calls_and_results(self) -> None:
        out = request(load("tools_request"))
        assert [m["role"] for m in out["messages"]] == [
            "system",
            "user",
            "assistant",
            "tool",
            "user",
        ]
        assert out["messages"][2]["parts"] == [
            {
                "type": "tool-call",
                "tool_name": "get_weather",
                "arguments": '{"location":"Paris, France","unit":"celsius"}',
                "has_signature": True,
            },
            {
                "type": "tool-call",
                "tool_name": "get_weather",
                "arguments": '{"location":"London, UK","unit":"celsius"}',
            },
        ]
        assert out["messages"][3]["parts"] == [
            {
                "type": "tool-result",
                "tool_name": "get_weather",
                "result": '{"temperature":18,"condition":"sunny"}',
            },
            {
                "type": "tool-result",
                "tool_name": "get_weather",
                "result": '{"error":"Weather service unavailable"}',
            },
        ]
        signature = load("tools_request")["contents"][1]["parts"][0]["thoughtSignature"]
        assert signature[:20] not in dumped(out)

    def test_tool_definitions_and_choice(self) -> None:
        out = request(load("tools_request"))
        weather, time, search, code = out["tools"]
        assert weather["type"] == "function" and weather["name"] == "get_weather"
        assert weather["description"] == "Get the current weather in a given location"
        assert weather["has_input_schema"] is True
        assert weather["input_schema"]["required"] == ["location"]
        assert time["input_schema"] == {
            "type": "object",
            "properties": {"city": {"type": "string"}},
        }
        assert search == {
            "type": "provider-defined",
            "id": "gemini.googleSearch",
            "name": "googleSearch",
            "has_input_schema": False,
        }
        assert code["id"] == "gemini.codeExecution"
        assert out["tool_choice"] == "any"
        assert out["options"]["allowed_tools"] == ["get_weather", "get_time"]

    @pytest.mark.parametrize(
        ("config", "expected", "allowed"),
        [
            ({"mode": "AUTO"}, "auto", None),
            ({"mode": "NONE"}, "none", None),
            ({"mode": "VALIDATED"}, "validated", None),
            ({"mode": "ANY"}, "any", None),
            ({"mode": "ANY", "allowedFunctionNames": ["f"]}, "tool:f", None),
            ({"mode": "any", "allowed_function_names": ["f", "g"]}, "any", ["f", "g"]),
            ({"allowedFunctionNames": ["f"]}, None, None),
        ],
    )
    def test_tool_choice_forms(
        self, config: dict[str, Any], expected: str | None, allowed: list[str] | None
    ) -> None:
        out = request({"contents": [], "toolConfig": {"functionCallingConfig": config}})
        assert out.get("tool_choice") == expected
        assert out["options"].get("allowed_tools") == allowed

    def test_snake_case_tools(self) -> None:
        body = {
            "contents": [],
            "tools": [
                {"function_declarations": [{"name": "f", "parameters": {"type": "OBJECT"}}]},
                {"google_search": {}, "url_context": {}},
                {"code_execution": None},
            ],
        }
        assert [(t["type"], t["name"]) for t in request(body)["tools"]] == [
            ("function", "f"),
            ("provider-defined", "googleSearch"),
            ("provider-defined", "urlContext"),
        ]

    def test_thinking_and_response_formats(self) -> None:
        out = request(load("thinking_request"))
        assert out["options"] == {
            "thinking": {"budget_tokens": 2048, "include_thoughts": True},
            "max_output_tokens": 4096,
        }
        config: dict[str, Any] = {
            "thinkingConfig": {"thinkingLevel": "HIGH"},
            "responseMimeType": "application/json",
        }
        out = request({"contents": [], "generationConfig": config})
        assert out["options"] == {
            "reasoning_effort": "high",
            "response_mime_type": "application/json",
        }
        assert out["response_format"] == {"type": "json_object"}
        config = {"responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}}
        assert request({"generationConfig": config})["response_format"] == {"type": "json_schema"}
        config = {"responseMimeType": "text/x.enum"}
        assert request({"generationConfig": config})["response_format"] == {"type": "text/x.enum"}
        config = {
            "responseLogprobs": True,
            "mediaResolution": "MEDIA_RESOLUTION_LOW",
            "x": None,
        }
        assert request({"generationConfig": config})["provider_option_count"] == 2

    def test_media_keeps_no_bytes(self) -> None:
        body = load("images_request")
        out = request(body)
        png = body["contents"][0]["parts"][0]["inlineData"]["data"]
        assert out["messages"][0]["parts"] == [
            {
                "type": "file",
                "media_type": "image/png",
                "source_type": "base64",
                "size_bytes": 1032,
            },
            {
                "type": "file",
                "media_type": "application/pdf",
                "source_type": "uri",
                "url": "gs://my-bucket/reports/q3.pdf",
            },
            {
                "type": "file",
                "media_type": "image/jpeg",
                "source_type": "uri",
                "url": "https://storage.googleapis.com/b/cat.jpg",
            },
            {
                "type": "file",
                "media_type": "video/mp4",
                "source_type": "uri",
                "url": "https://generativelanguage.googleapis.com/v1beta/files/abc-123",
            },
            {"type": "text", "text": "Describe these."},
        ]
        assert out["options"]["response_modalities"] == ["TEXT", "IMAGE"]
        assert out["response_format"] == {"type": "json_schema"}
        text = dumped(out)
        for secret in (png[:40], png[-40:], "X-Goog-Signature", "abcdef0123", "svc%40p"):
            assert secret not in text

    @pytest.mark.parametrize(
        ("uri", "kept"),
        [
            ("https://bob:hunter2@files.example.org:8443/a.pdf?sig=1#f",
             "https://files.example.org:8443/a.pdf"),
            ("gs://bucket/path/obj.mp4", "gs://bucket/path/obj.mp4"),
            ("https://www.youtube.com/watch?v=9hE5-98ZeCg&si=tracking#t=3",
             "https://www.youtube.com/watch?v=9hE5-98ZeCg"),
            ("https://youtu.be/9hE5-98ZeCg?si=tracking", "https://youtu.be/9hE5-98ZeCg"),
            ("data:application/pdf;base64,JVBERi0xLjQK", None),
            ("file:///etc/passwd", None),
            ("http://[::1", None),
            (42, None),
        ],
    )  # fmt: skip
    def test_file_uris(self, uri: Any, kept: str | None) -> None:
        part = {"fileData": {"mimeType": "application/pdf", "fileUri": uri}}
        (out,) = request({"contents": [turn(part)]})["messages"][0]["parts"]
        assert out.get("url") == kept
        assert out["media_type"] == "application/pdf"

    def test_roles(self) -> None:
        body = {
            "contents": [
                turn({"text": "no role"}, role=None),
                turn(
                    {"functionResponse": {"name": "f", "id": "c1", "response": {}}}, role="function"
                ),
                turn({"text": "odd"}, role="narrator"),
                turn({"text": "a"}, {"functionResponse": {"name": "f", "response": {"ok": 1}}}),
            ]
        }
        messages = request(body)["messages"]
        assert [(m["role"], m.get("original_role")) for m in messages] == [
            ("user", None),
            ("tool", None),
            ("user", "narrator"),
            ("tool", None),
            ("user", None),
        ]
        assert messages[1]["parts"] == [
            {"type": "tool-result", "tool_call_id": "c1", "tool_name": "f", "result": "{}"}
        ]
        assert messages[4]["parts"] == [{"type": "text", "text": "a"}]

    def test_string_system_instruction_and_reasoning_parts(self) -> None:
        body = {
            "systemInstruction": "Be brief.",
            "contents": [
                turn({"text": "hi"}),
                turn(
                    {"text": "thinking…", "thought": True, "thoughtSignature": "c2ln"},
                    {"text": "hello"},
                    role="model",
                ),
            ],
        }
        messages = request(body)["messages"]
        assert messages[0] == {"role": "system", "parts": [{"type": "text", "text": "Be brief."}]}
        assert messages[2]["parts"] == [
            {"type": "reasoning", "text": "thinking…", "has_signature": True},
            {"type": "text", "text": "hello"},
        ]

    def test_code_execution_server_tools_and_unknown_parts(self) -> None:
        parts: list[Any] = [
            {"executableCode": {"language": "PYTHON", "code": "print(6*7)"}},
            {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "42\n"}},
            {"codeExecutionResult": {"outcome": "OUTCOME_FAILED", "output": "Traceback"}},
            {"toolCall": {"id": "t1", "toolType": "GOOGLE_SEARCH_WEB", "args": {"q": "x"}}},
            {"toolResponse": {"id": "t1", "toolType": "GOOGLE_SEARCH_WEB", "response": {"n": 2}}},
            {"videoMetadata": {"fps": 1}, "somethingNew": {"a": 1}},
            {"thought": True},
            "not a part",
        ]
        out = request({"contents": [turn(*parts, role="model")]})["messages"][0]["parts"]
        assert out == [
            {
                "type": "tool-call",
                "tool_name": "code_execution",
                "arguments": '{"language":"PYTHON","code":"print(6*7)"}',
                "provider_executed": True,
            },
            {
                "type": "tool-result",
                "tool_name": "code_execution",
                "result": "42\n",
                "provider_executed": True,
            },
            {
                "type": "tool-result",
                "tool_name": "code_execution",
                "result": "Traceback",
                "provider_executed": True,
                "is_error": True,
            },
            {
                "type": "tool-call",
                "tool_call_id": "t1",
                "tool_name": "GOOGLE_SEARCH_WEB",
                "arguments": '{"q":"x"}',
                "provider_executed": True,
            },
            {
                "type": "tool-result",
                "tool_call_id": "t1",
                "tool_name": "GOOGLE_SEARCH_WEB",
                "result": '{"n":2}',
                "provider_executed": True,
            },
            {"type": "unknown", "provider_type": "somethingNew"},
            {"type": "unknown", "provider_type": ""},
        ]

    def test_multimodal_function_response_keeps_no_bytes(self) -> None:
        response = {
            "name": "snapshot",
            "id": "call-9",
            "response": {"status": "ok"},
            "parts": [{"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}}],
        }
        out = request({"contents": [turn({"functionResponse": response})]})
        assert out["messages"][0]["parts"] == [
            {
                "type": "tool-result",
                "tool_call_id": "call-9",
                "tool_name": "snapshot",
                "result": '{"status":"ok"}\n[media output: image/jpeg]',
            }
        ]
        assert "/9j/" not in dumped(out)

    def test_long_text_arguments_and_results_are_bounded(self) -> None:
        long = "x" * (MAX_TEXT_LENGTH + 5)
        body = {
            "contents": [
                turn({"text": long}),
                turn({"functionCall": {"name": "f", "args": {"v": long}}}, role="model"),
                turn({"functionResponse": {"name": "f", "response": {"v": long}}}),
            ]
        }
        user, model, tool = request(body)["messages"]
        assert user["parts"][0]["text_length"] == MAX_TEXT_LENGTH + 5
        assert len(user["parts"][0]["text"]) == MAX_TEXT_LENGTH + 1
        assert model["parts"][0]["arguments_length"] == MAX_TEXT_LENGTH + 5 + len('{"v":""}')
        assert tool["parts"][0]["result_length"] == MAX_TEXT_LENGTH + 5 + len('{"v":""}')

    @pytest.mark.parametrize(
        "body",
        [
            None,
            [],
            "text",
            {"contents": "x"},
            {"contents": [None, 1, {"parts": "x"}, {"role": 5, "parts": [1, None]}]},
            {"tools": [1, {"functionDeclarations": [1, {"name": 2}]}], "toolConfig": 3},
            {"tools": {"x": 1}, "toolConfig": {"functionCallingConfig": {"mode": 1}}},
            {"generationConfig": [], "systemInstruction": 3},
            {"generationConfig": {"temperature": "hot", "stopSequences": [1, "s"],
                                  "thinkingConfig": {"thinkingBudget": True}}},
            {"contents": [{"parts": [{"inlineData": {"data": 5}}, {"fileData": "x"},
                                     {"functionCall": {"args": "notjson"}}]}]},
        ],
    )  # fmt: skip
    def test_odd_input_never_raises(self, body: Any) -> None:
        out = CODEC.normalize_request(body)
        assert isinstance(out["messages"], list) and isinstance(out["options"], dict)
        json.dumps(out)


# -- responses ---------------------------------------------------------------------------


def usage(inp: int, out: int, total: int, reasoning: int = 0, cached: int = 0) -> dict[str, int]:
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "total_tokens": total,
        "reasoning_tokens": reasoning,
        "cache_creation_tokens": 0,
        "cache_read_tokens": cached,
    }


class TestResponse:
    def test_text(self) -> None:
        result = CODEC.normalize_response(load("text_response"))
        assert result.response is not None
        assert result.response["content"] == [
            {"type": "text", "text": "Bonjour ! Comment puis-je vous aider aujourd'hui ?"}
        ]
        assert result.response["finish_reason"] == "stop"
        assert result.response["provider_finish_reason"] == "STOP"
        assert result.response["model"] == "gemini-2.0-flash"
        assert result.response["id"] == "kQ3nZ6XUBqaTz7IPh7-S6AU"
        assert result.response["warnings"] == []
        assert len(result.response["safety_ratings"]) == 4
        assert result.usage == result.response["usage"] == usage(6, 12, 18)
        assert result.response_model == "gemini-2.0-flash"
        assert result.finish_reasons == ["STOP"]
        assert result.error is None and result.complete is True and result.metadata == {}

    def test_tool_calls(self) -> None:
        result = CODEC.normalize_response(load("tools_response"))
        assert result.response is not None
        content = result.response["content"]
        assert [p["type"] for p in content] == ["text", "tool-call", "tool-call"]
        assert content[1] == {
            "type": "tool-call",
            "tool_name": "get_weather",
            "arguments": '{"location":"Paris, France","unit":"celsius"}',
            "has_signature": True,
        }
        assert result.response["finish_reason"] == "tool-calls"
        assert result.finish_reasons == ["STOP"]
        assert result.usage == usage(142, 38, 180)

    def test_thinking(self) -> None:
        result = CODEC.normalize_response(load("thinking_response"))
        assert result.response is not None
        reasoning, text = result.response["content"]
        assert reasoning["type"] == "reasoning"
        assert reasoning["text"].startswith("**Listing the primes**")
        assert text == {
            "type": "text",
            "text": "The sum of the first 10 prime numbers is **129**.",
            "has_signature": True,
        }
        # Thinking tokens are output tokens, also counted apart.
        assert result.usage == usage(13, 17 + 412, 442, reasoning=412)
        assert result.response_model == "gemini-2.5-pro"

    def test_generated_image_keeps_no_bytes(self) -> None:
        body = load("images_response")
        result = CODEC.normalize_response(body)
        assert result.response is not None
        assert result.response["content"][1] == {
            "type": "file",
            "media_type": "image/png",
            "source_type": "base64",
            "size_bytes": 2000,
        }
        data = body["candidates"][0]["content"]["parts"][1]["inlineData"]["data"]
        assert data[:40] not in dumped(result.response)

    def test_grounding_sources_and_tool_use_prompt_tokens(self) -> None:
        result = CODEC.normalize_response(load("grounding_response"))
        assert result.response is not None
        text, *sources = result.response["content"]
        assert text["type"] == "text"
        assert sources == [
            {
                "type": "source",
                "source_type": "url",
                "title": "uefa.com",
                "url": "https://vertexaisearch.cloud.google.com/grounding-api-redirect/AUZIYQE1",
            },
            {
                "type": "source",
                "source_type": "url",
                "title": "aljazeera.com",
                "url": "https://vertexaisearch.cloud.google.com/grounding-api-redirect/AUZIYQE2",
            },
        ]
        assert "renderedContent" not in dumped(result.response)
        assert result.usage == usage(9 + 86, 15, 110)

    def test_citations_and_other_grounding_chunks(self) -> None:
        candidate = answer({"text": "t"})["candidates"][0]
        candidate["citationMetadata"] = {
            "citationSources": [{"uri": "https://a.example/x?q=1", "startIndex": 0}],
            "citations": [{"uri": "https://b.example/y", "title": "B"}],
        }
        candidate["groundingMetadata"] = {
            "groundingChunks": [
                {"retrievedContext": {"uri": "gs://corpus/doc.txt", "title": "doc"}},
                {"maps": {"uri": "https://maps.google.com/?cid=1", "title": "Cafe"}},
                {"image": {}},
                3,
            ]
        }
        result = CODEC.normalize_response({"candidates": [candidate]})
        assert result.response is not None
        assert result.response["content"][1:] == [
            {
                "type": "source",
                "source_type": "document",
                "title": "doc",
                "url": "gs://corpus/doc.txt",
            },
            {
                "type": "source",
                "source_type": "url",
                "title": "Cafe",
                "url": "https://maps.google.com/",
            },
            {"type": "source", "source_type": "url", "url": "https://a.example/x"},
            {"type": "source", "source_type": "url", "title": "B", "url": "https://b.example/y"},
        ]

    def test_safety_finish_keeps_ratings(self) -> None:
        result = CODEC.normalize_response(load("safety_response"))
        assert result.response is not None
        assert result.response["finish_reason"] == "content-filter"
        assert result.response["provider_finish_reason"] == "SAFETY"
        assert result.response["safety_ratings"][1] == {
            "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
            "probability": "HIGH",
            "blocked": True,
        }
        assert result.error is None

    def test_blocked_prompt(self) -> None:
        result = CODEC.normalize_response(load("blocked_response"))
        assert result.response is not None
        assert result.response["content"] == []
        assert result.response["finish_reason"] == "content-filter"
        assert result.response["provider_finish_reason"] == "SAFETY"
        feedback = result.response["prompt_feedback"]
        assert feedback["block_reason"] == "SAFETY"
        assert feedback["safety_ratings"][3]["blocked"] is True
        assert result.finish_reasons == ["SAFETY"]
        assert result.usage == usage(8, 0, 8)
        assert result.error is None and result.complete is True

    def test_block_reason_other_and_message(self) -> None:
        body = {"promptFeedback": {"blockReason": "OTHER", "blockReasonMessage": "Not allowed."}}
        result = CODEC.normalize_response(body)
        assert result.response is not None
        assert result.response["finish_reason"] == "other"
        assert result.response["prompt_feedback"] == {
            "block_reason": "OTHER",
            "block_reason_message": "Not allowed.",
        }

    @pytest.mark.parametrize(
        ("raw", "calls", "neutral"),
        [
            ("STOP", False, "stop"),
            ("STOP", True, "tool-calls"),
            ("MAX_TOKENS", True, "length"),
            ("SAFETY", False, "content-filter"),
            ("RECITATION", False, "content-filter"),
            ("BLOCKLIST", False, "content-filter"),
            ("PROHIBITED_CONTENT", False, "content-filter"),
            ("SPII", False, "content-filter"),
            ("IMAGE_SAFETY", False, "content-filter"),
            ("MALFORMED_FUNCTION_CALL", False, "error"),
            ("FINISH_REASON_UNSPECIFIED", False, "other"),
            ("OTHER", False, "other"),
            ("LANGUAGE", False, "other"),
            ("SOMETHING_NEW", False, "other"),
        ],
    )
    def test_finish_reasons(self, raw: str, calls: bool, neutral: str) -> None:
        parts = [{"functionCall": {"name": "f", "args": {}}}] if calls else [{"text": "x"}]
        result = CODEC.normalize_response(answer(*parts, finish=raw))
        assert result.response is not None
        assert result.response["finish_reason"] == neutral
        assert result.response["provider_finish_reason"] == raw
        assert result.finish_reasons == [raw]

    def test_every_sdk_finish_reason_is_mapped_or_other(self) -> None:
        for reason in types.FinishReason:
            assert reason.value in FINISH_REASONS or reason.value in {
                "LANGUAGE",
                "IMAGE_OTHER",
                "NO_IMAGE",
                "ESCALATION",
                "PUP_LIMITED_DISABLED",
                "CONTINUATION",
            }, reason

    def test_finish_message_and_code_execution_is_not_a_tool_call_finish(self) -> None:
        body = answer(
            {"executableCode": {"language": "PYTHON", "code": "1"}},
            {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "1"}},
            {"text": "1"},
            finish="STOP",
        )
        body["candidates"][0]["finishMessage"] = "done"
        result = CODEC.normalize_response(body)
        assert result.response is not None
        assert result.response["finish_reason"] == "stop"
        assert result.response["finish_message"] == "done"

    def test_consecutive_text_parts_form_one_part(self) -> None:
        body = answer({"text": "a"}, {"text": "b"}, {"text": "c", "thought": True}, {"text": "d"})
        result = CODEC.normalize_response(body)
        assert result.response is not None
        assert result.response["content"] == [
            {"type": "text", "text": "ab"},
            {"type": "reasoning", "text": "c"},
            {"type": "text", "text": "d"},
        ]

    def test_only_the_first_candidate_is_assembled(self) -> None:
        body = {
            "candidates": [
                {
                    "index": 1,
                    "content": {"parts": [{"text": "second"}]},
                    "finishReason": "MAX_TOKENS",
                },
                {"index": 0, "content": {"parts": [{"text": "first"}]}, "finishReason": "STOP"},
            ]
        }
        result = CODEC.normalize_response(body)
        assert result.response is not None
        assert result.response["content"] == [{"type": "text", "text": "first"}]
        assert result.finish_reasons == ["STOP", "MAX_TOKENS"]

    def test_missing_usage_is_unknown_not_zero(self) -> None:
        result = CODEC.normalize_response(answer({"text": "x"}))
        assert result.usage is None
        assert result.response is not None and result.response["usage"] is None
        assert usage_from({"trafficType": "ON_DEMAND"}) is None
        assert usage_from({"promptTokenCount": 3}) == usage(3, 0, 3)

    def test_cached_content_tokens(self) -> None:
        raw = {
            "promptTokenCount": 2000,
            "cachedContentTokenCount": 1500,
            "candidatesTokenCount": 10,
            "totalTokenCount": 2010,
        }
        assert usage_from(raw) == usage(2000, 10, 2010, cached=1500)
        assert usage_from({"prompt_token_count": 5, "candidates_token_count": 1.0}) == usage(
            5, 1, 6
        )

    def test_error_inside_a_200_body(self) -> None:
        body = {"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}}
        result = CODEC.normalize_response(body)
        assert result.error == {
            "message": "Internal error",
            "type": "INTERNAL",
            "provider_title": "Internal Server Error",
            "provider_status": 500,
            "is_retryable": True,
        }
        assert result.response is not None and result.response["finish_reason"] == "error"

    @pytest.mark.parametrize(
        "body",
        [None, [], "x", 5, {"candidates": "x"}, {"candidates": [None, {"index": "0"}]},
         {"candidates": [{"content": {"parts": [None, 1, {"text": 5}]}}]},
         {"usageMetadata": [], "promptFeedback": 3, "modelVersion": 4},
         {"candidates": [{"index": True, "finishReason": 1, "safetyRatings": "x",
                          "groundingMetadata": {"groundingChunks": "x"}}]}],
    )  # fmt: skip
    def test_odd_input_never_raises(self, body: Any) -> None:
        result = CODEC.normalize_response(body)
        assert result.response is not None
        json.dumps(result.response)


# -- HTTP errors -------------------------------------------------------------------------


class TestErrors:
    def test_400_invalid_key(self) -> None:
        assert CODEC.error_payload(400, load("error_400")) == {
            "message": "API key not valid. Please pass a valid API key.",
            "type": "INVALID_ARGUMENT",
            "provider_title": "Bad Request",
            "provider_status": 400,
            "is_retryable": False,
            "reason": "API_KEY_INVALID",
        }

    def test_429_quota(self) -> None:
        payload = CODEC.error_payload(429, load("error_429"))
        assert payload["type"] == "RESOURCE_EXHAUSTED"
        assert payload["message"].startswith("You exceeded your current quota")
        assert payload["provider_status"] == 429 and payload["is_retryable"] is True
        assert payload["retry_delay"] == "21s"
        assert payload["quota_violations"] == [
            "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
        ]

    def test_503_overloaded(self) -> None:
        assert CODEC.error_payload(503, load("error_503")) == {
            "message": "The model is overloaded. Please try again later.",
            "type": "UNAVAILABLE",
            "provider_title": "Service Unavailable",
            "provider_status": 503,
            "is_retryable": True,
        }

    def test_json_array_stream_error(self) -> None:
        payload = CODEC.error_payload(400, [load("error_400")])
        assert payload["type"] == "INVALID_ARGUMENT" and payload["reason"] == "API_KEY_INVALID"

    @pytest.mark.parametrize(
        ("body", "message", "kind"),
        [
            (None, "502 Bad Gateway", "http_error"),
            ("upstream timed out", "upstream timed out", "http_error"),
            ({"error": "quota"}, "quota", "http_error"),
            ({"detail": "Not Found"}, "Not Found", "http_error"),
            ({"error": {"message": "m"}}, "m", "http_error"),
            ([1, 2], "502 Bad Gateway", "http_error"),
        ],
    )
    def test_other_shapes(self, body: Any, message: str, kind: str) -> None:
        payload = CODEC.error_payload(502, body)
        assert payload["message"] == message and payload["type"] == kind
        assert payload["provider_status"] == 502 and payload["is_retryable"] is True

    def test_code_different_from_the_http_status_is_kept(self) -> None:
        body = {"error": {"code": 500, "message": "m", "status": "INTERNAL"}}
        payload = CODEC.error_payload(502, body)
        assert payload["provider_status"] == 502 and payload["code"] == 500


# -- countTokens and embeddings ----------------------------------------------------------


class TestAuxiliaryMethods:
    def codec(self, method: str, model: str = "gemini-2.0-flash") -> Any:
        return detect("POST", GOOGLE_AI, f"/v1beta/models/{model}:{method}").codec

    def test_count_tokens(self) -> None:
        codec = self.codec("countTokens")
        body = {"contents": [turn({"text": "a"}), turn({"text": "b"}, role="model")]}
        assert codec.normalize_request(body) == {
            "method": "POST",
            "path": "/v1beta/models/gemini-2.0-flash:countTokens",
            "model": "gemini-2.0-flash",
            "body_kind": "json",
            "input_count": 2,
        }
        wrapped = {"generateContentRequest": {"model": "models/x", "contents": [turn()]}}
        assert codec.normalize_request(wrapped)["input_count"] == 1
        result = codec.normalize_response({"totalTokens": 31, "promptTokensDetails": []})
        assert result.response == {"content": [], "finish_reason": "other", "token_count": 31}
        assert result.usage is None  # counting costs nothing: no usage to price
        assert codec.is_stream_request({}) is False
        assert codec.error_payload(429, load("error_429"))["type"] == "RESOURCE_EXHAUSTED"

    def test_embeddings_store_counts_never_vectors(self) -> None:
        codec = self.codec("embedContent", "text-embedding-004")
        request_out = codec.normalize_request({"content": {"parts": [{"text": "hi"}]}})
        assert request_out["input_count"] == 1 and request_out["model"] == "text-embedding-004"
        result = codec.normalize_response({"embedding": {"values": [0.125, -0.5]}})
        assert result.response == {"content": [], "finish_reason": "other", "embedding_count": 1}
        batch = self.codec("batchEmbedContents", "text-embedding-004")
        assert batch.normalize_request({"requests": [{}, {}, {}]})["input_count"] == 3
        out = batch.normalize_response({"embeddings": [{"values": [0.1]}, {"values": [0.2]}]})
        assert out.response == {"content": [], "finish_reason": "other", "embedding_count": 2}
        assert "0.125" not in dumped(result.response)

    @pytest.mark.parametrize("body", [None, [], "x", {"requests": 1}, {"content": []}])
    def test_odd_input_never_raises(self, body: Any) -> None:
        for method in ("countTokens", "embedContent", "batchEmbedContents"):
            codec = self.codec(method)
            json.dumps(codec.normalize_request(body))
            json.dumps(codec.normalize_response(body).response)


# -- every field of the SDK's wire types is normalized or knowingly skipped --------------
# Checked by reflection against the installed google-genai SDK: a release that adds a
# field fails here until the codec handles it or it is listed as skipped with a reason.


def snake_fields(model: Any) -> set[str]:
    return set(model.model_fields)


PART_NORMALIZED = {
    "text", "thought", "thought_signature", "inline_data", "file_data", "function_call",
    "function_response", "executable_code", "code_execution_result", "tool_call",
    "tool_response", "audio_transcription",
}  # fmt: skip
PART_SKIPPED = {
    "video_metadata": "clip offsets and frame rate of a video part",
    "media_resolution": "how finely the API samples the media",
    "media_processing": "how the API processes a video part",
    "part_metadata": "application-defined metadata the model never sees",
    "document_metadata": "page hints of a document part",
    "spreadsheet_metadata": "sheet hints of a spreadsheet part",
    "speech_metadata": "speaker hints of an audio part",
    "audio_metadata": "encoding hints of an audio part",
}
CANDIDATE_NORMALIZED = {
    "content", "finish_reason", "finish_message", "index", "safety_ratings",
    "grounding_metadata", "citation_metadata",
}  # fmt: skip
CANDIDATE_SKIPPED = {
    "avg_logprobs": "a score, not content",
    "logprobs_result": "per-token scores, large",
    "token_count": "output tokens of this candidate; usageMetadata counts the call",
    "url_context_metadata": "retrieval status of URLs the urlContext tool fetched",
    "continuation_token": "opaque resume token",
}
RESPONSE_NORMALIZED = {
    "candidates", "model_version", "prompt_feedback", "response_id", "usage_metadata",
}  # fmt: skip
RESPONSE_SKIPPED = {
    "create_time": "Vertex AI's server timestamp; the attempt has its own",
    "model_status": "model lifecycle notice",
    "automatic_function_calling_history": "SDK-side only, never on the wire",
    "parsed": "SDK-side only, never on the wire",
    "sdk_http_response": "SDK-side only, never on the wire",
}
USAGE_NORMALIZED = {
    "prompt_token_count", "candidates_token_count", "thoughts_token_count",
    "tool_use_prompt_token_count", "cached_content_token_count", "total_token_count",
}  # fmt: skip
USAGE_SKIPPED = {
    "prompt_tokens_details": "per-modality split of counted tokens",
    "candidates_tokens_details": "per-modality split of counted tokens",
    "cache_tokens_details": "per-modality split of counted tokens",
    "tool_use_prompt_tokens_details": "per-modality split of counted tokens",
    "traffic_type": "Vertex AI billing class",
}
CONFIG_NORMALIZED = {
    "temperature", "top_p", "top_k", "max_output_tokens", "candidate_count",
    "presence_penalty", "frequency_penalty", "seed", "stop_sequences", "response_mime_type",
    "response_schema", "response_json_schema", "response_modalities", "thinking_config",
}  # fmt: skip


@pytest.mark.parametrize(
    ("model", "normalized", "skipped"),
    [
        (types.Part, PART_NORMALIZED, PART_SKIPPED),
        (types.Candidate, CANDIDATE_NORMALIZED, CANDIDATE_SKIPPED),
        (types.GenerateContentResponse, RESPONSE_NORMALIZED, RESPONSE_SKIPPED),
        (types.GenerateContentResponseUsageMetadata, USAGE_NORMALIZED, USAGE_SKIPPED),
        (types.GenerateContentResponsePromptFeedback,
         {"block_reason", "block_reason_message", "safety_ratings"}, {}),
        (types.FunctionCall, {"id", "name", "args"},
         {"partial_args": "opt-in argument streaming (Vertex AI)", "will_continue": "same"}),
        (types.FunctionResponse, {"id", "name", "response", "parts"},
         {"scheduling": "when a live session acts on it", "will_continue": "live sessions"}),
        (types.Blob, {"mime_type", "data", "display_name"}, {}),
        (types.FileData, {"mime_type", "file_uri", "display_name"}, {}),
        (types.ThinkingConfig, {"thinking_budget", "include_thoughts", "thinking_level"}, {}),
        (types.FunctionCallingConfig, {"mode", "allowed_function_names"},
         {"stream_function_call_arguments": "opt-in argument streaming (Vertex AI)"}),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)  # fmt: skip
def test_sdk_fields_are_covered(model: Any, normalized: set[str], skipped: Any) -> None:
    assert snake_fields(model) == normalized | set(skipped)
    assert not normalized & set(skipped)


def test_generation_config_fields_are_kept_or_counted() -> None:
    for name in snake_fields(types.GenerationConfig):
        out = request({"generationConfig": {name: {"x": 1} if name.endswith("config") else 1}})
        if name in CONFIG_NORMALIZED:
            assert "provider_option_count" not in out, name
        else:
            assert out["provider_option_count"] == 1, name


def test_every_tool_kind_is_listed() -> None:
    for name in snake_fields(types.Tool) - {"function_declarations"}:
        (tool,) = request({"tools": [{name: {}}]})["tools"]
        assert tool["type"] == "provider-defined"
        assert tool["id"] == f"gemini.{tool['name']}" and "_" not in tool["name"]
