"""Gemini ``GenerateContent`` requests, parts, usage, finish reasons and errors in
neutral form.

The part converters serve the request normalizer here and the response and stream
assembler of :mod:`.gemini`, so a part normalizes alike on both sides. The API reads
proto JSON, which accepts a field under its lowerCamelCase name (``functionCall``) and
under its proto name (``function_call``), and clients send either, so every field is
looked up under both. Every function takes parsed JSON of unknown shape and never
raises.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Final
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from ._anthropic_parts import compact_json, source_part
from ._openai_common import as_dict, as_list, as_str, function_tool, openai_error_payload
from ._openai_parts import base64_size
from ._payloads import bound_text, http_error_payload, make_usage, text_part

__all__ = [
    "MAX_SAFETY_RATINGS",
    "camel",
    "error_payload",
    "field",
    "finish_reason",
    "grounding_sources",
    "inband_error",
    "normalize_generate_request",
    "request_parts",
    "safety_ratings",
    "static_parts",
    "text_of",
    "tool_call_part",
    "usage_from",
]

FINISH_REASONS: Final = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content-filter",
    "RECITATION": "content-filter",
    "BLOCKLIST": "content-filter",
    "PROHIBITED_CONTENT": "content-filter",
    "SPII": "content-filter",
    "IMAGE_SAFETY": "content-filter",
    "IMAGE_PROHIBITED_CONTENT": "content-filter",
    "IMAGE_RECITATION": "content-filter",
    "MODEL_ARMOR": "content-filter",
    "JAILBREAK": "content-filter",
    # The model produced a call the API could not parse or did not offer: the answer
    # holds no usable content.
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
    "MISSING_THOUGHT_SIGNATURE": "error",
    "MALFORMED_RESPONSE": "error",
    "FINISH_REASON_UNSPECIFIED": "other",
    "OTHER": "other",
}
"""``finishReason`` (and ``promptFeedback.blockReason``) to the neutral finish reason;
other strings are ``other``."""

MAX_SAFETY_RATINGS: Final = 32
_MAX_URL: Final = 2_000
_URL_SCHEMES: Final = frozenset({"http", "https", "gs"})
_VIDEO_HOSTS: Final = ("youtube.com", "youtu.be")
# Fields that qualify a part's content (or only matter to the API), not content.
_PART_DATA_KEYS: Final = frozenset(
    {
        "thought",
        "thoughtSignature",
        "partMetadata",
        "videoMetadata",
        "mediaResolution",
        "mediaProcessing",
        "documentMetadata",
        "spreadsheetMetadata",
        "speechMetadata",
        "audioMetadata",
        "audioTranscription",
    }
)
_CODE_OK: Final = "OUTCOME_OK"
_SNAKE_RE: Final = re.compile(r"(?<!^)(?=[A-Z])")
_ROLES: Final = {"user": "user", "model": "assistant", "function": "tool", "tool": "tool"}
_OPTIONS: Final = {
    "temperature": "temperature",
    "topP": "top_p",
    "topK": "top_k",
    "maxOutputTokens": "max_output_tokens",
    "candidateCount": "n",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
    "seed": "seed",
}
_CONFIG_HANDLED: Final = frozenset(_OPTIONS) | {
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "thinkingConfig",
}
_HANDLED: Final = frozenset(
    {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "model"}
)
_MAX_STOP_SEQUENCES: Final = 64
_MAX_NAMES: Final = 128


def _count(value: Any) -> int | None:
    """A token count (an int, not a bool, or an integral float), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


# Bounded: keys come from request bodies, which may hold any number of odd ones.
@lru_cache(maxsize=512)
def _snake(name: str) -> str:
    return _SNAKE_RE.sub("_", name).lower()


@lru_cache(maxsize=512)
def camel(name: str) -> str:
    """The lowerCamelCase spelling of a proto field name (``google_search`` →
    ``googleSearch``); a camelCase name is returned unchanged."""
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def field(obj: dict[str, Any], name: str) -> Any:
    """``obj[name]`` under its camelCase ``name`` or its snake_case proto name."""
    value = obj.get(name)
    if value is None and not name.islower():
        value = obj.get(_snake(name))
    return value


