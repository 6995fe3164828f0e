"""Chat Completions message / delta content into a :class:`ContentBuilder`.

A non-streamed ``message`` and the ``delta`` objects of a stream have the same fields, so
both go through :func:`absorb`; that is what makes streamed and non-streamed answers
normalize alike. Text, reasoning and refusal form *runs* (a new part whenever the kind
changes), kept in arrival order; tool calls follow, ordered by their index.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from ._openai_common import as_dict, as_list, as_str
from ._openai_content import ContentBuilder, StreamStats
from ._openai_parts import base64_size

__all__ = ["ChatContent", "absorb"]

_LAST = 1 << 30
_PLAIN_KEYS = frozenset(("role", "content", "refusal"))


class ChatContent:
    """The content of choice 0 under construction."""

    __slots__ = (
        "_last_tool",
        "_run",
        "_run_kind",
        "_seq",
        "_tool_keys",
        "builder",
        "extra_choices",
    )

    def __init__(self, limit: int | None) -> None:
        self.builder = ContentBuilder(limit)
        self.extra_choices: set[int] = set()
        self._seq = 0
        self._run = 0
        self._run_kind: str | None = None
        self._tool_keys: dict[int, Hashable] = {}
        self._last_tool: Hashable = ("tool", "anonymous")

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def text(self, kind: str, text: str) -> None:
        """Append to the current run of ``kind``, starting a new run on a kind change."""
        if kind != self._run_kind:
            self._run += 1
            self._run_kind = kind
        slot = self.builder.slot(("run", self._run), kind, (0, self._next()))
        self.builder.append(slot, text)

    def source(self, url: str, title: str | None) -> None:
        """A cited URL (``url_citation`` annotation)."""
        seq = self._next()
        slot = self.builder.slot(("source", seq), "source", (0, seq))
        slot.fields = {"type": "source", "source_type": "url", "url": url}
        if title:
            slot.fields["title"] = title

    def audio(self, audio: dict[str, Any]) -> bool:
        """Generated audio: its transcript and estimated size, never its bytes."""
        slot = self.builder.slot(("audio",), "file", (0, self._next()))
        if not slot.fields:
            slot.fields = {"type": "file", "media_type": "audio/*"}
        data = as_str(audio.get("data"))
        if data:
            slot.fields["size_bytes"] = slot.fields.get("size_bytes", 0) + base64_size(data)
        transcript = as_str(audio.get("transcript")) or ""
        self.builder.append(slot, transcript)
        return bool(data or transcript)

    def tool(self, index: Any, call_id: Any, name: Any, arguments: Any) -> bool:
        """A tool call or a fragment of one; fragments of one call share its ``index``."""
        call_id = as_str(call_id)
        position = index if isinstance(index, int) and not isinstance(index, bool) else None
        key: Hashable
        if position is not None:
            key = self._tool_keys.get(position) or ("tool", position, 0)
            known = self.builder.slots.get(key)
            if (
                known is not None
                and call_id
                and known.fields.get("tool_call_id") not in (None, call_id)
            ):
                # Some servers reuse index 0 for every call; a new id means a new call.
                key = ("tool", position, self._next())
            self._tool_keys[position] = key
        elif call_id:
            key = ("tool-id", call_id)
        elif index == "function_call":
            key = ("function_call",)
        else:
            key = self._last_tool
        self._last_tool = key
        order = (1, -1 if position is None else position, self._next())
        slot = self.builder.slot(key, "tool-call", order)
        if call_id and "tool_call_id" not in slot.fields:
            slot.fields["tool_call_id"] = call_id
        name = as_str(name)
        if name and "tool_name" not in slot.fields:
            slot.fields["tool_name"] = name
        args = as_str(arguments) or ""
        self.builder.append(slot, args)
        return bool(call_id or name or args)


def _text(content: ChatContent, stats: StreamStats | None, kind: str, text: Any) -> bool:
    if not isinstance(text, str) or not text:
        return False
    content.text(kind, text)
    if stats is not None:
        stats.delta(kind)
    return True


def absorb(
    content: ChatContent,
    obj: dict[str, Any],
    stats: StreamStats | None = None,
    *,
    positional_tools: bool = False,
) -> bool:
    """Add a ``message`` or ``delta`` to ``content``; True when it carried output.

    ``positional_tools`` numbers tool calls by position (messages carry no ``index``).
    """
    body = obj.get("content")
    if (
        obj.keys() <= _PLAIN_KEYS
        and obj.get("refusal") is None
        and (body is None or isinstance(body, str))
    ):
        # Nearly every streamed delta: text (or nothing) and perhaps the role. The same
        # result as the general path below, without its dozen lookups.
        return _text(content, stats, "text", body)
    reasoning = as_str(obj.get("reasoning_content")) or as_str(obj.get("reasoning"))
    out = _text(content, stats, "reasoning", reasoning)
    if isinstance(body, str):
        out = _text(content, stats, "text", body) or out
    for item in as_list(body):
        # Some compatible servers answer with a list of content parts.
        item = as_dict(item)
        kind = "refusal" if item.get("type") == "refusal" else "text"
        out = _text(content, stats, kind, item.get(kind)) or out
    out = _text(content, stats, "refusal", obj.get("refusal")) or out
    for annotation in as_list(obj.get("annotations")):
        citation = as_dict(as_dict(annotation).get("url_citation"))
        if isinstance(citation.get("url"), str):
            content.source(citation["url"], as_str(citation.get("title")))
    if isinstance(obj.get("audio"), dict):
        out = content.audio(obj["audio"]) or out
    for position, call in enumerate(as_list(obj.get("tool_calls"))):
        call = as_dict(call)
        index = position if positional_tools else call.get("index")
        if call.get("type") == "custom":
            custom = as_dict(call.get("custom"))
            out = (
                content.tool(index, call.get("id"), custom.get("name"), custom.get("input")) or out
            )
        else:
            fn = as_dict(call.get("function"))
            out = content.tool(index, call.get("id"), fn.get("name"), fn.get("arguments")) or out
    legacy = obj.get("function_call")
    if isinstance(legacy, dict):
        out = (
            content.tool("function_call", None, legacy.get("name"), legacy.get("arguments")) or out
        )
    return out
