"""The generic fallback codec: embeddings, legacy completions, unknown endpoints."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types import Completion, CreateEmbeddingResponse

from chatdebug.instrument.normalize._sse import SSEEvent
from chatdebug.instrument.normalize.generic import GenericCodec

EMBEDDINGS_RESPONSE = {
    "object": "list",
    "data": [
        {"object": "embedding", "index": 0, "embedding": [0.0023, -0.0093, 0.0158]},
        {"object": "embedding", "index": 1, "embedding": [0.0119, 0.0021, -0.0301]},
    ],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 8, "total_tokens": 8},
}
COMPLETION_RESPONSE = {
    "id": "cmpl-9",
    "object": "text_completion",
    "created": 1_700_000_000,
    "model": "gpt-3.5-turbo-instruct",
    "choices": [{"text": " world", "index": 0, "logprobs": None, "finish_reason": "length"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
}


def test_fixtures_match_the_openai_sdk() -> None:
    CreateEmbeddingResponse.model_validate(EMBEDDINGS_RESPONSE)
    Completion.model_validate(COMPLETION_RESPONSE)


class TestRequest:
    def test_embeddings(self) -> None:
        codec = GenericCodec("post", "/v1/embeddings?api-version=1", "embeddings")
        body = {"model": "text-embedding-3-small", "input": ["a", "b", "c"]}
        assert codec.operation_name == "embeddings"
        assert codec.name == "generic"
        assert codec.request_model(body) == "text-embedding-3-small"
        assert codec.normalize_request(body) == {
            "method": "POST",
            "path": "/v1/embeddings",
            "model": "text-embedding-3-small",
            "input_count": 3,
            "body_kind": "json",
        }
        one = codec.normalize_request({"model": "m", "input": "single"})
        assert one["input_count"] == 1

    def test_input_count_only_for_embeddings(self) -> None:
        codec = GenericCodec("POST", "/v1/completions", "text_completion")
        out = codec.normalize_request({"model": "m", "prompt": "hi", "input": [1]})
        assert "input_count" not in out and out["model"] == "m"

    @pytest.mark.parametrize(
        ("method", "body", "kind"),
        [
            ("GET", None, "empty"),
            ("POST", None, "other"),  # not JSON: a form or multipart upload
            ("POST", b"\x00binary", "other"),
            ("POST", b"", "empty"),
            ("POST", "text", "other"),
            ("POST", [1, 2], "json"),
            ("POST", 3, "json"),
        ],
    )
    def test_body_kind(self, method: str, body: Any, kind: str) -> None:
        out = GenericCodec(method, "/v1/audio/transcriptions").normalize_request(body)
        assert out == {"method": method, "path": "/v1/audio/transcriptions", "body_kind": kind}

    def test_stream_flag(self) -> None:
        codec = GenericCodec("POST", "/v1/completions", "text_completion")
        assert codec.is_stream_request({"stream": True})
        assert not codec.is_stream_request({"stream": 1})
        assert not codec.is_stream_request(None)


class TestResponse:
    def test_embeddings_usage(self) -> None:
        result = GenericCodec("POST", "/v1/embeddings", "embeddings").normalize_response(
            EMBEDDINGS_RESPONSE
        )
        usage = {
            "input_tokens": 8,
            "output_tokens": 0,
            "total_tokens": 8,
            "reasoning_tokens": 0,
            "cache_creation_tokens": 0,
            "cache_read_tokens": 0,
        }
        assert result.response == {"content": [], "finish_reason": "other", "usage": usage}
        assert result.usage == usage
        assert result.response_model == "text-embedding-3-small"
        assert "0.0023" not in json.dumps(result.response)

    def test_legacy_completion(self) -> None:
        result = GenericCodec("POST", "/v1/completions").normalize_response(COMPLETION_RESPONSE)
        assert result.usage is not None
        assert (result.usage["input_tokens"], result.usage["output_tokens"]) == (5, 7)
        assert result.usage["total_tokens"] == 12
        assert result.finish_reasons == ["length"]

    def test_anthropic_style_usage(self) -> None:
        body = {"usage": {"input_tokens": 3, "output_tokens": 4, "cache_read_input_tokens": 10}}
        result = GenericCodec("POST", "/v1/messages/count_tokens").normalize_response(body)
        assert result.usage is not None
        assert result.usage["cache_read_tokens"] == 10 and result.usage["total_tokens"] == 17

    def test_responses_style_usage_keeps_total(self) -> None:
        body = {"usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}}
        result = GenericCodec("POST", "/v1/x").normalize_response(body)
        assert result.usage is not None and result.usage["total_tokens"] == 7

    @pytest.mark.parametrize(
        "body",
        [None, "x", [], {}, {"usage": 5}, {"usage": {"foo": 1}}, {"choices": "x", "model": 3}],
    )
    def test_no_usage(self, body: Any) -> None:
        result = GenericCodec("GET", "/v1/models").normalize_response(body)
        assert result.usage is None
        assert result.response == {"content": [], "finish_reason": "other"}


class TestStream:
    def test_counts_events_until_done(self) -> None:
        assembler = GenericCodec("POST", "/v1/completions", "text_completion").new_stream()
        chunk = {"id": "c", "object": "text_completion", "model": "m", "choices": []}
        assert assembler.feed(SSEEvent("message", json.dumps(chunk))) is True
        assert assembler.feed(SSEEvent("message", "{broken")) is True
        assert assembler.feed(SSEEvent("message", "")) is False
        last = chunk | {"usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}}
        assembler.feed(SSEEvent("message", json.dumps(last)))
        assert not assembler.terminal
        assert assembler.feed(SSEEvent("message", "[DONE]")) is False
        assert assembler.terminal
        result = assembler.finish()
        assert result.complete
        assert result.usage is not None and result.usage["total_tokens"] == 5
        assert result.response_model == "m"
        assert result.metadata["stream_summary"] == {
            "finish_reason": "other",
            "part_count": 0,
            "event_count": 5,
            "malformed_event_count": 1,
            "error_count": 0,
        }

    def test_incomplete_and_error(self) -> None:
        assembler = GenericCodec("POST", "/x").new_stream()
        assembler.feed(SSEEvent("error", json.dumps({"error": {"message": "boom", "type": "t"}})))
        result = assembler.finish()
        assert result.complete is False
        assert result.error == {"message": "boom", "type": "t"}
        assert result.metadata["stream_summary"]["last_error"] == "boom"


class TestErrorPayload:
    @pytest.mark.parametrize(
        ("body", "message", "kind"),
        [
            ({"error": {"message": "bad input", "type": "invalid_request_error"}}, "bad input",
             "invalid_request_error"),
            ({"type": "error", "error": {"type": "not_found_error", "message": "nope"}}, "nope",
             "not_found_error"),
            ({"error": "model 'x' not found"}, "model 'x' not found", "http_error"),
            ({"message": "plain", "type": "BadRequestError"}, "plain", "BadRequestError"),
            ({"detail": "Not Found"}, "Not Found", "http_error"),
            ("  upstream timeout  ", "upstream timeout", "http_error"),
            (None, "404 Not Found", "http_error"),
            ([1, 2], "404 Not Found", "http_error"),
        ],
    )  # fmt: skip
    def test_shapes(self, body: Any, message: str, kind: str) -> None:
        payload = GenericCodec("POST", "/v1/embeddings").error_payload(404, body)
        assert payload["message"] == message
        assert payload["type"] == kind
        assert payload["provider_status"] == 404
        assert payload["is_retryable"] is False