# -- parts -------------------------------------------------------------------------------


def text_of(part: dict[str, Any]) -> tuple[str, str] | None:
    """``(kind, text)`` of a text part (kind ``reasoning`` for ``thought: true``)."""
    text = part.get("text")
    if not isinstance(text, str):
        return None
    return ("reasoning" if part.get("thought") is True else "text"), text


def tool_call_part(
    call_id: object,
    name: object,
    arguments: str,
    *,
    received: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``tool-call`` part with ``arguments`` bounded; the id only when the API sent one
    (Gemini names calls, ids are optional). ``received`` is the input length when the
    stream budget already dropped some of it."""
    bounded, original = bound_text(arguments)
    part: dict[str, Any] = {"type": "tool-call"}
    if isinstance(call_id, str) and call_id:
        part["tool_call_id"] = call_id
    part["tool_name"] = name if isinstance(name, str) else ""
    part["arguments"] = bounded
    if received is not None:
        part["arguments_length"] = received
        part["arguments_truncated"] = True
    elif original is not None:
        part["arguments_length"] = original
    part.update({k: v for k, v in extra.items() if v is not None})
    return part


def _signed(part: dict[str, Any]) -> bool | None:
    # The signature only lets the API restore the model's reasoning: noted, never stored.
    return True if field(part, "thoughtSignature") else None


def _file_uri(uri: object) -> str | None:
    """An http(s) or ``gs://`` URI without credentials, query or fragment (a signed URL
    carries its signature there)."""
    if not isinstance(uri, str):
        return None
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
    except ValueError:
        return None
    if parts.scheme.lower() not in _URL_SCHEMES:
        return None
    query = ""
    if host.lower().endswith(_VIDEO_HOSTS):
        # A video link names its video in the query; that is all that is kept of it.
        video = parse_qs(parts.query).get("v")
        query = urlencode({"v": video[0]}) if video else ""
    return bound_text(urlunsplit((parts.scheme, host, parts.path, query, "")), _MAX_URL)[0]


def _inline_part(blob: dict[str, Any], transcription: object) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "file"}
    media_type = as_str(field(blob, "mimeType"))
    if media_type is not None:
        part["media_type"] = media_type
    part["source_type"] = "base64"
    data = blob.get("data")
    if isinstance(data, str):
        part["size_bytes"] = base64_size(data)
    name = as_str(field(blob, "displayName"))
    if name is not None:
        part["filename"] = bound_text(name, 200)[0]
    transcript = as_str(as_dict(transcription).get("text"))
    if transcript:
        # Generated speech comes with its text: kept as other codecs keep audio's.
        bounded, original = bound_text(transcript)
        part["transcript"] = bounded
        if original is not None:
            part["transcript_length"] = original
    return part


def _file_data_part(data: dict[str, Any]) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "file"}
    media_type = as_str(field(data, "mimeType"))
    if media_type is not None:
        part["media_type"] = media_type
    part["source_type"] = "uri"
    uri = _file_uri(field(data, "fileUri"))
    if uri:
        part["url"] = uri
    name = as_str(field(data, "displayName"))
    if name is not None:
        part["filename"] = bound_text(name, 200)[0]
    return part


def _media_line(item: dict[str, Any]) -> str:
    blob = as_dict(field(item, "inlineData")) or as_dict(field(item, "fileData"))
    media_type = as_str(field(blob, "mimeType"))
    return f"[media output: {media_type}]" if media_type else "[media output]"


def _function_response_part(response: dict[str, Any]) -> dict[str, Any]:
    body = field(response, "response")
    lines = [compact_json(body)] if body is not None else []
    # Multimodal function responses carry their media as parts beside the JSON.
    lines += [_media_line(as_dict(p)) for p in as_list(response.get("parts"))]
    result, original = bound_text("\n".join(lines))
    part: dict[str, Any] = {"type": "tool-result"}
    call_id = as_str(response.get("id"))
    if call_id:
        part["tool_call_id"] = call_id
    part["tool_name"] = as_str(response.get("name")) or ""
    part["result"] = result
    if original is not None:
        part["result_length"] = original
    return part


def _server_result_part(response: dict[str, Any]) -> dict[str, Any]:
    result, original = bound_text(compact_json(response.get("response")))
    part: dict[str, Any] = {"type": "tool-result"}
    call_id = as_str(response.get("id"))
    if call_id:
        part["tool_call_id"] = call_id
    part["tool_name"] = as_str(field(response, "toolType")) or ""
    part["result"] = result
    if original is not None:
        part["result_length"] = original
    part["provider_executed"] = True
    return part


def static_parts(part: dict[str, Any]) -> list[dict[str, Any]]:
    """A part that is not text, whole: media, function calls and responses, server-side
    tool calls and responses, code execution; anything else as ``unknown`` with its
    field name."""
    call = field(part, "functionCall")
    if isinstance(call, dict):
        arguments = compact_json(call.get("args", {}))
        return [
            tool_call_part(call.get("id"), call.get("name"), arguments, has_signature=_signed(part))
        ]
    response = field(part, "functionResponse")
    if isinstance(response, dict):
        return [_function_response_part(response)]
    blob = field(part, "inlineData")
    if isinstance(blob, dict):
        return [_inline_part(blob, field(part, "audioTranscription"))]
    data = field(part, "fileData")
    if isinstance(data, dict):
        return [_file_data_part(data)]
    server_call = field(part, "toolCall")
    if isinstance(server_call, dict):
        # A built-in tool Google runs (search, maps …) and the client echoes back.
        arguments = compact_json(server_call.get("args", {}))
        kind = as_str(field(server_call, "toolType"))
        return [tool_call_part(server_call.get("id"), kind, arguments, provider_executed=True)]
    server_result = field(part, "toolResponse")
    if isinstance(server_result, dict):
        return [_server_result_part(server_result)]
    code = field(part, "executableCode")
    if isinstance(code, dict):
        arguments = compact_json({k: code[k] for k in ("language", "code") if k in code})
        return [tool_call_part(None, "code_execution", arguments, provider_executed=True)]
    outcome = field(part, "codeExecutionResult")
    if isinstance(outcome, dict):
        result, original = bound_text(as_str(outcome.get("output")) or "")
        out: dict[str, Any] = {
            "type": "tool-result",
            "tool_name": "code_execution",
            "result": result,
            "provider_executed": True,
        }
        if original is not None:
            out["result_length"] = original
        status = as_str(outcome.get("outcome"))
        if status is not None and status != _CODE_OK:
            out["is_error"] = True
        return [out]
    kinds = [camel(k) for k in part if camel(k) not in _PART_DATA_KEYS]
    return [{"type": "unknown", "provider_type": bound_text(kinds[0] if kinds else "", 200)[0]}]


def request_parts(parts: object) -> list[dict[str, Any]]:
    """The neutral parts of a request ``Content``'s ``parts`` (each part kept apart)."""
    out: list[dict[str, Any]] = []
    for part in as_list(parts):
        if not isinstance(part, dict):
            continue
        text = text_of(part)
        if text is not None:
            out.append(text_part(text[0], text[1], has_signature=_signed(part)))
        else:
            out.extend(static_parts(part))
    return out


