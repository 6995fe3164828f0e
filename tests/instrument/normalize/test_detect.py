"""Wire format and provider detection."""

from __future__ import annotations

import dataclasses

import pytest

import chatdebug.instrument.normalize as normalize
from chatdebug.instrument.normalize import (
    AnthropicMessagesCodec,
    Detection,
    GenericCodec,
    OpenAIChatCodec,
    OpenAIResponsesCodec,
    detect,
)

CHAT = "openai.chat_completions"
RESPONSES = "openai.responses"
ANTHROPIC = "anthropic.messages"


@pytest.mark.parametrize(
    ("method", "host", "path", "codec", "operation", "provider"),
    [
        # OpenAI and the OpenAI-compatible world
        ("POST", "api.openai.com", "/v1/chat/completions", CHAT, "chat", "openai"),
        ("POST", "api.openai.com", "/v1/responses", RESPONSES, "chat", "openai"),
        ("POST", "api.openai.com", "/v1/embeddings", "generic", "embeddings", "openai"),
        ("POST", "api.openai.com", "/v1/completions", "generic", "text_completion", "openai"),
        ("GET", "api.openai.com", "/v1/models", "generic", "other", "openai"),
        ("GET", "api.openai.com", "/v1/responses/resp_1", "generic", "other", "openai"),
        ("GET", "api.openai.com", "/v1/chat/completions", "generic", "other", "openai"),
        ("POST", "api.openai.com", "/v1/audio/transcriptions", "generic", "other", "openai"),
        ("POST", "myres.openai.azure.com",
         "/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21", CHAT, "chat",
         "azure.ai.openai"),
        ("POST", "myres.openai.azure.com", "/openai/v1/responses", RESPONSES, "chat",
         "azure.ai.openai"),
        ("POST", "myres.cognitiveservices.azure.com",
         "/openai/deployments/emb/embeddings?api-version=2024-10-21", "generic", "embeddings",
         "azure.ai.openai"),
        ("POST", "proj.services.ai.azure.com", "/models/chat/completions", CHAT, "chat",
         "azure.ai.openai"),
        ("POST", "api.groq.com", "/openai/v1/chat/completions", CHAT, "chat", "groq"),
        ("POST", "api.deepseek.com", "/chat/completions", CHAT, "chat", "deepseek"),
        ("POST", "api.mistral.ai", "/v1/chat/completions", CHAT, "chat", "mistral_ai"),
        ("POST", "api.x.ai", "/v1/chat/completions", CHAT, "chat", "x_ai"),
        ("POST", "openrouter.ai", "/api/v1/chat/completions", CHAT, "chat", "openrouter"),
        ("POST", "api.together.xyz", "/v1/chat/completions", CHAT, "chat", "together"),
        ("POST", "api.perplexity.ai", "/chat/completions", CHAT, "chat", "perplexity"),
        ("POST", "generativelanguage.googleapis.com", "/v1beta/openai/chat/completions", CHAT,
         "chat", "gcp.gemini"),
        ("POST", "generativelanguage.googleapis.com",
         "/v1beta/models/gemini-2.5-flash:generateContent", "gemini.generate_content",
         "generate_content", "gcp.gemini"),
        ("POST", "localhost:11434", "/v1/chat/completions", CHAT, "chat", "ollama"),
        ("POST", "localhost:11434", "/api/chat", "generic", "other", "ollama"),
        ("POST", "127.0.0.1:8000", "/v1/chat/completions/", CHAT, "chat", "openai"),
        ("POST", "vllm.internal", "/v1/completions", "generic", "text_completion", "unknown"),
        # Anthropic
        ("POST", "api.anthropic.com", "/v1/messages", ANTHROPIC, "chat", "anthropic"),
        ("POST", "api.anthropic.com", "/v1/messages?beta=true", ANTHROPIC, "chat", "anthropic"),
        ("POST", "api.anthropic.com", "/v1/messages/count_tokens", "generic", "other",
         "anthropic"),
        ("POST", "api.anthropic.com", "/v1/messages/batches", "generic", "other", "anthropic"),
        ("GET", "api.anthropic.com", "/v1/messages/batches/msgbatch_1", "generic", "other",
         "anthropic"),
        ("POST", "api.anthropic.com", "/v1/complete", "generic", "other", "anthropic"),
        ("POST", "127.0.0.1", "/v1/messages", ANTHROPIC, "chat", "anthropic"),
        ("POST", "gateway.example.com", "/anthropic/v1/messages", ANTHROPIC, "chat",
         "anthropic"),
        ("POST", "us-east5-aiplatform.googleapis.com",
         "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5:rawPredict",
         ANTHROPIC, "chat", "gcp.vertex_ai"),
        ("POST", "aiplatform.googleapis.com",
         "/v1/projects/p/locations/global/publishers/anthropic/models/claude-sonnet-4-5:streamRawPredict",
         ANTHROPIC, "chat", "gcp.vertex_ai"),
        ("POST", "europe-west1-aiplatform.googleapis.com",
         "/v1/projects/p/locations/europe-west1/endpoints/openapi/chat/completions", CHAT, "chat",
         "gcp.vertex_ai"),
        ("POST", "bedrock-runtime.us-east-1.amazonaws.com",
         "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/invoke", "generic", "other",
         "aws.bedrock"),
        ("POST", "bedrock-runtime.us-west-2.amazonaws.com", "/openai/v1/chat/completions", CHAT,
         "chat", "aws.bedrock"),
        # Unknown everything
        ("GET", "example.com", "/", "generic", "other", "unknown"),
        ("POST", "", "", "generic", "other", "unknown"),
    ],
)  # fmt: skip
def test_detection_table(
    method: str, host: str, path: str, codec: str, operation: str, provider: str
) -> None:
    detection = detect(method, host, path)
    assert detection.codec.name == codec
    assert detection.codec.operation_name == operation
    assert detection.provider == provider


def test_codec_classes() -> None:
    assert isinstance(
        detect("POST", "api.openai.com", "/v1/chat/completions").codec, OpenAIChatCodec
    )
    assert isinstance(detect("POST", "api.openai.com", "/v1/responses").codec, OpenAIResponsesCodec)
    assert isinstance(detect("POST", "x", "/v1/messages").codec, AnthropicMessagesCodec)
    generic = detect("post", "x", "/v1/embeddings?k=v").codec
    assert isinstance(generic, GenericCodec)
    assert generic.normalize_request(None)["path"] == "/v1/embeddings"


def test_port_argument_and_host_forms() -> None:
    assert detect("POST", "localhost", "/v1/chat/completions", port=11434).provider == "ollama"
    assert detect("POST", "[::1]:11434", "/v1/chat/completions").provider == "ollama"
    assert detect("POST", "[::1]", "/v1/messages").provider == "anthropic"
    assert detect("POST", "API.OpenAI.com.", "/v1/chat/completions").provider == "openai"
    assert detect("POST", "api.openai.com:443", "/V1/Chat/Completions").codec.name == CHAT


def test_chat_codecs_are_shared_and_detection_is_frozen() -> None:
    first = detect("POST", "api.anthropic.com", "/v1/messages")
    assert first.codec is detect("POST", "localhost", "/v1/messages").codec
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.provider = "x"  # type: ignore[misc]
    assert first == Detection(codec=first.codec, provider="anthropic")


def test_exports() -> None:
    for name in ("detect", "Detection", "AnthropicMessagesCodec", "GenericCodec",
                 "OpenAIChatCodec", "OpenAIResponsesCodec", "NormalizedResponse"):  # fmt: skip
        assert name in normalize.__all__
        assert hasattr(normalize, name)
