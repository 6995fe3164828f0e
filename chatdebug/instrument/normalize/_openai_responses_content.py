"""OpenAI Responses output items and stream events into a :class:`ContentBuilder`.

Parts are keyed by ``output_index`` (and content / summary / annotation index), which
both the final ``output`` array and every stream event carry, so deltas, ``.done``
events, ``response.output_item.done`` and the terminal response all land in the same
slots: whichever arrives first fills a slot, later copies of the same text are ignored.
"""

from __future__ import annotations

import json
from typing import Any, Final

from ._openai_common import (
    as_dict,
    as_int,
    as_list,
    as_str,
    error_info,
    service_tier,
    usage_from,
)
from ._openai_content import ContentBuilder, JsonEventStream
from ._payloads import (
    MAX_STREAM_TEXT_BYTES,
    USAGE_CLOSED_EARLY,
    USAGE_NOT_SENT,
    NormalizedResponse,
    note_missing_usage,
)

__all__ = [
    "HOSTED_CALLS",
    "ResponsesStream",
    "add_item",
    "build_response",
    "call_fields",
    "call_input",
    "final_fields",
    "response_usage",
]

HOSTED_CALLS: Final[dict[str, tuple[str | None, tuple[str, ...], bool]]] = {
    # item type: (tool name, None = the item's ``name``), fields holding the input,
    # whether OpenAI runs it (True) or the application must (False).
    "web_search_call": ("web_search", ("action",), True),
    "file_search_call": ("file_search", ("queries",), True),
    "code_interpreter_call": ("code_interpreter", ("code",), True),
    "image_generation_call": ("image_generation", ("revised_prompt",), True),
    "mcp_call": (None, ("arguments",), True),
    "tool_search_call": ("tool_search", ("arguments",), True),
    "computer_call": ("computer", ("action", "actions"), False),
    "local_shell_call": ("local_shell", ("action",), False),
    "shell_call": ("shell", ("action",), False),
    "apply_patch_call": ("apply_patch", ("operation",), False),
}
CLIENT_CALLS: Final = frozenset({"function_call", "custom_tool_call"}) | {
    kind for kind, (_, _, hosted) in HOSTED_CALLS.items() if not hosted
}
_INPUT_FIELD: Final = {"function_call": "arguments", "custom_tool_call": "input"}
_INCOMPLETE: Final = {"max_output_tokens": "length", "content_filter": "content-filter"}


def _order(
    oi: int, group: int = 0, index: int = 0, sub: int = 0, sub_index: int = 0
) -> tuple[int, ...]:
    return (oi, group, index, sub, sub_index)


def call_input(item: dict[str, Any]) -> str:
    """The input of a tool-call item as text (JSON for structured hosted-tool input)."""
    kind = as_str(item.get("type")) or ""
    if kind in _INPUT_FIELD:
        return as_str(item.get(_INPUT_FIELD[kind])) or ""
    for name in HOSTED_CALLS[kind][1] if kind in HOSTED_CALLS else ():
        value = item.get(name)
        if isinstance(value, str):
            return value
        if value is not None:
            return json.dumps(value, ensure_ascii=False, default=str)
    return ""


def call_fields(item: dict[str, Any]) -> dict[str, Any]:
    """``tool_call_id``, ``tool_name`` and ``provider_executed`` of a tool-call item."""
    kind = as_str(item.get("type")) or ""
    name, _, hosted = HOSTED_CALLS.get(kind, (None, (), False))
    fields: dict[str, Any] = {
        "tool_call_id": as_str(item.get("call_id")) or as_str(item.get("id")),
        "tool_name": name or as_str(item.get("name")),
    }
    if hosted:
        fields["provider_executed"] = True
    return fields


def _tool_slot(builder: ContentBuilder, oi: int, item: dict[str, Any]) -> None:
    slot = builder.slot((oi, "t"), "tool-call", _order(oi))
    for key, value in call_fields(item).items():
        if value is not None:
            slot.fields.setdefault(key, value)


def _source(builder: ContentBuilder, oi: int, ci: int, ai: int, annotation: Any) -> None:
    annotation = as_dict(annotation)
    if annotation.get("type") != "url_citation" or not isinstance(annotation.get("url"), str):
        return
    slot = builder.slot((oi, "a", ci, ai), "source", _order(oi, 0, ci, 1, ai))
    if not slot.fields:
        slot.fields = {"type": "source", "source_type": "url", "url": annotation["url"]}
        if isinstance(annotation.get("title"), str):
            slot.fields["title"] = annotation["title"]


