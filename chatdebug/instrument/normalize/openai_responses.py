"""OpenAI Responses (``POST /v1/responses``), streamed and not.

Requests: ``instructions`` becomes a leading system message, ``input`` items become
messages (consecutive assistant-side items - reasoning, tool calls, assistant messages -
share one assistant message; each tool output is its own tool message). Responses and
streams are assembled by :mod:`._openai_responses_content`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ._openai_common import (
    as_dict,
    as_list,
    as_str,
    choice_string,
    copy_options,
    finish_request,
    function_tool,
    openai_error_payload,
    response_format,
    service_tier,
)
from ._openai_content import ContentBuilder
from ._openai_parts import audio_part, file_input_part, media_part, tool_call_part, tool_result_part
from ._openai_responses_content import (
    HOSTED_CALLS,
    ResponsesStream,
    add_item,
    build_response,
    call_fields,
    call_input,
    final_fields,
    response_usage,
)
from ._payloads import (
    USAGE_NOT_SENT,
    JSONBodyCodec,
    NormalizedResponse,
    note_missing_usage,
    text_part,
)

__all__ = ["OpenAIResponsesCodec"]

_OPTIONS: Final = {
    name: name
    for name in (
        "max_output_tokens",
        "temperature",
        "top_p",
        "top_k",
        "presence_penalty",
        "frequency_penalty",
        "stop",
        "seed",
        "parallel_tool_calls",
    )
}
_HANDLED: Final = frozenset(_OPTIONS) | {
    "input",
    "instructions",
    "model",
    "stream",
    "tools",
    "tool_choice",
    "text",
    "reasoning",
}
_ROLES: Final = {"developer": "system"}
_NEUTRAL_ROLES: Final = frozenset({"system", "user", "assistant"})
_CALL_ITEMS: Final = frozenset({"function_call", "custom_tool_call"}) | frozenset(HOSTED_CALLS)
_OUTPUT_ITEMS: Final = frozenset(
    {
        "function_call_output",
        "custom_tool_call_output",
        "computer_call_output",
        "local_shell_call_output",
        "shell_call_output",
        "apply_patch_call_output",
    }
)


def _content_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [text_part("text", content)]
    parts: list[dict[str, Any]] = []
    for item in as_list(content):
        item = as_dict(item)
        kind = item.get("type")
        if kind == "refusal" and isinstance(item.get("refusal"), str):
            parts.append(text_part("refusal", item["refusal"]))
        elif isinstance(item.get("text"), str):
            # input_text, output_text (assistant turns replayed as input) and summary_text
            parts.append(text_part("text", item["text"]))
        elif kind == "input_image":
            parts.append(
                media_part(
                    item.get("image_url"),
                    default_type="image/*",
                    file_id=as_str(item.get("file_id")),
                )
            )
        elif kind == "input_file":
            parts.append(
                file_input_part(
                    item.get("file_data"),
                    item.get("file_url"),
                    item.get("filename"),
                    item.get("file_id"),
                )
            )
        elif kind == "input_audio":
            audio = as_dict(item.get("input_audio"))
            parts.append(audio_part(audio.get("data"), audio.get("format")))
    return parts


def _attach(messages: list[dict[str, Any]], parts: list[dict[str, Any]]) -> None:
    """Add assistant-side parts to the preceding assistant message, or start one."""
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant" and "original_role" not in last:
        last["parts"].extend(parts)
    else:
        messages.append({"role": "assistant", "parts": parts})


def _add_input(messages: list[dict[str, Any]], item: Any) -> None:
    item = as_dict(item)
    kind = item.get("type")
    if kind in (None, "message") and isinstance(item.get("role"), str):
        role = item["role"]
        neutral = _ROLES.get(role, role)
        parts = _content_parts(item.get("content"))
        if neutral == "assistant":
            _attach(messages, parts)
            return
        message: dict[str, Any] = {"role": neutral if neutral in _NEUTRAL_ROLES else "user"}
        if neutral != role or neutral not in _NEUTRAL_ROLES:
            message["original_role"] = role
        message["parts"] = parts
        messages.append(message)
    elif kind == "reasoning":
        texts = [as_dict(s).get("text") for s in as_list(item.get("summary"))]
        texts += [as_dict(c).get("text") for c in as_list(item.get("content"))]
        _attach(messages, [text_part("reasoning", t) for t in texts if isinstance(t, str)])
    elif kind in _CALL_ITEMS:
        fields = call_fields(item)
        id_, name = fields.pop("tool_call_id"), fields.pop("tool_name")
        _attach(messages, [tool_call_part(id_, name, call_input(item), **fields)])
    elif kind in _OUTPUT_ITEMS:
        output = item.get("output")
        if kind == "computer_call_output":
            # A screenshot: keep its media type only.
            output = [{"type": "input_image", "image_url": as_dict(output).get("image_url")}]
        part = tool_result_part(item.get("call_id"), output, tool_name=as_str(item.get("name")))
        messages.append({"role": "tool", "parts": [part]})


def _tools(tools: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for tool in as_list(tools):
        tool = as_dict(tool)
        kind = as_str(tool.get("type"))
        if kind == "function":
            out.append(
                function_tool(
                    tool.get("name"), tool.get("description"), tool.get("parameters"), "function"
                )
            )
        elif kind == "custom":
            out.append(function_tool(tool.get("name"), tool.get("description"), None, "custom"))
        elif kind:
            # Built-in tools run by OpenAI (or by the app, for computer/shell/apply_patch).
            name = as_str(tool.get("server_label")) or as_str(tool.get("name")) or kind
            out.append(
                {
                    "type": "provider-defined",
                    "id": f"openai.{kind}",
                    "name": name,
                    "has_input_schema": False,
                }
            )
    return out


class OpenAIResponsesCodec(JSONBodyCodec):
    """Codec for the OpenAI Responses API."""

    name = "openai.responses"
    operation_name = "chat"

    def normalize_request(self, body: Any) -> dict[str, Any]:
        """``normalized_request`` of a Responses request body."""
        body = as_dict(body)
        messages: list[dict[str, Any]] = []
        if isinstance(body.get("instructions"), str):
            messages.append({"role": "system", "parts": [text_part("text", body["instructions"])]})
        source = body.get("input")
        if isinstance(source, str):
            messages.append({"role": "user", "parts": [text_part("text", source)]})
        for item in as_list(source):
            _add_input(messages, item)
        options: dict[str, Any] = {}
        copy_options(body, _OPTIONS, options)
        reasoning, text = as_dict(body.get("reasoning")), as_dict(body.get("text"))
        # ``generate_summary`` is the deprecated spelling of ``summary``.
        copy_options(
            reasoning,
            {
                "effort": "reasoning_effort",
                "summary": "reasoning_summary",
                "generate_summary": "reasoning_summary",
            },
            options,
        )
        copy_options(text, {"verbosity": "verbosity"}, options)
        out: dict[str, Any] = {
            "messages": messages,
            "tools": _tools(body.get("tools")),
            "options": options,
        }
        return finish_request(
            out,
            body,
            tool_choice=choice_string(body.get("tool_choice")),
            response_format=response_format(text.get("format")),
            handled=_HANDLED,
        )

    def normalize_response(self, body: Any) -> NormalizedResponse:
        """From a non-streamed ``response`` object."""
        body = as_dict(body)
        builder = ContentBuilder(None)
        for index, item in enumerate(as_list(body.get("output"))):
            add_item(builder, index, item)
        finish, raw, error = final_fields(body, builder)
        if error is not None:
            finish = "error"
        usage = response_usage(body.get("usage"))
        metadata: dict[str, Any] = {}
        service_tier(body, metadata)
        result = NormalizedResponse(
            response=build_response(builder, finish, raw, usage, body),
            usage=usage,
            response_model=as_str(body.get("model")),
            finish_reasons=[raw] if raw else [],
            error=error,
            metadata=metadata,
        )
        return note_missing_usage(result, USAGE_NOT_SENT)

    def new_stream(self, request: Mapping[str, Any] | None = None) -> ResponsesStream:
        """A fresh assembler for one Responses event stream (usage always comes with the
        final event, whatever the request)."""
        return ResponsesStream()

    def error_payload(self, status: int, body: Any) -> dict[str, Any]:
        """The step ``error`` of an HTTP error response."""
        return openai_error_payload(status, body)