def grounding_sources(candidate: dict[str, Any]) -> list[dict[str, Any]]:
    """Source parts for a candidate's grounding chunks (web, retrieved context, maps)
    and citations (the cited text itself is not kept)."""
    sources: list[dict[str, Any]] = []
    grounding = as_dict(field(candidate, "groundingMetadata"))
    for chunk in as_list(field(grounding, "groundingChunks")):
        chunk = as_dict(chunk)
        for key, kind in (("web", "url"), ("retrievedContext", "document"), ("maps", "url")):
            hit = field(chunk, key)
            if isinstance(hit, dict):
                sources.append(source_part(kind, hit.get("title"), _file_uri(hit.get("uri"))))
                break
    citations = as_dict(field(candidate, "citationMetadata"))
    # Google AI names the list citationSources, Vertex AI citations.
    for citation in as_list(field(citations, "citationSources")) + as_list(
        citations.get("citations")
    ):
        citation = as_dict(citation)
        sources.append(source_part("url", citation.get("title"), _file_uri(citation.get("uri"))))
    return sources


# -- finish, usage, safety ---------------------------------------------------------------


def finish_reason(raw: object, has_tool_calls: bool = False) -> str:
    """The neutral finish reason for a ``finishReason``: ``STOP`` with a function call
    in the answer is ``tool-calls``, as the other formats report it."""
    if not isinstance(raw, str):
        return "unknown"
    neutral = FINISH_REASONS.get(raw, "other")
    return "tool-calls" if neutral == "stop" and has_tool_calls else neutral