def _message_part(builder: ContentBuilder, oi: int, ci: int, part: dict[str, Any]) -> bool:
    if part.get("type") == "refusal":
        return builder.fill((oi, "c", ci), "refusal", _order(oi, 0, ci), part.get("refusal"))
    for ai, annotation in enumerate(as_list(part.get("annotations"))):
        _source(builder, oi, ci, ai, annotation)
    return builder.fill((oi, "c", ci), "text", _order(oi, 0, ci), part.get("text"))


def add_item(builder: ContentBuilder, oi: int, item: Any) -> bool:
    """Add one output item, filling only slots no delta has filled; True if text was added."""
    item = as_dict(item)
    kind = item.get("type")
    added = False
    if kind == "message":
        for ci, part in enumerate(as_list(item.get("content"))):
            added = _message_part(builder, oi, ci, as_dict(part)) or added
    elif kind == "reasoning":
        for si, part in enumerate(as_list(item.get("summary"))):
            text = as_dict(part).get("text")
            added = builder.fill((oi, "s", si), "reasoning", _order(oi, 0, si), text) or added
        for ci, part in enumerate(as_list(item.get("content"))):
            text = as_dict(part).get("text")
            added = builder.fill((oi, "r", ci), "reasoning", _order(oi, 1, ci), text) or added
    elif kind in _INPUT_FIELD or kind in HOSTED_CALLS:
        _tool_slot(builder, oi, item)
        added = builder.fill((oi, "t"), "tool-call", _order(oi), call_input(item))
    return added


def final_fields(
    response: dict[str, Any], builder: ContentBuilder
) -> tuple[str, str | None, dict[str, Any] | None]:
    """Neutral finish reason, raw provider reason and error of a final response object."""
    status = as_str(response.get("status"))
    error = error_info(response["error"]) if response.get("error") is not None else None
    if status == "incomplete":
        raw = as_str(as_dict(response.get("incomplete_details")).get("reason")) or status
        return _INCOMPLETE.get(raw, "other"), raw, error
    if status == "failed" or error is not None:
        return "error", status, error or {"message": "response failed", "type": "failed"}
    if status == "completed":
        calls = any(as_dict(i).get("type") in CLIENT_CALLS for i in as_list(response.get("output")))
        calls = calls or any(
            s.kind == "tool-call" and not s.fields.get("provider_executed")
            for s in builder.slots.values()
        )
        return ("tool-calls" if calls else "stop"), status, None
    return "other", status, None


def response_usage(usage: Any) -> dict[str, int] | None:
    """The usage object of a Responses ``usage`` block."""
    return usage_from(
        usage, "input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details"
    )


_DELTAS: Final = {
    # event type: (slot tag, index field, kind, sort group)
    "response.output_text.delta": ("c", "content_index", "text", 0),
    "response.refusal.delta": ("c", "content_index", "refusal", 0),
    "response.reasoning_summary_text.delta": ("s", "summary_index", "reasoning", 0),
    "response.reasoning_text.delta": ("r", "content_index", "reasoning", 1),
}
_DONES: Final = {
    "response.output_text.done": ("c", "content_index", "text", 0, "text"),
    "response.refusal.done": ("c", "content_index", "refusal", 0, "refusal"),
    "response.reasoning_summary_text.done": ("s", "summary_index", "reasoning", 0, "text"),
    "response.reasoning_text.done": ("r", "content_index", "reasoning", 1, "text"),
}
_TOOL_DELTAS: Final = frozenset(
    {
        "response.function_call_arguments.delta",
        "response.custom_tool_call_input.delta",
        "response.mcp_call_arguments.delta",
    }
)
_TOOL_DONES: Final = {
    "response.function_call_arguments.done": "arguments",
    "response.custom_tool_call_input.done": "input",
    "response.mcp_call_arguments.done": "arguments",
}
_TERMINAL: Final = frozenset({"response.completed", "response.incomplete", "response.failed"})
_SNAPSHOTS: Final = frozenset({"response.created", "response.in_progress", "response.queued"})


