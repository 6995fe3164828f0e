"""The fallback codec for every endpoint without a dedicated one.

Embeddings, legacy text completions, model listings, unknown paths and non-JSON bodies
are still recorded as attempts; their normalized payloads only say what kind of call it
was and, when the body has a recognisable ``usage`` object, how many tokens it cost. A
call that costs tokens (embeddings, text completions) without such an object says its
usage is unavailable; other calls (a model listing) have no usage to speak of.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from ._anthropic_parts import usage_from as anthropic_usage
from ._payloads import (
    USAGE_CLOSED_EARLY,
    USAGE_NOT_SENT,
    JSONBodyCodec,
    NormalizedResponse,
    bound_text,
    http_error_payload,
    make_usage,
    note_missing_usage,
)
from ._sse import SSEEvent

__all__ = ["GenericCodec", "GenericStreamAssembler", "usage_of"]

_BODYLESS_METHODS: Final = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def usage_of(body: object) -> dict[str, int] | None:
    """The usage object from a body's ``usage``: OpenAI style (``prompt_tokens``,
    ``total_tokens``) or Anthropic style (``input_tokens``/``output_tokens``)."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return None
    prompt = _int(usage.get("prompt_tokens"))
    if prompt is not None:
        completion = _int(usage.get("completion_tokens")) or 0
        prompt_details = usage.get("prompt_tokens_details")
        output_details = usage.get("completion_tokens_details")
        cached = prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else 0
        reasoning = (
            output_details.get("reasoning_tokens") if isinstance(output_details, dict) else 0
        )
        return make_usage(
            input_tokens=prompt,
            output_tokens=completion,
            total_tokens=_int(usage.get("total_tokens")),
            reasoning_tokens=_int(reasoning) or 0,
            cache_read_tokens=_int(cached) or 0,
        )
    if _int(usage.get("input_tokens")) is None and _int(usage.get("output_tokens")) is None:
        return None
    total = _int(usage.get("total_tokens"))
    if total is not None:  # OpenAI Responses style: input already includes cached tokens
        return make_usage(
            input_tokens=_int(usage.get("input_tokens")) or 0,
            output_tokens=_int(usage.get("output_tokens")) or 0,
            total_tokens=total,
        )
    return anthropic_usage(usage)


def _error_from(status: int | None, body: object) -> dict[str, Any]:
    message: str | None = None
    error_type: str | None = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message, error_type = _str(error.get("message")), _str(error.get("type"))
        else:
            message = _str(error) or _str(body.get("message")) or _str(body.get("detail"))
            error_type = _str(body.get("type"))
            if error_type == "error":  # Anthropic's envelope type, not an error kind
                error_type = None
    elif isinstance(body, str) and body.strip():
        message = body.strip()
    if status is not None:
        return http_error_payload(status, message, error_type)
    return {
        "message": bound_text(message or "stream error")[0],
        "type": error_type or "stream_error",
    }


class GenericStreamAssembler:
    """Counts the events of a stream in an unknown format; ``data: [DONE]`` ends it and
    is the only sign its content is final. ``costs_tokens``: a missing usage is worth a
    reason (a model call), not merely absent."""

    def __init__(self, *, costs_tokens: bool = False) -> None:
        self._costs_tokens = costs_tokens
        self._events = 0
        self._malformed = 0
        self._terminal = False
        self._usage: dict[str, int] | None = None
        self._model: str | None = None
        self._error: dict[str, Any] | None = None
        self._errors = 0

    @property
    def content_final(self) -> bool:
        """True once ``data: [DONE]`` was seen."""
        return self._terminal

    @property
    def terminal(self) -> bool:
        """True once ``data: [DONE]`` was seen."""
        return self._terminal

    def feed(self, event: SSEEvent) -> bool:
        """Count one event; True for any non-empty data other than ``[DONE]``."""
        self._events += 1
        data = event.data.strip()
        if data == "[DONE]":
            self._terminal = True
            return False
        if not data:
            return False
        try:
            parsed = json.loads(data)
        except (ValueError, RecursionError):
            parsed = None
            if data[0] in "{[":
                self._malformed += 1
        if event.event == "error" or (isinstance(parsed, dict) and "error" in parsed):
            self._errors += 1
            self._error = _error_from(None, parsed if parsed is not None else data)
            return False
        self._usage = usage_of(parsed) or self._usage
        if isinstance(parsed, dict) and isinstance(parsed.get("model"), str):
            self._model = parsed["model"]
        return True

    def finish(self) -> NormalizedResponse:
        """Counts so far; ``complete`` is False without ``[DONE]``."""
        response: dict[str, Any] = {"content": [], "finish_reason": "other"}
        if self._usage is not None:
            response["usage"] = self._usage
        summary: dict[str, Any] = {
            "finish_reason": "other",
            "part_count": 0,
            "event_count": self._events,
            "malformed_event_count": self._malformed,
            "error_count": self._errors,
        }
        if self._error is not None:
            summary["last_error"] = self._error["message"]
        result = NormalizedResponse(
            response=response,
            usage=self._usage,
            response_model=self._model,
            error=self._error,
            metadata={"stream_summary": summary},
            complete=self._terminal,
        )
        if self._costs_tokens:
            note_missing_usage(result, USAGE_NOT_SENT if self._terminal else USAGE_CLOSED_EARLY)
        return result