def usage_from(raw: object) -> dict[str, int] | None:
    """The usage object of a ``usageMetadata`` block, None when it has no counts.

    ``promptTokenCount`` already includes the cached part (as OpenAI's prompt tokens
    do), and tool-use prompt tokens are prompt too; thinking tokens are output, counted
    apart by Gemini (``candidatesTokenCount`` excludes them), so output adds them back.
    """
    if not isinstance(raw, dict):
        return None
    prompt = _count(field(raw, "promptTokenCount"))
    candidates = _count(field(raw, "candidatesTokenCount"))
    thoughts = _count(field(raw, "thoughtsTokenCount"))
    tool_prompt = _count(field(raw, "toolUsePromptTokenCount"))
    cached = _count(field(raw, "cachedContentTokenCount"))
    total = _count(field(raw, "totalTokenCount"))
    if prompt is None and candidates is None and thoughts is None and total is None:
        return None
    input_tokens = (prompt or 0) + (tool_prompt or 0)
    output_tokens = (candidates or 0) + (thoughts or 0)
    return make_usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total,
        reasoning_tokens=thoughts or 0,
        cache_read_tokens=cached or 0,
    )


def safety_ratings(raw: object) -> list[dict[str, Any]]:
    """Up to :data:`MAX_SAFETY_RATINGS` ratings: category, probability, blocked and
    Vertex AI's severity, when present."""
    out: list[dict[str, Any]] = []
    for rating in as_list(raw)[:MAX_SAFETY_RATINGS]:
        rating = as_dict(rating)
        kept: dict[str, Any] = {}
        for key, name in (
            ("category", "category"),
            ("probability", "probability"),
            ("severity", "severity"),
        ):
            value = as_str(rating.get(key))
            if value is not None:
                kept[name] = bound_text(value, 100)[0]
        if rating.get("blocked") is True:
            kept["blocked"] = True
        if kept:
            out.append(kept)
    return out


# -- errors ------------------------------------------------------------------------------


def _details(error: dict[str, Any], payload: dict[str, Any]) -> None:
    """The useful bits of ``google.rpc`` details: the error reason (``API_KEY_INVALID``),
    the advised retry delay and which quota ran out."""
    quotas: list[str] = []
    for detail in as_list(error.get("details"))[:16]:
        detail = as_dict(detail)
        kind = as_str(detail.get("@type")) or ""
        if kind.endswith("google.rpc.ErrorInfo") and as_str(detail.get("reason")):
            payload["reason"] = bound_text(detail["reason"], 200)[0]
        elif kind.endswith("google.rpc.RetryInfo") and as_str(field(detail, "retryDelay")):
            payload["retry_delay"] = bound_text(field(detail, "retryDelay"), 50)[0]
        elif kind.endswith("google.rpc.QuotaFailure"):
            for violation in as_list(detail.get("violations"))[:8]:
                violation = as_dict(violation)
                quota = as_str(field(violation, "quotaId")) or as_str(
                    field(violation, "quotaMetric")
                )
                if quota:
                    quotas.append(bound_text(quota, 200)[0])
    if quotas:
        payload["quota_violations"] = quotas