class ResponsesStream(JsonEventStream):
    """Assembles Responses stream events; ``response.completed`` / ``.incomplete`` /
    ``.failed`` and ``error`` are the last event, and the content is final with them
    (they carry the final response, usage included)."""

    def __init__(self) -> None:
        super().__init__()
        self.builder = ContentBuilder(MAX_STREAM_TEXT_BYTES)
        self._final: dict[str, Any] = {}
        self._error: dict[str, Any] | None = None

    def on_json(self, data: dict[str, Any], event_name: str) -> bool:
        kind = as_str(data.get("type")) or event_name
        oi = as_int(data.get("output_index"))
        if kind in _DELTAS:
            tag, index_field, text_kind, group = _DELTAS[kind]
            index = as_int(data.get(index_field))
            slot = self.builder.slot((oi, tag, index), text_kind, _order(oi, group, index))
            delta = as_str(data.get("delta")) or ""
            self.builder.append(slot, delta)
            if delta:
                self.stats.delta(text_kind)
            return bool(delta)
        if kind in _DONES:
            tag, index_field, text_kind, group, field = _DONES[kind]
            index = as_int(data.get(index_field))
            return self.builder.fill(
                (oi, tag, index), text_kind, _order(oi, group, index), data.get(field)
            )
        if kind in _TOOL_DELTAS:
            delta = as_str(data.get("delta")) or ""
            self.builder.append(self.builder.slot((oi, "t"), "tool-call", _order(oi)), delta)
            return bool(delta)
        if kind in _TOOL_DONES:
            return self.builder.fill(
                (oi, "t"), "tool-call", _order(oi), data.get(_TOOL_DONES[kind])
            )
        if kind == "response.content_part.done":
            ci = as_int(data.get("content_index"))
            return _message_part(self.builder, oi, ci, as_dict(data.get("part")))
        if kind == "response.reasoning_summary_part.done":
            si = as_int(data.get("summary_index"))
            text = as_dict(data.get("part")).get("text")
            return self.builder.fill((oi, "s", si), "reasoning", _order(oi, 0, si), text)
        if kind == "response.output_text.annotation.added":
            ci, ai = as_int(data.get("content_index")), as_int(data.get("annotation_index"))
            _source(self.builder, oi, ci, ai, data.get("annotation"))
        elif kind == "response.output_item.added":
            item = as_dict(data.get("item"))
            if item.get("type") in _INPUT_FIELD or item.get("type") in HOSTED_CALLS:
                _tool_slot(self.builder, oi, item)
                return True
        elif kind == "response.output_item.done":
            return add_item(self.builder, oi, data.get("item"))
        elif kind in _SNAPSHOTS or kind in _TERMINAL:
            response = as_dict(data.get("response"))
            # Early snapshots say "in_progress": only the final one decides the outcome.
            keep = response if kind in _TERMINAL else {k: response.get(k) for k in ("model", "id")}
            self._final.update({k: v for k, v in keep.items() if v is not None})
            if kind in _TERMINAL:
                self.terminal_seen = True
                error = final_fields(response, self.builder)[2]
                if error is not None and self._error is None:
                    self._error = error
                    self.stats.error(error)
                for index, item in enumerate(as_list(response.get("output"))):
                    add_item(self.builder, index, item)
        elif kind == "error":
            # The event's own "type" is "error"; the error kind is in "code".
            nested = data.get("error")
            source = nested if isinstance(nested, dict) else {**data, "type": None}
            self._error = error_info(source)
            self.stats.error(self._error)
            self.terminal_seen = True
        return False

    def finish(self) -> NormalizedResponse:
        """The assembled response; ``complete`` is False without a final event."""
        finish, raw, error = final_fields(self._final, self.builder)
        error = self._error or error
        if error is not None:
            finish = "error"
        usage = response_usage(self._final.get("usage"))
        response = build_response(self.builder, finish, raw, usage, self._final)
        summary = self.stats.summary(finish, response["content"], len(response["warnings"]))
        metadata: dict[str, Any] = {"stream_summary": summary}
        # From the final response only: early snapshots echo the requested tier ("auto").
        service_tier(self._final, metadata)
        result = NormalizedResponse(
            response=response,
            usage=usage,
            response_model=as_str(self._final.get("model")),
            finish_reasons=[raw] if raw else [],
            error=error,
            metadata=metadata,
            complete=self.content_final,
        )
        return note_missing_usage(
            result, USAGE_NOT_SENT if self.content_final else USAGE_CLOSED_EARLY
        )


def build_response(
    builder: ContentBuilder,
    finish: str,
    raw: str | None,
    usage: dict[str, int] | None,
    source: dict[str, Any],
) -> dict[str, Any]:
    """The ``normalized_response`` payload."""
    response: dict[str, Any] = {
        "content": builder.parts(),
        "finish_reason": finish,
        "usage": usage,
        "warnings": builder.warnings(),
    }
    if raw:
        response["provider_finish_reason"] = raw
    for key in ("model", "id"):
        if isinstance(source.get(key), str):
            response[key] = source[key]
    return response
