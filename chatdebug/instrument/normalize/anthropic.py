"""The Anthropic Messages codec (``POST /v1/messages``, streamed or not).

Also what Claude on Vertex AI (``:rawPredict`` / ``:streamRawPredict``) and
Anthropic-compatible gateways speak. Request bodies may omit ``model`` there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ._anthropic_parts import block_parts, finish_reason, response_payload, usage_from
from ._anthropic_stream import AnthropicStreamAssembler, stream_error_payload
from ._payloads import (
    USAGE_NOT_SENT,
    JSONBodyCodec,
    NormalizedResponse,
    bound_text,
    http_error_payload,
    note_missing_usage,
    text_part,
)

__all__ = ["AnthropicMessagesCodec"]

_OPTIONS: Final = {
    "max_tokens": "max_output_tokens",
    # Not in the current SDK's parameter list, still accepted by the API, older SDKs and
    # compatible servers.
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
}
_HANDLED_KEYS: Final = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "stream",
        "stop_sequences",
        "thinking",
        "output_config",
        *_OPTIONS,
    }
)
_MAX_STOP_SEQUENCES: Final = 64


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _message(message: object) -> list[dict[str, Any]]:
    """One input message; a user message's ``tool_result`` blocks become a ``tool``
    message placed before the rest of it (the neutral shape has tool messages)."""
    if not isinstance(message, dict):
        return []
    role = _str(message.get("role")) or "user"
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": role, "parts": [text_part("text", content)]}]
    parts: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for block in content if isinstance(content, list) else ():
        is_result = isinstance(block, dict) and block.get("type") == "tool_result"
        (results if is_result and role == "user" else parts).extend(block_parts(block))
    messages = [{"role": "tool", "parts": results}] if results else []
    if parts or not results:
        messages.append({"role": role, "parts": parts})
    return messages


def _system(system: object) -> list[dict[str, Any]]:
    if isinstance(system, str):
        return [text_part("text", system)]
    if isinstance(system, list):
        return [part for block in system for part in block_parts(block)]
    return []


def _tool(tool: object) -> dict[str, Any] | None:
    if not isinstance(tool, dict):
        return None
    kind = tool.get("type")
    name = _str(tool.get("name")) or ""
    if kind is None or kind == "custom":
        out: dict[str, Any] = {"type": "function", "name": name}
        description = _str(tool.get("description"))
        if description is not None:
            out["description"] = bound_text(description)[0]
        schema = tool.get("input_schema")
        out["has_input_schema"] = isinstance(schema, dict)
        if isinstance(schema, dict):
            out["input_schema"] = schema
        return out
    # Server and Anthropic-defined tools (web_search_20250305, bash_20250124 …): the
    # versioned type says everything, their configuration is not kept.
    kind = _str(kind) or "unknown"
    return {"type": kind, "name": name, "has_input_schema": False, "id": f"anthropic.{kind}"}


def _tool_choice(choice: object, options: dict[str, Any]) -> str | None:
    if isinstance(choice, str):
        return choice
    if not isinstance(choice, dict):
        return None
    if choice.get("disable_parallel_tool_use") is True:
        options["parallel_tool_calls"] = False
    kind = _str(choice.get("type"))
    if kind == "tool":
        return f"tool:{_str(choice.get('name')) or ''}"
    return kind


def _options(body: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {
        name: body[key] for key, name in _OPTIONS.items() if _number(body.get(key))
    }
    stop = body.get("stop_sequences")
    if isinstance(stop, str):
        stop = [stop]
    if isinstance(stop, list):
        options["stop"] = [
            bound_text(s, 200)[0] for s in stop[:_MAX_STOP_SEQUENCES] if isinstance(s, str)
        ]
    thinking = body.get("thinking")
    if isinstance(thinking, dict):
        config: dict[str, Any] = {"type": _str(thinking.get("type")) or "unknown"}
        if _number(thinking.get("budget_tokens")):
            config["budget_tokens"] = thinking["budget_tokens"]
        options["thinking"] = config
    output = body.get("output_config")
    if isinstance(output, dict):
        if isinstance(effort := output.get("effort"), str):
            options["reasoning_effort"] = effort
        output_format = output.get("format")
        if isinstance(output_format, dict) and isinstance(output_format.get("type"), str):
            # Only the kind: the JSON schema body is not stored.
            options["response_format"] = {"type": output_format["type"]}
    return options


def _neutral_error(status: int, body: Any) -> dict[str, Any]:
    if isinstance(body, str):
        return http_error_payload(status, body.strip() or None, None)
    if not isinstance(body, dict):
        return http_error_payload(status, None, None)
    error = body.get("error")
    if isinstance(error, dict):
        payload = http_error_payload(status, _str(error.get("message")), _str(error.get("type")))
    else:
        # Gateways and proxies in front of the API answer in their own shapes.
        message = _str(error) or _str(body.get("message")) or _str(body.get("detail"))
        kind = _str(body.get("type"))
        payload = http_error_payload(status, message, None if kind == "error" else kind)
    request_id = _str(body.get("request_id"))
    if request_id is not None:
        payload["request_id"] = bound_text(request_id, 200)[0]
    return payload


class AnthropicMessagesCodec(JSONBodyCodec):
    """Codec for the Anthropic Messages API. Stateless: one instance serves all calls."""

    name: str = "anthropic.messages"
    operation_name: str = "chat"

    def normalize_request(self, body: Any) -> dict[str, Any]:
        """``normalized_request`` of a Messages request body.

        Keys other than messages, system, tools, tool choice, model, stream and the
        sampling options (``metadata``, ``service_tier``, ``container`` …) are counted in
        ``provider_option_count``, never stored.
        """
        if not isinstance(body, dict):
            return {"messages": [], "tools": [], "options": {}}
        messages: list[dict[str, Any]] = []
        system = _system(body.get("system"))
        if system:
            messages.append({"role": "system", "parts": system})
        raw_messages = body.get("messages")
        for message in raw_messages if isinstance(raw_messages, list) else ():
            messages.extend(_message(message))
        raw_tools = body.get("tools")
        tools = [t for t in map(_tool, raw_tools if isinstance(raw_tools, list) else ()) if t]
        options = _options(body)
        out: dict[str, Any] = {"messages": messages, "tools": tools, "options": options}
        choice = _tool_choice(body.get("tool_choice"), options)
        if choice is not None:
            out["tool_choice"] = choice
        model = _str(body.get("model"))
        if model is not None:
            out["model"] = model
        if isinstance(body.get("stream"), bool):
            out["stream"] = body["stream"]
        extra = sum(1 for k, v in body.items() if k not in _HANDLED_KEYS and v is not None)
        if extra:
            out["provider_option_count"] = extra
        return out

    def normalize_response(self, body: Any) -> NormalizedResponse:
        """From a ``Message`` object; an ``{"type": "error"}`` body becomes ``error``."""
        if not isinstance(body, dict):
            return NormalizedResponse(response=response_payload([], "unknown", {}, None))
        if body.get("type") == "error":
            error = stream_error_payload(body.get("error"), request_id=body.get("request_id"))
            return NormalizedResponse(response=response_payload([], "error", {}, None), error=error)
        content: list[dict[str, Any]] = []
        raw_content = body.get("content")
        for block in raw_content if isinstance(raw_content, list) else ():
            content.extend(block_parts(block))
        raw_reason = body.get("stop_reason")
        usage = usage_from(body.get("usage"))
        model = _str(body.get("model"))
        result = NormalizedResponse(
            response=response_payload(content, finish_reason(raw_reason), body, usage),
            usage=usage,
            response_model=model,
            finish_reasons=[raw_reason] if isinstance(raw_reason, str) else [],
        )
        return note_missing_usage(result, USAGE_NOT_SENT)

    def new_stream(self, request: Mapping[str, Any] | None = None) -> AnthropicStreamAssembler:
        """A fresh assembler for one streamed response (Anthropic always streams usage)."""
        return AnthropicStreamAssembler()

    def error_payload(self, status: int, body: Any) -> dict[str, Any]:
        """From ``{"type": "error", "error": {"type", "message"}}``; 429, 500 and 529
        (``overloaded_error``) are retryable."""
        return _neutral_error(status, body)