def _google_error(status: int | None, error: dict[str, Any]) -> dict[str, Any]:
    message = as_str(error.get("message"))
    kind = as_str(error.get("status"))
    code = _count(error.get("code"))
    http_status = status if status is not None else code
    if http_status is not None and http_status >= 400:
        payload = http_error_payload(http_status, message, kind)
    else:
        payload = {
            "message": bound_text(message or "stream error")[0],
            "type": kind or "stream_error",
        }
    if code is not None and code != http_status:
        payload["code"] = code
    _details(error, payload)
    return payload


def error_payload(status: int, body: Any) -> dict[str, Any]:
    """The step ``error`` of an HTTP error response.

    Google answers ``{"error": {"code", "message", "status", "details"}}`` (inside a
    one-element array for a JSON-array stream): ``type`` is the canonical status
    (``RESOURCE_EXHAUSTED``, ``INVALID_ARGUMENT`` …). Other shapes, from gateways and
    proxies, are read as the OpenAI-compatible servers write them.
    """
    if isinstance(body, list):
        body = next((item for item in body if isinstance(item, dict)), None)
    error = as_dict(body).get("error")
    if isinstance(error, dict):
        return _google_error(status, error)
    if isinstance(body, str):
        return http_error_payload(status, body.strip() or None, None)
    return openai_error_payload(status, body)


def inband_error(error: object) -> dict[str, Any]:
    """The error payload for an ``{"error": {...}}`` object inside a 200 response or a
    stream chunk; its ``code`` stands for the HTTP status it would have had."""
    if isinstance(error, dict):
        return _google_error(None, error)
    return {"message": bound_text(as_str(error) or "stream error")[0], "type": "stream_error"}


# -- requests ----------------------------------------------------------------------------


def _is_result(part: dict[str, Any]) -> bool:
    return part["type"] == "tool-result" and not part.get("provider_executed")


def _message(content: object) -> list[dict[str, Any]]:
    """One ``Content``; the function responses of a user turn become a ``tool``
    message placed before the rest of it (the neutral shape has tool messages)."""
    if not isinstance(content, dict):
        return []
    raw_role = as_str(content.get("role"))
    role = _ROLES.get(raw_role or "user", "user")
    parts = request_parts(content.get("parts"))
    messages: list[dict[str, Any]] = []
    if role == "user":
        results = [p for p in parts if _is_result(p)]
        if results:
            messages.append({"role": "tool", "parts": results})
            parts = [p for p in parts if not _is_result(p)]
            if not parts:
                return messages
    message: dict[str, Any] = {"role": role, "parts": parts}
    if raw_role is not None and raw_role not in _ROLES:
        message["original_role"] = bound_text(raw_role, 100)[0]
    messages.append(message)
    return messages


def _tools(raw: object) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    for tool in as_list(raw):
        if not isinstance(tool, dict):
            continue
        for key, value in tool.items():
            name = camel(key)
            if name == "functionDeclarations":
                for decl in as_list(value):
                    decl = as_dict(decl)
                    schema = field(decl, "parametersJsonSchema") or decl.get("parameters")
                    tools.append(
                        function_tool(decl.get("name"), decl.get("description"), schema, "function")
                    )
            elif value is not None:
                # Built-in tools run by Google (googleSearch, codeExecution, urlContext …):
                # the kind says everything, their configuration is not kept.
                name = bound_text(name, 200)[0]
                tools.append(
                    {
                        "type": "provider-defined",
                        "id": f"gemini.{name}",
                        "name": name,
                        "has_input_schema": False,
                    }
                )
    return tools


