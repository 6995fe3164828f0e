"""Message-part builders shared by both OpenAI request formats.

Media bytes are never kept: data URLs and base64 payloads become a media type and an
estimated decoded size, http(s) URLs lose their query (it may carry signatures).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from ._openai_common import as_dict, as_list, as_str
from ._payloads import bound_text

__all__ = [
    "audio_part",
    "base64_size",
    "file_input_part",
    "media_part",
    "result_text",
    "tool_call_part",
    "tool_result_part",
]

_AUDIO_FORMATS: Final[Mapping[str, str]] = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "opus": "audio/opus",
    "pcm16": "audio/pcm",
}


def base64_size(data: str) -> int:
    """Decoded size in bytes of a base64 payload, estimated from its length."""
    stripped = data.strip()
    padding = len(stripped) - len(stripped.rstrip("="))
    return max(0, (len(stripped) - stripped.count("\n") - stripped.count("\r")) * 3 // 4 - padding)


def _strip_url(url: str) -> str | None:
    """``url`` without credentials, query or fragment (they may carry signatures)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
    except ValueError:
        return None
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def media_part(
    url: Any,
    *,
    default_type: str,
    filename: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``file`` part for an image/file given as a data URL, an http(s) URL or nothing.

    Data URLs give the media type and an estimated size; http(s) URLs are kept without
    query and fragment, with ``default_type`` (``image/*``) as media type.
    """
    name = as_str(filename)
    media_type = (mimetypes.guess_type(name)[0] if name else None) or default_type
    part: dict[str, Any] = {"type": "file", "media_type": media_type}
    if isinstance(url, str) and url.startswith("data:"):
        header, _, payload = url[5:].partition(",")
        declared = header.split(";", 1)[0].strip()
        if declared:
            part["media_type"] = declared
        is_b64 = header.endswith(";base64")
        part["size_bytes"] = base64_size(payload) if is_b64 else len(payload)
    elif isinstance(url, str) and url.lower().startswith(("http://", "https://")):
        part["source_type"] = "url"
        stripped = _strip_url(url)
        if stripped:
            part["url"] = bound_text(stripped, 2_000)[0]
            if not name and not default_type.startswith("image/"):
                # A linked document: its extension is the best hint there is.
                part["media_type"] = mimetypes.guess_type(stripped)[0] or default_type
    if name:
        part["filename"] = name
    part.update({k: v for k, v in extra.items() if v is not None})
    return part


def file_input_part(
    data: Any, url: Any = None, filename: Any = None, file_id: Any = None
) -> dict[str, Any]:
    """A ``file`` part for an uploaded file: inline data (data URL or bare base64), a URL
    or a file id."""
    part = media_part(
        data if isinstance(data, str) else url,
        default_type="application/octet-stream",
        filename=filename,
        file_id=as_str(file_id),
    )
    if isinstance(data, str) and not data.startswith("data:"):
        part["size_bytes"] = base64_size(data)
    return part


def audio_part(data: Any, audio_format: Any) -> dict[str, Any]:
    """A ``file`` part for base64 audio (``input_audio``) without its bytes."""
    fmt = as_str(audio_format)
    part: dict[str, Any] = {"type": "file", "media_type": _AUDIO_FORMATS.get(fmt or "", "audio/*")}
    if isinstance(data, str):
        part["size_bytes"] = base64_size(data)
    return part


def tool_call_part(call_id: Any, name: Any, arguments: Any, **extra: Any) -> dict[str, Any]:
    """A ``tool-call`` part; ``arguments`` is the raw JSON string, bounded."""
    raw = arguments if isinstance(arguments, str) else ""
    bounded, original = bound_text(raw)
    part: dict[str, Any] = {"type": "tool-call"}
    if isinstance(call_id, str):
        part["tool_call_id"] = call_id
    if isinstance(name, str):
        part["tool_name"] = name
    part["arguments"] = bounded
    if original is not None:
        part["arguments_length"] = original
    part.update({k: v for k, v in extra.items() if v is not None})
    return part


_MEDIA_ITEMS: Final = frozenset({"image_url", "input_image", "input_file", "file", "input_audio"})


def result_text(content: Any) -> str:
    """A tool result as text: strings as is, content-part lists joined line by line."""
    if isinstance(content, str):
        return content
    lines: list[str] = []
    for item in as_list(content):
        if isinstance(item, str):
            lines.append(item)
            continue
        item = as_dict(item)
        text = as_str(item.get("text"))
        if text is not None:
            lines.append(text)
        elif item.get("type") in _MEDIA_ITEMS:
            lines.append(f"[media output: {_media_type(item)}]")
    return "\n".join(lines)


def _media_type(item: dict[str, Any]) -> str:
    image = item.get("image_url")
    if isinstance(image, dict):
        image = image.get("url")
    file = as_dict(item.get("file")) or item
    if image is not None or item.get("type") == "input_image":
        return str(media_part(image, default_type="image/*")["media_type"])
    if item.get("type") == "input_audio":
        return str(audio_part(None, as_dict(item.get("input_audio")).get("format"))["media_type"])
    part = file_input_part(file.get("file_data"), file.get("file_url"), file.get("filename"))
    return str(part["media_type"])


def tool_result_part(call_id: Any, content: Any, **extra: Any) -> dict[str, Any]:
    """A ``tool-result`` part with the result text bounded."""
    bounded, original = bound_text(result_text(content))
    part: dict[str, Any] = {"type": "tool-result"}
    if isinstance(call_id, str):
        part["tool_call_id"] = call_id
    part.update({k: v for k, v in extra.items() if v is not None})
    part["result"] = bounded
    if original is not None:
        part["result_length"] = original
    return part
