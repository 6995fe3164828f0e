"""Provider normalizers: wire format and provider detection, one codec per format.

:func:`detect` picks the codec from the request path (formats are recognised wherever
they are served: ``/v1/chat/completions``, Azure's
``/openai/deployments/x/chat/completions``, OpenRouter's ``/api/v1/...``, Gemini's
``.../models/{model}:generateContent`` on Google AI, Vertex AI or a gateway) and the
``gen_ai.provider.name`` from the host, falling back to the format's owner for unknown
hosts (a loopback test server, a self-hosted vLLM).

Stream completion: a stream is *completed* once the provider's content is final
(the assembler's ``content_final``), whether or not its last event or its end is then
read: clients close a stream as soon as they have the answer. Closed, cut off or failed
before that, it is *interrupted*. Per format:

================  ==============================  =================  ======================
format            content final (completed from)  last event         usage
================  ==============================  =================  ======================
Chat Completions  a chunk giving every choice     ``data: [DONE]``   a chunk after the
                  seen a ``finish_reason``                           finish reason, only if
                                                                     the request set
                                                                     ``include_usage`` in
                                                                     ``stream_options``
Responses         ``response.completed``,         the same event     in that event
                  ``.incomplete`` or ``.failed``
Anthropic         ``message_delta`` with a        ``message_stop``   ``message_start``;
Messages          ``stop_reason``                                    final counts in that
                                                                     ``message_delta``
Gemini            a chunk giving every candidate  the same chunk     ``usageMetadata`` of
                  seen a ``finishReason`` (or a   (Gemini has no     each chunk, the last
                  blocked prompt)                 terminal event)    one final
generic           ``data: [DONE]``                ``data: [DONE]``   a ``usage`` object,
                                                                     if any
================  ==============================  =================  ======================

A provider error inside a stream (an ``error`` event or chunk) makes the step an
``error`` whenever it comes. Usage the provider did not send is unknown, never 0: the
response has no usage and its metadata says why (``usage_unavailable``: ``stream
without include_usage``, ``stream closed before usage`` or ``provider sent no usage``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ._payloads import (
    MAX_STREAM_TEXT_BYTES,
    MAX_TEXT_LENGTH,
    USAGE_CLOSED_EARLY,
    USAGE_NOT_REQUESTED,
    USAGE_NOT_SENT,
    USAGE_UNAVAILABLE,
    Codec,
    NormalizedResponse,
    StreamAssembler,
    bound_text,
    is_retryable_status,
)
from ._sse import SSEEvent, SSEParser
from .anthropic import AnthropicMessagesCodec
from .gemini import GeminiAuxCodec, GeminiCodec
from .gemini import gemini_codec as _gemini_codec
from .gemini import gemini_route as _gemini_route
from .generic import GenericCodec
from .openai_chat import OpenAIChatCodec
from .openai_responses import OpenAIResponsesCodec

__all__ = [
    "MAX_STREAM_TEXT_BYTES",
    "MAX_TEXT_LENGTH",
    "USAGE_CLOSED_EARLY",
    "USAGE_NOT_REQUESTED",
    "USAGE_NOT_SENT",
    "USAGE_UNAVAILABLE",
    "AnthropicMessagesCodec",
    "Codec",
    "Detection",
    "GeminiAuxCodec",
    "GeminiCodec",
    "GenericCodec",
    "NormalizedResponse",
    "OpenAIChatCodec",
    "OpenAIResponsesCodec",
    "SSEEvent",
    "SSEParser",
    "StreamAssembler",
    "bound_text",
    "detect",
    "is_retryable_status",
]


@dataclass(frozen=True, slots=True)
class Detection:
    """The codec for a request and the provider (``gen_ai.provider.name``) serving it."""

    codec: Codec
    provider: str


# Codecs for the chat formats are stateless, so one instance of each serves every call.
_CHAT: Final = OpenAIChatCodec()
_RESPONSES: Final = OpenAIResponsesCodec()
_ANTHROPIC: Final = AnthropicMessagesCodec()

_EXACT_HOSTS: Final = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "api.groq.com": "groq",
    "api.deepseek.com": "deepseek",
    "api.mistral.ai": "mistral_ai",
    "api.x.ai": "x_ai",
    "openrouter.ai": "openrouter",
    "api.together.xyz": "together",
    "api.perplexity.ai": "perplexity",
    "generativelanguage.googleapis.com": "gcp.gemini",
}
_AZURE_SUFFIXES: Final = (
    ".openai.azure.com",
    ".cognitiveservices.azure.com",
    ".services.ai.azure.com",
)
_OLLAMA_PORT: Final = 11434


def _split_host(host: str, port: int | None) -> tuple[str, int | None]:
    """Lower-cased host without port; a ``host:port`` (or ``[v6]:port``) is accepted."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        tail = rest[1:] if rest.startswith(":") else ""
        return name, port if port is not None else (int(tail) if tail.isdigit() else None)
    if host.count(":") == 1:
        name, _, tail = host.partition(":")
        if port is None and tail.isdigit():
            port = int(tail)
        return name, port
    return host, port


