"""Assembles an Anthropic Messages SSE stream into the normalized response.

Event flow: ``message_start`` → per block ``content_block_start`` /
``content_block_delta``… / ``content_block_stop`` → ``message_delta`` → ``message_stop``;
``ping`` may come anywhere and ``error`` ends the stream. The content is final at the
``message_delta`` that carries a ``stop_reason`` (with the final usage): clients such as
LiteLLM close the stream there, without reading ``message_stop``. Blocks are kept by
``index``
so deltas of interleaved blocks land in the right place, and content is built at
:meth:`AnthropicStreamAssembler.finish` with the same converters as a non-streamed
message, so both give the same payload.
"""

from __future__ import annotations

from typing import Any, Final

from ._anthropic_parts import (
    block_parts,
    citation_source,
    compact_json,
    finish_reason,
    response_payload,
    tool_call_part,
    usage_from,
)
from ._payloads import (
    ELLIPSIS,
    MAX_STREAM_TEXT_BYTES,
    USAGE_CLOSED_EARLY,
    USAGE_NOT_SENT,
    NormalizedResponse,
    TextBudget,
    bound_text,
    loads_json,
    note_missing_usage,
    text_part,
)
from ._sse import SSEEvent

_COMPACT_AT: Final = 64
"""Deltas kept as separate strings before they are joined into one."""

__all__ = ["AnthropicStreamAssembler", "stream_error_payload"]

MAX_STREAM_BLOCKS: Final = 1_000
"""Content blocks (and citations) kept per stream; more are counted as dropped."""

_COUNTERS: Final = ("event", "malformed_event", "text_delta", "reasoning_delta",
                    "signature_delta", "ping", "error", "citation", "dropped_part")  # fmt: skip
_RETRYABLE_ERROR_TYPES: Final = frozenset(
    {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}
)


