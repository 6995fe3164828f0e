"""Provider-neutral payload shapes and the helpers every provider normalizer shares.

A *codec* knows one wire format (OpenAI Chat Completions, OpenAI Responses, Anthropic
Messages, Gemini ``generateContent``, or the generic fallback) and turns what the
transport captured into the payloads stored on a step:

* ``normalized_request``  ``{"messages": [...], "tools": [...], "options": {...},
  "tool_choice"?, ...}``
* ``normalized_response`` ``{"content": [...], "finish_reason", "usage", "warnings"}``
* ``usage``               ``{"input_tokens", "output_tokens", "total_tokens",
  "reasoning_tokens", "cache_creation_tokens", "cache_read_tokens"}`` (ints), or None
  when the provider sent none: unknown, never 0. A response without usage says why in
  its ``metadata["usage_unavailable"]`` (one of the ``USAGE_*`` reasons below).
* ``error``               ``{"message", "type", "provider_title"?, "provider_status"?,
  "is_retryable"?}``

Codecs are pure: they never do I/O, never raise on odd input (a missing or mistyped
field is skipped) and never store media bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final, Protocol

import orjson

from ._sse import SSEEvent

__all__ = [
    "MAX_STREAM_TEXT_BYTES",
    "MAX_TEXT_LENGTH",
    "USAGE_CLOSED_EARLY",
    "USAGE_KEYS",
    "USAGE_NOT_REQUESTED",
    "USAGE_NOT_SENT",
    "USAGE_UNAVAILABLE",
    "Codec",
    "JSONBodyCodec",
    "NormalizedResponse",
    "StreamAssembler",
    "TextBudget",
    "bound_text",
    "http_error_payload",
    "is_retryable_status",
    "loads_json",
    "make_usage",
    "note_missing_usage",
    "text_part",
]


def loads_json(text: str | bytes) -> Any:
    """``json.loads``, through orjson (C) first: one stream event is parsed per call.

    What orjson refuses (``NaN``, integers beyond 64 bits, very deep nesting) goes to the
    ``json`` module, so what parses, and its errors, stay those of ``json.loads``.
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


MAX_TEXT_LENGTH: Final = 10_000
"""Characters kept per text part (and per tool-call arguments / tool result)."""

MAX_STREAM_TEXT_BYTES: Final = 50_000
"""UTF-8 bytes of text and tool input accumulated from one stream."""

ELLIPSIS: Final = "…"

USAGE_KEYS: Final = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "reasoning_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
)


USAGE_UNAVAILABLE: Final = "usage_unavailable"
"""Step metadata key saying why a response has no usage."""

USAGE_NOT_REQUESTED: Final = "stream without include_usage"
"""A Chat Completions stream whose request did not set ``stream_options.include_usage``:
the provider never sends usage for it."""

USAGE_CLOSED_EARLY: Final = "stream closed before usage"
"""The stream ended (or was closed) before the event that carries usage."""

USAGE_NOT_SENT: Final = "provider sent no usage"
"""The response was read whole and carried no usage."""


def bound_text(text: str, limit: int = MAX_TEXT_LENGTH) -> tuple[str, int | None]:
    """Cut ``text`` to ``limit`` characters plus ``…``.

    Returns the (possibly cut) text and the original length when it was cut, else None.
    """
    if len(text) <= limit:
        return text, None
    return text[:limit] + ELLIPSIS, len(text)


def text_part(kind: str, text: str, **extra: Any) -> dict[str, Any]:
    """A ``{"type", "text", "text_length"?}`` part with the text bounded.

    ``text_length`` (original length in characters) is present only when the text was
    cut. Extra keys whose value is None are left out.
    """
    bounded, original = bound_text(text)
    part: dict[str, Any] = {"type": kind, "text": bounded}
    if original is not None:
        part["text_length"] = original
    part.update({k: v for k, v in extra.items() if v is not None})
    return part


def make_usage(
    input_tokens: int = 0,
    output_tokens: int = 0,
    total_tokens: int | None = None,
    reasoning_tokens: int = 0,
    cache_creation_tokens: int = 0,
    cache_read_tokens: int = 0,
) -> dict[str, int]:
    """The usage object with every key present; ``total_tokens`` defaults to in + out."""
    if total_tokens is None:
        total_tokens = input_tokens + output_tokens
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": total_tokens,
        "reasoning_tokens": reasoning_tokens,
        "cache_creation_tokens": cache_creation_tokens,
        "cache_read_tokens": cache_read_tokens,
    }


class TextBudget:
    """The global 50,000-byte cap on text and tool input accumulated from one stream.

    :meth:`take` returns the part of ``text`` that still fits, cut at a character
    boundary (so the UTF-8 stays valid); once the budget is spent it returns ``""`` and
    :attr:`exhausted` is True. Tool-call parts are appended even after that: callers only
    route *text* through the budget.
    """

    __slots__ = ("exhausted", "remaining")

    def __init__(self, limit: int = MAX_STREAM_TEXT_BYTES) -> None:
        self.remaining = limit
        self.exhausted = False

    def take(self, text: str) -> str:
        if self.exhausted or not text:
            return ""
        encoded = text.encode("utf-8")
        if len(encoded) <= self.remaining:
            self.remaining -= len(encoded)
            return text
        cut = encoded[: self.remaining].decode("utf-8", errors="ignore")
        self.remaining = 0
        self.exhausted = True
        return cut