def _format(method: str, path: str) -> tuple[Codec, str]:
    """The codec for a path and the provider owning its format (for unknown hosts)."""
    # Formats are matched on the lower-cased route; a generic payload keeps the route as
    # sent, so the value patterns that redact it (case-sensitive key prefixes) still see
    # a key that sits in a path segment.
    route = path.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    path = route.lower()
    post = method.upper() == "POST"
    if post and path.endswith("/chat/completions"):
        return _CHAT, "openai"
    if post and path.endswith("/responses"):
        return _RESPONSES, "openai"
    # /v1/messages, but not /v1/messages/count_tokens or /v1/messages/batches; Claude on
    # Vertex AI posts Messages bodies to .../publishers/anthropic/models/M:rawPredict.
    if post and (
        path.endswith("/messages")
        or ("/publishers/anthropic/" in path and path.endswith(("rawpredict", "streamrawpredict")))
    ):
        return _ANTHROPIC, "anthropic"
    # Gemini keeps the model (and whether to stream) in the route, kept as sent.
    gemini = _gemini_route(route) if post else None
    if gemini is not None:
        # Vertex AI's resource layout on an unknown host (a gateway relaying it) is still
        # Vertex AI's.
        owner = "gcp.vertex_ai" if gemini.vertex else "gcp.gemini"
        return _gemini_codec(method, route, gemini), owner
    if path.endswith("/embeddings"):
        return GenericCodec(method, route, "embeddings"), "unknown"
    if post and path.endswith("/completions"):
        return GenericCodec(method, route, "text_completion"), "unknown"
    return GenericCodec(method, route), "unknown"


def _provider(host: str, port: int | None, codec: Codec, fallback: str) -> str:
    exact = _EXACT_HOSTS.get(host)
    if exact is not None:
        return exact
    if host.endswith(_AZURE_SUFFIXES):
        return "azure.ai.openai"
    if host.endswith("aiplatform.googleapis.com") or (
        host.endswith(".googleapis.com") and codec is _ANTHROPIC
    ):
        return "gcp.vertex_ai"
    if host.startswith("bedrock") and host.endswith(".amazonaws.com"):
        return "aws.bedrock"
    if port == _OLLAMA_PORT:
        return "ollama"
    return fallback


def detect(method: str, host: str, path: str, *, port: int | None = None) -> Detection:
    """The codec and provider for a request.

    ``host`` is the URL host; its port may be appended (``localhost:11434``) or passed as
    ``port`` (Ollama is recognised by its default port, 11434). Never raises.
    """
    codec, fallback = _format(method, path)
    name, port = _split_host(host, port)
    return Detection(codec=codec, provider=_provider(name, port, codec, fallback))