def stream_error_payload(error: object, raw: str = "", request_id: object = None) -> dict[str, Any]:
    """The error payload for an in-band ``{"type": "error", "error": {...}}``."""
    message = error.get("message") if isinstance(error, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    text = message if isinstance(message, str) and message else raw or "stream error"
    error_type = kind if isinstance(kind, str) and kind else "stream_error"
    payload: dict[str, Any] = {
        "message": bound_text(text)[0],
        "type": error_type,
        "is_retryable": error_type in _RETRYABLE_ERROR_TYPES,
    }
    if isinstance(request_id, str):
        payload["request_id"] = bound_text(request_id, 200)[0]
    return payload


class _Block:
    """One content block being streamed. ``kind`` is ``text``, ``thinking``, ``tool``
    or ``static`` (a block that arrives whole in ``content_block_start``)."""

    __slots__ = (
        "call_id",
        "chunks",
        "cut",
        "extra",
        "initial_input",
        "kind",
        "name",
        "provider_executed",
        "seen",
        "signed",
    )

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.chunks: list[str] = []
        self.seen = 0  # characters received, kept or not
        self.cut = False  # the stream budget dropped some of them
        self.signed = False
        self.call_id: object = None
        self.name: object = None
        self.provider_executed = False
        self.initial_input: object = {}
        self.extra: list[dict[str, Any]] = []  # citations' sources, or a static block

    def add(self, text: object, budget: TextBudget) -> bool:
        if not isinstance(text, str) or not text:
            return False
        self.seen += len(text)
        kept = budget.take(text)
        if kept:
            self.chunks.append(kept)
            if len(self.chunks) >= _COMPACT_AT:
                # Small deltas cost ~50 bytes of object header each: keep one string.
                self.chunks[:] = ["".join(self.chunks)]
        if len(kept) < len(text):
            self.cut = True
        return True

    def parts(self) -> list[dict[str, Any]]:
        if self.kind == "static":
            return [dict(part) for part in self.extra]
        joined = "".join(self.chunks)
        if self.kind == "tool":
            return [self._tool_part(joined)]
        part = text_part(
            "text" if self.kind == "text" else "reasoning",
            joined,
            has_signature=True if self.signed else None,
        )
        if self.cut:
            if "text_length" not in part:
                part["text"] = joined + ELLIPSIS
            part["text_length"] = self.seen
        return [part, *(dict(source) for source in self.extra)]

    def _tool_part(self, arguments: str) -> dict[str, Any]:
        if self.cut:
            return tool_call_part(
                self.call_id,
                self.name,
                arguments,
                received=self.seen,
                provider_executed=self.provider_executed,
            )
        if not arguments:
            arguments = compact_json(self.initial_input)
        else:
            # Re-encode compactly so the result equals the non-streamed ``input``; a
            # stream cut mid-argument keeps the raw partial JSON.
            try:
                arguments = compact_json(loads_json(arguments)) or arguments
            except (ValueError, RecursionError):
                pass
        return tool_call_part(
            self.call_id, self.name, arguments, provider_executed=self.provider_executed
        )


class AnthropicStreamAssembler:
    """Feeds on the SSE events of one ``/v1/messages`` stream (see module docstring)."""

    def __init__(self) -> None:
        self._blocks: dict[int, _Block] = {}
        self._budget = TextBudget()
        self._message: dict[str, Any] = {}
        self._usage: dict[str, Any] | None = None
        self._error: dict[str, Any] | None = None
        self._terminal = False
        self._content_final = False
        self._counts = dict.fromkeys(_COUNTERS, 0)

    @property
    def content_final(self) -> bool:
        """True after a ``message_delta`` with a ``stop_reason``, ``message_stop`` or an
        ``error`` event."""
        return self._content_final or self._terminal

    @property
    def terminal(self) -> bool:
        """True after ``message_stop`` or an ``error`` event."""
        return self._terminal

    def feed(self, event: SSEEvent) -> bool:
        """Consume one event; True when it carried text, thinking or tool input."""
        counts = self._counts
        counts["event"] += 1
        try:
            data = loads_json(event.data)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            if event.event == "error":
                self._on_error(None, event.data)
            else:
                counts["malformed_event"] += 1
            return False
        kind = data.get("type")
        if not isinstance(kind, str):
            kind = event.event
        if kind == "content_block_delta":
            return self._on_delta(data)
        if kind == "content_block_start":
            self._on_start(data)
        elif kind == "message_delta":
            self._on_message_delta(data)
        elif kind == "message_start":
            message = data.get("message")
            if isinstance(message, dict):
                self._message.update({k: message.get(k) for k in ("model", "id") if k in message})
                self._merge_usage(message.get("usage"))
        elif kind == "message_stop":
            self._terminal = True
        elif kind == "ping":
            counts["ping"] += 1
        elif kind == "error":
            self._on_error(data.get("error"), event.data, data.get("request_id"))
        elif kind != "content_block_stop":
            counts["malformed_event"] += 1
        return False

    def _block(self, index: object, kind: str) -> _Block | None:
        if not isinstance(index, int) or isinstance(index, bool):
            self._counts["malformed_event"] += 1
            return None
        block = self._blocks.get(index)
        if block is None:
            if len(self._blocks) >= MAX_STREAM_BLOCKS:
                self._counts["dropped_part"] += 1
                return None
            block = self._blocks[index] = _Block(kind)
        return block

    def _on_start(self, data: dict[str, Any]) -> None:
        content = data.get("content_block")
        if not isinstance(content, dict):
            self._counts["malformed_event"] += 1
            return
        kind = content.get("type")
        if kind in ("text", "thinking"):
            block = self._block(data.get("index"), kind)
            if block is not None:
                block.add(content.get(kind), self._budget)
                block.signed = block.signed or bool(content.get("signature"))
                citations = content.get("citations")
                for citation in citations if isinstance(citations, list) else ():
                    self._add_citation(block, citation)
        elif kind in ("tool_use", "server_tool_use"):
            block = self._block(data.get("index"), "tool")
            if block is not None:
                block.call_id, block.name = content.get("id"), content.get("name")
                block.initial_input = content.get("input", {})
                block.provider_executed = kind == "server_tool_use"
        else:
            block = self._block(data.get("index"), "static")
            if block is not None:
                block.extra = block_parts(content)

    def _on_delta(self, data: dict[str, Any]) -> bool:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            self._counts["malformed_event"] += 1
            return False
        kind = delta.get("type")
        if kind == "text_delta":
            self._counts["text_delta"] += 1
            block = self._block(data.get("index"), "text")
            return block is not None and block.add(delta.get("text"), self._budget)
        if kind == "thinking_delta":
            self._counts["reasoning_delta"] += 1
            block = self._block(data.get("index"), "thinking")
            return block is not None and block.add(delta.get("thinking"), self._budget)
        if kind == "input_json_delta":
            block = self._block(data.get("index"), "tool")
            return block is not None and block.add(delta.get("partial_json"), self._budget)
        if kind == "signature_delta":
            self._counts["signature_delta"] += 1
            block = self._block(data.get("index"), "thinking")
            if block is not None:
                block.signed = True
        elif kind == "citations_delta":
            block = self._block(data.get("index"), "text")
            if block is not None:
                self._add_citation(block, delta.get("citation"))
        else:
            self._counts["malformed_event"] += 1
        return False

    def _add_citation(self, block: _Block, citation: object) -> None:
        if not isinstance(citation, dict):
            return
        if self._counts["citation"] >= MAX_STREAM_BLOCKS:
            self._counts["dropped_part"] += 1
            return
        self._counts["citation"] += 1
        block.extra.append(citation_source(citation))

    def _on_message_delta(self, data: dict[str, Any]) -> None:
        delta = data.get("delta")
        if isinstance(delta, dict):
            for key in ("stop_reason", "stop_sequence", "stop_details"):
                if delta.get(key) is not None:
                    self._message[key] = delta[key]
            if delta.get("stop_reason") is not None:
                self._content_final = True
        self._merge_usage(data.get("usage"))

    def _merge_usage(self, usage: object) -> None:
        # message_delta counts are cumulative: the latest non-null value of each wins.
        if isinstance(usage, dict):
            if self._usage is None:
                self._usage = {}
            self._usage.update({k: v for k, v in usage.items() if v is not None})

    def _on_error(self, error: object, raw: str, request_id: object = None) -> None:
        self._error = stream_error_payload(error, raw, request_id)
        self._counts["error"] += 1
        self._terminal = True

    def finish(self) -> NormalizedResponse:
        """The normalized response so far; ``complete`` is :attr:`content_final`."""
        content: list[dict[str, Any]] = []
        for index in sorted(self._blocks):
            content.extend(self._blocks[index].parts())
        raw_reason = self._message.get("stop_reason")
        reason = "error" if self._error is not None else finish_reason(raw_reason)
        usage = usage_from(self._usage)
        warnings: list[dict[str, Any]] = []
        if self._budget.exhausted:
            message = f"stream text and tool input capped at {MAX_STREAM_TEXT_BYTES} bytes"
            warnings.append({"type": "other", "message": message})
        counts = self._counts
        summary: dict[str, Any] = {
            "finish_reason": reason,
            "text_delta_count": counts["text_delta"],
            "reasoning_delta_count": counts["reasoning_delta"],
            "tool_call_count": sum(p["type"] == "tool-call" for p in content),
            "source_count": sum(p["type"] == "source" for p in content),
            "warning_count": len(warnings),
            "error_count": counts["error"],
            "part_count": len(content),
            "event_count": counts["event"],
            "malformed_event_count": counts["malformed_event"],
            "signature_delta_count": counts["signature_delta"],
            "ping_count": counts["ping"],
        }
        if self._error is not None:
            summary["last_error"] = self._error["message"]
        if counts["dropped_part"]:
            summary["dropped_part_count"] = counts["dropped_part"]
        model = self._message.get("model")
        result = NormalizedResponse(
            response=response_payload(content, reason, self._message, usage, warnings),
            usage=usage,
            response_model=model if isinstance(model, str) else None,
            finish_reasons=[raw_reason] if isinstance(raw_reason, str) else [],
            error=self._error,
            metadata={"stream_summary": summary},
            complete=self.content_final,
        )
        return note_missing_usage(
            result, USAGE_NOT_SENT if self.content_final else USAGE_CLOSED_EARLY
        )
