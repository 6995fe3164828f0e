"""Assembly of ``normalized_response`` content for both OpenAI wire formats.

Streamed and non-streamed responses go through the same :class:`ContentBuilder`, so a
streamed answer normalizes to the same parts as the equivalent non-streamed one. A part
lives in a *slot* addressed by a key the caller chooses (a choice's text run, a tool-call
index, a Responses output/content index); deltas append to their slot even when they
interleave with other slots, and :meth:`ContentBuilder.parts` orders slots by the sort
key given when each was created. All text and tool input share one :class:`TextBudget`;
tool-call parts survive the cap with whatever input fitted.
"""

from __future__ import annotations

import sys
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Final

from ._payloads import (
    ELLIPSIS,
    MAX_STREAM_TEXT_BYTES,
    TextBudget,
    bound_text,
    loads_json,
    text_part,
)
from ._sse import SSEEvent

_COMPACT_AT: Final = 64
"""Deltas kept as separate strings before they are joined into one."""

__all__ = ["ContentBuilder", "JsonEventStream", "Slot", "StreamStats"]

TEXT_KINDS: Final = frozenset({"text", "reasoning", "refusal"})


@dataclass(slots=True)
class Slot:
    """One content part under construction."""

    kind: str
    order: tuple[int, ...]
    chunks: list[str] = field(default_factory=list)
    received: int = 0
    """Characters received, including those dropped by the budget."""
    dropped: bool = False
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.received == 0


class ContentBuilder:
    """Collects content parts; ``limit`` None means no global cap (non-streamed bodies)."""

    __slots__ = ("budget", "slots")

    def __init__(self, limit: int | None = MAX_STREAM_TEXT_BYTES) -> None:
        self.budget = TextBudget(sys.maxsize if limit is None else limit)
        self.slots: dict[Hashable, Slot] = {}

    def slot(self, key: Hashable, kind: str, order: tuple[int, ...]) -> Slot:
        """The slot for ``key``, created with ``kind`` and sort key ``order`` if new."""
        found = self.slots.get(key)
        if found is None:
            found = self.slots[key] = Slot(kind, order)
        return found

    def append(self, slot: Slot, text: str) -> None:
        """Add text or tool input to ``slot`` through the shared budget."""
        if not text:
            return
        slot.received += len(text)
        kept = self.budget.take(text)
        if len(kept) < len(text):
            slot.dropped = True
        if kept:
            chunks = slot.chunks
            chunks.append(kept)
            if len(chunks) >= _COMPACT_AT:
                # Thousands of small deltas cost ~50 bytes of object header each: keep
                # them as one string (the text itself is bounded by the budget).
                chunks[:] = ["".join(chunks)]

    def fill(self, key: Hashable, kind: str, order: tuple[int, ...], text: Any) -> bool:
        """Set a slot's whole text from a ``.done`` event or a final item, unless deltas
        already filled it. True when text was added."""
        if not isinstance(text, str) or not text:
            return False
        slot = self.slot(key, kind, order)
        if not slot.empty:
            return False
        self.append(slot, text)
        return True

    def warnings(self) -> list[dict[str, Any]]:
        """A warning when the global cap dropped text or tool input."""
        if not self.budget.exhausted:
            return []
        return [
            {
                "type": "other",
                "message": f"stream text and tool input capped at {MAX_STREAM_TEXT_BYTES} bytes",
            }
        ]

    def parts(self) -> list[dict[str, Any]]:
        """The content parts in slot order; empty text slots are left out."""
        out: list[dict[str, Any]] = []
        for slot in sorted(self.slots.values(), key=lambda s: s.order):
            part = _render(slot)
            if part is not None:
                out.append(part)
        return out


def _render(slot: Slot) -> dict[str, Any] | None:
    text = "".join(slot.chunks)
    if slot.kind in TEXT_KINDS:
        if slot.empty:
            return None
        part = text_part(slot.kind, text)
        if slot.dropped:
            if "text_length" not in part:
                part["text"] = text + ELLIPSIS
            part["text_length"] = slot.received
        return part
    if slot.kind == "tool-call":
        bounded, original = bound_text(text)
        part = {"type": "tool-call"}
        part.update({k: v for k, v in slot.fields.items() if v is not None})
        part["arguments"] = bounded
        if original is not None or slot.dropped:
            part["arguments_length"] = slot.received
        if slot.dropped:
            part["arguments_truncated"] = True
        return part
    # Sources and files carry only their fields; an audio transcript is their text.
    part = dict(slot.fields)
    if not slot.empty:
        bounded, original = bound_text(text)
        part["transcript"] = bounded
        if original is not None or slot.dropped:
            part["transcript_length"] = slot.received
    return part


@dataclass(slots=True)
class StreamStats:
    """Counters for the ``stream_summary`` step metadata."""

    event_count: int = 0
    malformed_event_count: int = 0
    text_delta_count: int = 0
    reasoning_delta_count: int = 0
    error_count: int = 0
    last_error: str | None = None
    extra: dict[str, int] = field(default_factory=dict)

    def delta(self, kind: str) -> None:
        """Count one text-like delta (refusals count as text)."""
        if kind == "reasoning":
            self.reasoning_delta_count += 1
        else:
            self.text_delta_count += 1

    def error(self, payload: dict[str, Any]) -> None:
        """Count one provider error."""
        self.error_count += 1
        self.last_error = payload.get("message")

    def summary(
        self, finish_reason: str, parts: list[dict[str, Any]], warnings: int
    ) -> dict[str, Any]:
        """The ``stream_summary`` object."""
        summary: dict[str, Any] = {
            "finish_reason": finish_reason,
            "text_delta_count": self.text_delta_count,
            "reasoning_delta_count": self.reasoning_delta_count,
            "tool_call_count": sum(1 for p in parts if p.get("type") == "tool-call"),
            "source_count": sum(1 for p in parts if p.get("type") == "source"),
            "warning_count": warnings,
            "error_count": self.error_count,
            "part_count": len(parts),
            "event_count": self.event_count,
            "malformed_event_count": self.malformed_event_count,
        }
        if self.last_error is not None:
            summary["last_error"] = self.last_error
        summary.update(self.extra)
        return summary


class JsonEventStream:
    """Base of the OpenAI stream assemblers: decodes each event's JSON ``data``.

    ``data: [DONE]`` goes to :meth:`on_done`, a JSON object to :meth:`on_json`; data that
    is not a JSON object is counted as malformed, never raised.
    """

    def __init__(self) -> None:
        self.stats = StreamStats()
        self.terminal_seen = False
        self.content_final_seen = False

    @property
    def content_final(self) -> bool:
        """True once the provider's content is final (the subclass decides when), or
        once its last event was seen."""
        return self.content_final_seen or self.terminal_seen

    @property
    def terminal(self) -> bool:
        """True once the provider's last event was seen."""
        return self.terminal_seen

    def feed(self, event: SSEEvent) -> bool:
        """Consume one event; True when it carried model output."""
        self.stats.event_count += 1
        data = event.data.strip()
        if not data:
            return False
        if data == "[DONE]":
            return self.on_done()
        try:
            decoded = loads_json(data)
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict):
            self.stats.malformed_event_count += 1
            return False
        return self.on_json(decoded, event.event)

    def on_done(self) -> bool:
        """``data: [DONE]``: terminal for Chat Completions (and harmless elsewhere)."""
        self.terminal_seen = True
        return False

    def on_json(self, data: dict[str, Any], event_name: str) -> bool:
        """One decoded event; True when it carried model output."""
        raise NotImplementedError