def is_retryable_status(status: int) -> bool:
    """Statuses the official SDKs retry: 408, 409, 429 and every 5xx (incl. 529)."""
    return status in (408, 409, 429) or status >= 500


def http_error_payload(
    status: int,
    message: str | None,
    error_type: str | None,
) -> dict[str, Any]:
    """The step ``error`` payload for an HTTP error response.

    ``type`` is the provider's error type (``rate_limit_error``, ``overloaded_error``,
    ``invalid_request_error`` …) or ``"http_error"``; ``provider_title`` the HTTP reason
    phrase (``"Overloaded"`` for Anthropic's 529).
    """
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Overloaded" if status == 529 else f"HTTP {status}"
    text = message or f"{status} {title}"
    bounded, _ = bound_text(text)
    return {
        "message": bounded,
        "type": error_type or "http_error",
        "provider_title": title,
        "provider_status": status,
        "is_retryable": is_retryable_status(status),
    }


@dataclass(slots=True)
class NormalizedResponse:
    """What a codec extracted from one response (streamed or not)."""

    response: dict[str, Any] | None = None
    """The ``normalized_response`` payload."""
    usage: dict[str, int] | None = None
    """The step ``usage`` object (None when the provider reported none)."""
    response_model: str | None = None
    """``gen_ai.response.model``."""
    finish_reasons: list[str] = field(default_factory=list)
    """``gen_ai.response.finish_reasons``."""
    error: dict[str, Any] | None = None
    """A provider error carried inside a 200 response or stream (``error`` event,
    ``response.failed``), as an error payload."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Step metadata; streams put ``{"stream_summary": {...}}`` here."""
    complete: bool = True
    """False when a stream ended before the provider's content was final (see
    :attr:`StreamAssembler.content_final`)."""


def note_missing_usage(result: NormalizedResponse, reason: str) -> NormalizedResponse:
    """Record ``reason`` as ``metadata["usage_unavailable"]`` when ``result`` has no usage.

    A response carrying a provider error gets no reason: it is an error, not a model
    answer whose tokens went uncounted. Returns ``result``.
    """
    if result.usage is None and result.error is None:
        result.metadata[USAGE_UNAVAILABLE] = reason
    return result


class StreamAssembler(Protocol):
    """Builds a :class:`NormalizedResponse` from the SSE events of one response.

    Two moments of a stream matter and may be events apart: :attr:`content_final`, from
    which the answer can no longer change (what decides ``completed`` against
    ``interrupted``, see the table in :mod:`chatdebug.instrument.normalize`), and
    :attr:`terminal`, the provider's very last event (after which nothing, not even
    usage, can come).
    """

    def feed(self, event: SSEEvent) -> bool:
        """Consume one event; True when it carried model output (text, reasoning or tool
        input), which the transport uses for time to first chunk."""
        ...

    @property
    def content_final(self) -> bool:
        """True once the provider's content is final (a finish or stop reason, a final
        response object, or an error): the stream is complete even if it is closed
        before its last event."""
        ...

    @property
    def terminal(self) -> bool:
        """True once the provider's last event was seen (``data: [DONE]``,
        ``message_stop``, ``response.completed`` …); implies :attr:`content_final`."""
        ...

    def finish(self) -> NormalizedResponse:
        """The result so far; ``complete`` is :attr:`content_final`."""
        ...


class Codec(Protocol):
    """One wire format."""

    name: str
    """``openai.chat_completions``, ``openai.responses``, ``anthropic.messages``,
    ``gemini.generate_content`` (``gemini.count_tokens``, ``gemini.embed_content``) or
    ``generic``."""
    operation_name: str
    """``gen_ai.operation.name``: ``chat``, ``generate_content``, ``text_completion``,
    ``embeddings`` …"""

    def is_stream_request(self, body: Any) -> bool:
        """Whether the parsed request body asks for a streamed answer."""
        ...

    def request_model(self, body: Any) -> str | None:
        """``gen_ai.request.model`` from the parsed request body."""
        ...

    def normalize_request(self, body: Any) -> dict[str, Any]:
        """``normalized_request`` from the parsed JSON body (None when not JSON)."""
        ...

    def normalize_response(self, body: Any) -> NormalizedResponse:
        """From the parsed JSON body of a successful, non-streamed response."""
        ...

    def new_stream(self, request: Mapping[str, Any] | None = None) -> StreamAssembler:
        """A fresh assembler for one streamed response; ``request`` is the request's
        ``normalized_request`` when known (what it asked for can explain what the
        stream lacks, such as usage)."""
        ...

    def error_payload(self, status: int, body: Any) -> dict[str, Any]:
        """The step ``error`` payload of an HTTP error response (``body`` parsed JSON or
        None)."""
        ...


class JSONBodyCodec:
    """``stream`` and ``model`` read from the top level of a JSON request body, which is
    where every supported format (and most compatible ones) keeps them."""

    def is_stream_request(self, body: Any) -> bool:
        """Whether the request body has ``"stream": true``."""
        return isinstance(body, dict) and body.get("stream") is True

    def request_model(self, body: Any) -> str | None:
        """The body's ``model`` when it is a non-empty string."""
        model = body.get("model") if isinstance(body, dict) else None
        return model if isinstance(model, str) and model else None
