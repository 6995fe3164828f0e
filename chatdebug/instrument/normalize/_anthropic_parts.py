"""Anthropic Messages content blocks, usage and stop reasons in provider-neutral form.

Shared by the request normalizer, the non-streamed response normalizer and the stream
assembler, so a streamed message normalizes exactly like the same message non-streamed.
Every function takes parsed JSON of unknown shape and never raises.
"""

from __future__ import annotations

import json
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from ._payloads import bound_text, make_usage, text_part

__all__ = [
    "block_parts",
    "citation_source",
    "citation_sources",
    "compact_json",
    "file_part",
    "finish_reason",
    "response_payload",
    "source_part",
    "tool_call_part",
    "tool_result_text",
    "usage_from",
]

FINISH_REASONS: Final = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool-calls",
    "refusal": "content-filter",
    "pause_turn": "other",
}

# Opaque or binary payloads inside server-tool results: never worth storing, and
# ``data`` may be a base64 document.
_SCRUBBED_KEYS: Final = frozenset(
    {"data", "encrypted_content", "encrypted_index", "encrypted_stdout", "signature"}
)
_MAX_SCRUB_DEPTH: Final = 16
_CITATION_DOCUMENT_TYPES: Final = frozenset(
    {"char_location", "page_location", "content_block_location"}
)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def compact_json(value: Any) -> str:
    """``value`` as compact JSON, or ``""`` when it cannot be encoded."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return ""


def finish_reason(raw: object) -> str:
    """The neutral finish reason for an Anthropic ``stop_reason``."""
    if not isinstance(raw, str):
        return "unknown"
    return FINISH_REASONS.get(raw, "other")


def usage_from(raw: object) -> dict[str, int] | None:
    """The usage object from an Anthropic ``usage`` object, None when there is none."""
    if not isinstance(raw, dict):
        return None
    input_tokens = _int(raw.get("input_tokens"))
    output_tokens = _int(raw.get("output_tokens"))
    cache_creation = _int(raw.get("cache_creation_input_tokens"))
    cache_read = _int(raw.get("cache_read_input_tokens"))
    details = raw.get("output_tokens_details")
    reasoning = _int(details.get("thinking_tokens")) if isinstance(details, dict) else 0
    # Anthropic's input_tokens counts only the uncached part of the prompt (cache reads
    # and writes are reported beside it), so input_tokens stays as reported and the total
    # adds all four: the number of tokens the call really processed.
    return make_usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens + cache_creation + cache_read,
        reasoning_tokens=reasoning,
        cache_creation_tokens=cache_creation,
        cache_read_tokens=cache_read,
    )


def tool_call_part(
    call_id: object,
    name: object,
    arguments: str,
    *,
    provider_executed: bool = False,
    received: int | None = None,
) -> dict[str, Any]:
    """A ``tool-call`` part with ``arguments`` bounded. ``received`` is the input length
    in characters when the stream budget already dropped some of it."""
    bounded, original = bound_text(arguments)
    part: dict[str, Any] = {
        "type": "tool-call",
        "tool_call_id": _str(call_id) or "",
        "tool_name": _str(name) or "",
        "arguments": bounded,
    }
    if received is not None:
        part["arguments_length"] = received
        part["arguments_truncated"] = True
    elif original is not None:
        part["arguments_length"] = original
    if provider_executed:
        part["provider_executed"] = True
    return part


def source_part(source_type: str, title: object = None, url: object = None) -> dict[str, Any]:
    """A ``source`` part (citation, search result)."""
    part: dict[str, Any] = {"type": "source", "source_type": source_type}
    if isinstance(title, str):
        part["title"] = bound_text(title)[0]
    if isinstance(url, str):
        part["url"] = bound_text(url)[0]
    return part


def citation_sources(citations: object) -> list[dict[str, Any]]:
    """Source parts for the ``citations`` of a text block (cited text is not kept)."""
    if not isinstance(citations, list):
        return []
    parts: list[dict[str, Any]] = []
    for citation in citations:
        if isinstance(citation, dict):
            parts.append(citation_source(citation))
    return parts


def citation_source(citation: dict[str, Any]) -> dict[str, Any]:
    """One citation (a ``citations`` entry or a ``citations_delta``) as a source part."""
    kind = citation.get("type")
    if kind == "web_search_result_location":
        return source_part("url", citation.get("title"), citation.get("url"))
    if kind == "search_result_location":
        return source_part("search_result", citation.get("title"), citation.get("source"))
    if kind in _CITATION_DOCUMENT_TYPES:
        return source_part("document", citation.get("document_title"))
    return source_part(_str(kind) or "unknown")


def _base64_size(data: str) -> int:
    padding = 2 if data.endswith("==") else 1 if data.endswith("=") else 0
    return max(len(data) * 3 // 4 - padding, 0)


def _public_url(url: object) -> str | None:
    """An http(s) URL without credentials, query or fragment (they may hold a signature
    or a token); anything else (a ``data:`` URL would hold the bytes) is dropped."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https"):
        return None
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def file_part(block: dict[str, Any]) -> dict[str, Any]:
    """An image or document block: media type, source kind and size, never the bytes;
    a URL source keeps only scheme, host and path."""
    part: dict[str, Any] = {"type": "file"}
    source = block.get("source")
    if not isinstance(source, dict):
        return part
    kind = _str(source.get("type"))
    media_type = _str(source.get("media_type"))
    if media_type is None and block.get("type") == "document" and kind == "url":
        media_type = "application/pdf"  # URL documents are always PDFs
    if media_type is not None:
        part["media_type"] = media_type
    if kind is not None:
        part["source_type"] = kind
    data = source.get("data")
    if kind == "base64" and isinstance(data, str):
        part["size_bytes"] = _base64_size(data)
    elif kind == "text" and isinstance(data, str):
        part["size_bytes"] = len(data.encode("utf-8", errors="replace"))
    url = _public_url(source.get("url")) if kind == "url" else None
    if url:
        part["url"] = bound_text(url, 2_000)[0]
    title = _str(block.get("title"))
    if title is not None:
        part["filename"] = bound_text(title)[0]
    return part