def _tool_choice(config: object, options: dict[str, Any]) -> str | None:
    calling = as_dict(field(as_dict(config), "functionCallingConfig"))
    mode = as_str(calling.get("mode"))
    names = [n for n in as_list(field(calling, "allowedFunctionNames")) if isinstance(n, str)]
    if mode is None:
        return None
    if mode.upper() == "ANY" and len(names) == 1:
        return f"tool:{names[0]}"
    if names:
        options["allowed_tools"] = [bound_text(n, 200)[0] for n in names[:_MAX_NAMES]]
    return mode.lower()


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _thinking(config: dict[str, Any], options: dict[str, Any]) -> None:
    thinking: dict[str, Any] = {}
    budget = field(config, "thinkingBudget")
    if _number(budget):
        # 0 turns thinking off, -1 lets the model decide.
        thinking["budget_tokens"] = budget
    include = field(config, "includeThoughts")
    if isinstance(include, bool):
        thinking["include_thoughts"] = include
    if thinking:
        options["thinking"] = thinking
    level = as_str(field(config, "thinkingLevel"))
    if level:
        options["reasoning_effort"] = level.lower()


def _options(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None, int]:
    """Options, response format and the number of settings not kept."""
    options: dict[str, Any] = {}
    for key, name in _OPTIONS.items():
        value = field(config, key)
        if _number(value):
            options[name] = value
    stop = field(config, "stopSequences")
    if isinstance(stop, list):
        options["stop"] = [
            bound_text(s, 200)[0] for s in stop[:_MAX_STOP_SEQUENCES] if isinstance(s, str)
        ]
    thinking = field(config, "thinkingConfig")
    if isinstance(thinking, dict):
        _thinking(thinking, options)
    modalities = field(config, "responseModalities")
    if isinstance(modalities, list):
        options["response_modalities"] = [m for m in modalities[:16] if isinstance(m, str)]
    mime = as_str(field(config, "responseMimeType"))
    if mime:
        options["response_mime_type"] = bound_text(mime, 200)[0]
    response_format: dict[str, Any] | None = None
    # Only the kind: the schema body is not stored.
    if field(config, "responseJsonSchema") is not None or field(config, "responseSchema"):
        response_format = {"type": "json_schema"}
    elif mime == "application/json":
        response_format = {"type": "json_object"}
    elif mime and mime != "text/plain":
        response_format = {"type": bound_text(mime, 200)[0]}
    others = sum(1 for k, v in config.items() if camel(k) not in _CONFIG_HANDLED and v is not None)
    return options, response_format, others


def normalize_generate_request(
    body: Any, model: str | None = None, stream: bool | None = None
) -> dict[str, Any]:
    """``normalized_request`` of a ``GenerateContentRequest`` body.

    ``systemInstruction`` becomes a leading system message; keys other than contents,
    tools, tool config and generation config (``safetySettings``, ``cachedContent``,
    ``labels`` …) and generation settings not kept are counted in
    ``provider_option_count``, never stored.
    """
    body = as_dict(body)
    messages: list[dict[str, Any]] = []
    system = field(body, "systemInstruction")
    if isinstance(system, str):
        messages.append({"role": "system", "parts": [text_part("text", system)]})
    elif isinstance(system, dict):
        messages.append({"role": "system", "parts": request_parts(system.get("parts"))})
    for content in as_list(body.get("contents")):
        messages.extend(_message(content))
    config = field(body, "generationConfig")
    options, response_format, others = _options(as_dict(config))
    out: dict[str, Any] = {
        "messages": messages,
        "tools": _tools(body.get("tools")),
        "options": options,
    }
    choice = _tool_choice(field(body, "toolConfig"), options)
    if choice is not None:
        out["tool_choice"] = choice
    if model is not None:
        out["model"] = model
    if stream is not None:
        out["stream"] = stream
    if response_format is not None:
        out["response_format"] = response_format
    others += sum(1 for k, v in body.items() if camel(k) not in _HANDLED and v is not None)
    if others:
        out["provider_option_count"] = others
    return out