class GenericCodec(JSONBodyCodec):
    """Fallback codec for ``method`` + ``path``; ``operation_name`` is the GenAI
    operation (``embeddings``, ``text_completion`` or ``other``)."""

    name: str = "generic"

    def __init__(self, method: str, path: str, operation_name: str = "other") -> None:
        self.method = method.upper()
        self.path = path.split("?", 1)[0]
        self.operation_name: str = operation_name

    def __repr__(self) -> str:
        return f"GenericCodec({self.method!r}, {self.path!r}, {self.operation_name!r})"

    def normalize_request(self, body: Any) -> dict[str, Any]:
        """``{"method", "path", "model"?, "input_count"?, "body_kind"}``.

        ``body`` is the parsed JSON body; None means there was no JSON body, which is
        reported as ``empty`` for GET/HEAD/DELETE/OPTIONS and as ``other`` (a form,
        multipart upload, …) otherwise. Raw ``bytes``/``str`` bodies are ``other``.
        """
        out: dict[str, Any] = {"method": self.method, "path": self.path}
        model = self.request_model(body)
        if model is not None:
            out["model"] = model
        if isinstance(body, dict) and self.operation_name == "embeddings":
            raw = body.get("input")
            if isinstance(raw, list):
                out["input_count"] = len(raw)
            elif isinstance(raw, str):
                out["input_count"] = 1
        if body is None:
            out["body_kind"] = "empty" if self.method in _BODYLESS_METHODS else "other"
        elif isinstance(body, bytes | bytearray | str):
            out["body_kind"] = "other" if body else "empty"
        else:
            out["body_kind"] = "json"
        return out

    def normalize_response(self, body: Any) -> NormalizedResponse:
        """``{"content": [], "finish_reason": "other", "usage"?}``; legacy completions'
        ``choices[].finish_reason`` still become the response's finish reasons."""
        usage = usage_of(body)
        response: dict[str, Any] = {"content": [], "finish_reason": "other"}
        if usage is not None:
            response["usage"] = usage
        reasons: list[str] = []
        model: str | None = None
        if isinstance(body, dict):
            model = _str(body.get("model"))
            choices = body.get("choices")
            for choice in choices if isinstance(choices, list) else ():
                reason = choice.get("finish_reason") if isinstance(choice, dict) else None
                if isinstance(reason, str):
                    reasons.append(reason)
        result = NormalizedResponse(
            response=response, usage=usage, response_model=model, finish_reasons=reasons
        )
        if self.costs_tokens:
            note_missing_usage(result, USAGE_NOT_SENT)
        return result

    @property
    def costs_tokens(self) -> bool:
        """Whether calls of this kind are billed in tokens (embeddings, text
        completions): their missing usage is unknown, not absent."""
        return self.operation_name != "other"

    def new_stream(self, request: Mapping[str, Any] | None = None) -> GenericStreamAssembler:
        """A fresh assembler for one streamed response."""
        return GenericStreamAssembler(costs_tokens=self.costs_tokens)

    def error_payload(self, status: int, body: Any) -> dict[str, Any]:
        """From ``error.message``/``error.type``, ``error`` as text, ``message`` or
        ``detail``, whichever the body has."""
        return _error_from(status, body)