def _media_placeholder(block: dict[str, Any]) -> str:
    media_type = file_part(block).get("media_type")
    return f"[media output: {media_type}]" if media_type else "[media output]"


def tool_result_text(content: object) -> str:
    """The ``result`` string of a ``tool_result``: its text, media as placeholders."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    pieces: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            pieces.append(_str(block.get("text")) or "")
        elif kind in ("image", "document"):
            pieces.append(_media_placeholder(block))
        elif kind == "search_result":
            pieces.append(f"[search result: {_str(block.get('title')) or ''}]")
        else:
            pieces.append(f"[{_str(kind) or 'unknown'}]")
    return "\n".join(pieces)


def _tool_result_part(block: dict[str, Any]) -> dict[str, Any]:
    result, original = bound_text(tool_result_text(block.get("content")))
    part: dict[str, Any] = {
        "type": "tool-result",
        "tool_call_id": _str(block.get("tool_use_id")) or "",
        "result": result,
    }
    if original is not None:
        part["result_length"] = original
    is_error = block.get("is_error")
    if isinstance(is_error, bool):
        part["is_error"] = is_error
    return part


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > _MAX_SCRUB_DEPTH:
        return "…"
    if isinstance(value, dict):
        return {k: _scrub(v, depth + 1) for k, v in value.items() if k not in _SCRUBBED_KEYS}
    if isinstance(value, list):
        return [_scrub(v, depth + 1) for v in value]
    return value


def _server_tool_result_parts(block: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """``web_search_tool_result``, ``code_execution_tool_result`` … : a provider-executed
    tool result, followed by a source part per search result or fetched page."""
    content = block.get("content")
    sources: list[dict[str, Any]] = []
    is_error = False
    if isinstance(content, list):  # web search results
        hits = [r for r in content if isinstance(r, dict)]
        sources = [source_part("url", r.get("title"), r.get("url")) for r in hits]
        result = compact_json(_scrub(hits))
    elif isinstance(content, dict) and "error_code" in content:
        is_error = True
        result = _str(content.get("error_code")) or compact_json(_scrub(content))
    else:
        if isinstance(content, dict) and content.get("type") == "web_fetch_result":
            document = content.get("content")
            title = document.get("title") if isinstance(document, dict) else None
            sources = [source_part("url", title, content.get("url"))]
        result = compact_json(_scrub(content))
    bounded, original = bound_text(result)
    part: dict[str, Any] = {
        "type": "tool-result",
        "tool_call_id": _str(block.get("tool_use_id")) or "",
        "tool_name": kind.removesuffix("_tool_result"),
        "result": bounded,
        "provider_executed": True,
    }
    if original is not None:
        part["result_length"] = original
    if is_error:
        part["is_error"] = True
    return [part, *sources]


def block_parts(block: object) -> list[dict[str, Any]]:
    """The parts of one content block (request or response side)."""
    if not isinstance(block, dict):
        return []
    kind = block.get("type")
    if kind == "text":
        return [
            text_part("text", _str(block.get("text")) or ""),
            *citation_sources(block.get("citations")),
        ]
    if kind == "thinking":
        # The signature only lets the API verify the block: noted, never stored.
        signed = True if block.get("signature") else None
        return [text_part("reasoning", _str(block.get("thinking")) or "", has_signature=signed)]
    if kind == "redacted_thinking":
        return [{"type": "reasoning", "redacted": True}]
    if kind in ("tool_use", "server_tool_use"):
        arguments = compact_json(block.get("input", {}))
        return [
            tool_call_part(
                block.get("id"),
                block.get("name"),
                arguments,
                provider_executed=kind == "server_tool_use",
            )
        ]
    if kind in ("image", "document"):
        return [file_part(block)]
    if kind == "tool_result":
        return [_tool_result_part(block)]
    if kind == "search_result":
        return [source_part("search_result", block.get("title"), block.get("source"))]
    if kind == "container_upload":
        return [{"type": "file", "source_type": "container_upload"}]
    if isinstance(kind, str) and kind.endswith("_tool_result"):
        return _server_tool_result_parts(block, kind)
    return [{"type": "unknown", "provider_type": bound_text(_str(kind) or "", 200)[0]}]


def response_payload(
    content: list[dict[str, Any]],
    neutral_reason: str,
    message: dict[str, Any],
    usage: dict[str, int] | None,
    warnings: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``normalized_response`` payload; ``message`` holds the raw top-level fields
    (``stop_reason``, ``stop_sequence``, ``stop_details``, ``model``, ``id``)."""
    payload: dict[str, Any] = {
        "content": content,
        "finish_reason": neutral_reason,
        "provider_finish_reason": _str(message.get("stop_reason")),
        "usage": usage,  # None when unknown: never a made-up 0
        "warnings": warnings or [],
    }
    stop_sequence = _str(message.get("stop_sequence"))
    if stop_sequence is not None:
        payload["stop_sequence"] = bound_text(stop_sequence, 200)[0]
    details = message.get("stop_details")
    if isinstance(details, dict):
        payload["stop_details"] = {
            k: bound_text(v, 1_000)[0]
            for k in ("type", "category", "explanation")
            if isinstance(v := details.get(k), str)
        }
    for key in ("model", "id"):
        value = _str(message.get(key))
        if value is not None:
            payload[key] = value
    return payload
