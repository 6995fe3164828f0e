"""OpenAI Chat Completions (``POST /v1/chat/completions``), streamed and not.

The same wire format is spoken by Azure OpenAI, vLLM, Ollama, OpenRouter, Groq and many
other OpenAI-compatible servers, so the usual extensions are understood too: reasoning
text in ``reasoning_content`` (DeepSeek, vLLM) or ``reasoning`` (OpenRouter, Ollama),
usage in ``x_groq``, errors as ``{"error": "text"}``. Only choice 0 is assembled.

A stream's content is final at the chunk that gives every choice seen a
``finish_reason``; usage comes in a later chunk, and only when the request set
``stream_options.include_usage`` (kept as the ``include_usage`` option), then
``data: [DONE]`` ends the stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ._openai_chat_content import ChatContent, absorb
from ._openai_common import (
    as_dict,
    as_int,
    as_list,
    as_str,
    choice_string,
    copy_options,
    error_info,
    finish_request,
    function_tool,
    neutral_finish,
    openai_error_payload,
    response_format,
    service_tier,
    usage_from,
)
from ._openai_content import JsonEventStream
from ._openai_parts import audio_part, file_input_part, media_part, tool_call_part, tool_result_part
from ._payloads import (
    MAX_STREAM_TEXT_BYTES,
    USAGE_CLOSED_EARLY,
    USAGE_NOT_REQUESTED,
    USAGE_NOT_SENT,
    JSONBodyCodec,
    NormalizedResponse,
    note_missing_usage,
    text_part,
)

__all__ = ["OpenAIChatCodec"]

_OPTIONS: Final = {
    "max_completion_tokens": "max_output_tokens",
    "max_tokens": "max_output_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "stop": "stop",
    "seed": "seed",
    "n": "n",
    "reasoning_effort": "reasoning_effort",
    "parallel_tool_calls": "parallel_tool_calls",
    "verbosity": "verbosity",
}
_HANDLED: Final = frozenset(_OPTIONS) | {
    "messages",
    "model",
    "stream",
    "tools",
    "functions",
    "tool_choice",
    "function_call",
    "response_format",
    "stream_options",
}
_ROLES: Final = {"developer": "system", "function": "tool"}
_NEUTRAL_ROLES: Final = frozenset({"system", "user", "assistant", "tool"})


def _usage(usage: Any) -> dict[str, int] | None:
    return usage_from(
        usage,
        "prompt_tokens",
        "completion_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
    )


def _content_parts(content: Any) -> list[dict[str, Any]]:
    """Request message content: a string or a list of content parts."""
    if isinstance(content, str):
        return [text_part("text", content)]
    parts: list[dict[str, Any]] = []
    for item in as_list(content):
        if isinstance(item, str):
            parts.append(text_part("text", item))
            continue
        item = as_dict(item)
        kind = item.get("type")
        if kind == "text" and isinstance(item.get("text"), str):
            parts.append(text_part("text", item["text"]))
        elif kind == "refusal" and isinstance(item.get("refusal"), str):
            parts.append(text_part("refusal", item["refusal"]))
        elif kind == "image_url":
            image = item.get("image_url")
            url = image if isinstance(image, str) else as_dict(image).get("url")
            parts.append(media_part(url, default_type="image/*"))
        elif kind == "input_audio":
            audio = as_dict(item.get("input_audio"))
            parts.append(audio_part(audio.get("data"), audio.get("format")))
        elif kind == "file":
            file = as_dict(item.get("file"))
            parts.append(
                file_input_part(
                    file.get("file_data"), None, file.get("filename"), file.get("file_id")
                )
            )
    return parts


def _message(msg: Any) -> dict[str, Any] | None:
    msg = as_dict(msg)
    role = as_str(msg.get("role"))
    if role is None:
        return None
    neutral = _ROLES.get(role, role)
    out: dict[str, Any] = {"role": neutral if neutral in _NEUTRAL_ROLES else "user"}
    if neutral != role or neutral not in _NEUTRAL_ROLES:
        out["original_role"] = role
    content = msg.get("content")
    if role == "tool":
        parts = [tool_result_part(msg.get("tool_call_id"), content)]
    elif role == "function":
        parts = [tool_result_part(None, content, tool_name=as_str(msg.get("name")))]
    else:
        parts = []
        reasoning = as_str(msg.get("reasoning_content")) or as_str(msg.get("reasoning"))
        if reasoning:
            parts.append(text_part("reasoning", reasoning))
        parts.extend(_content_parts(content))
        if isinstance(msg.get("refusal"), str):
            parts.append(text_part("refusal", msg["refusal"]))
        for call in as_list(msg.get("tool_calls")):
            call = as_dict(call)
            if call.get("type") == "custom":
                custom = as_dict(call.get("custom"))
                parts.append(
                    tool_call_part(call.get("id"), custom.get("name"), custom.get("input"))
                )
            else:
                fn = as_dict(call.get("function"))
                parts.append(tool_call_part(call.get("id"), fn.get("name"), fn.get("arguments")))
        legacy = msg.get("function_call")
        if isinstance(legacy, dict):
            parts.append(tool_call_part(None, legacy.get("name"), legacy.get("arguments")))
    out["parts"] = parts
    return out


def _tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    for tool in as_list(body.get("tools")):
        tool = as_dict(tool)
        if tool.get("type") == "custom":
            custom = as_dict(tool.get("custom"))
            tools.append(
                function_tool(custom.get("name"), custom.get("description"), None, "custom")
            )
        elif tool:
            fn = as_dict(tool.get("function"))
            tools.append(
                function_tool(
                    fn.get("name"), fn.get("description"), fn.get("parameters"), "function"
                )
            )
    for fn in as_list(body.get("functions")):
        fn = as_dict(fn)
        tools.append(
            function_tool(fn.get("name"), fn.get("description"), fn.get("parameters"), "function")
        )
    return tools


class OpenAIChatCodec(JSONBodyCodec):
    """Codec for OpenAI Chat Completions and compatible servers."""

    name = "openai.chat_completions"
    operation_name = "chat"

    def normalize_request(self, body: Any) -> dict[str, Any]:
        """``normalized_request`` of a Chat Completions request body."""
        body = as_dict(body)
        messages = [m for m in map(_message, as_list(body.get("messages"))) if m is not None]
        options: dict[str, Any] = {}
        copy_options(body, _OPTIONS, options)
        # Whether a stream asked for usage explains a stream that has none.
        stream_options = as_dict(body.get("stream_options"))
        copy_options(stream_options, {"include_usage": "include_usage"}, options)
        out: dict[str, Any] = {"messages": messages, "tools": _tools(body), "options": options}
        return finish_request(
            out,
            body,
            tool_choice=choice_string(body.get("tool_choice"))
            or choice_string(body.get("function_call")),
            response_format=response_format(body.get("response_format")),
            handled=_HANDLED,
        )

    def normalize_response(self, body: Any) -> NormalizedResponse:
        """From a non-streamed ``chat.completion`` body."""
        body = as_dict(body)
        content = ChatContent(None)
        choices = [as_dict(c) for c in as_list(body.get("choices"))]
        first = next((c for c in choices if as_int(c.get("index")) == 0), {})
        absorb(content, as_dict(first.get("message")), positional_tools=True)
        raw = as_str(first.get("finish_reason"))
        error = error_info(body["error"]) if body.get("error") is not None else None
        usage = _usage(body.get("usage"))
        model = as_str(body.get("model"))
        response = _response(content, raw, "error" if error else neutral_finish(raw), usage, body)
        reasons = [r for r in (as_str(c.get("finish_reason")) for c in choices) if r]
        metadata: dict[str, Any] = {}
        service_tier(body, metadata)
        result = NormalizedResponse(
            response=response,
            usage=usage,
            response_model=model,
            finish_reasons=reasons,
            error=error,
            metadata=metadata,
        )
        return note_missing_usage(result, USAGE_NOT_SENT)

    def new_stream(self, request: Mapping[str, Any] | None = None) -> ChatStream:
        """A fresh assembler for one ``text/event-stream`` of chunks; ``request`` (the
        ``normalized_request``) tells whether usage was asked for."""
        return ChatStream(usage_requested=_asked_for_usage(request))

    def error_payload(self, status: int, body: Any) -> dict[str, Any]:
        """The step ``error`` of an HTTP error response."""
        return openai_error_payload(status, body)


def _response(
    content: ChatContent,
    raw: str | None,
    finish: str,
    usage: dict[str, int] | None,
    body: dict[str, Any],
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "content": content.builder.parts(),
        "finish_reason": finish,
        "usage": usage,
        "warnings": content.builder.warnings(),
    }
    if raw:
        response["provider_finish_reason"] = raw
    for key in ("model", "id"):
        if isinstance(body.get(key), str):
            response[key] = body[key]
    return response


def _asked_for_usage(request: Mapping[str, Any] | None) -> bool | None:
    """Whether a streamed request asked for usage (``stream_options.include_usage``):
    None when unknown (no request, or a body that was not a JSON stream request)."""
    if not isinstance(request, Mapping) or request.get("stream") is not True:
        return None
    options = request.get("options")
    return isinstance(options, Mapping) and options.get("include_usage") is True


class ChatStream(JsonEventStream):
    """Assembles ``chat.completion.chunk`` events. The content is final once every
    choice seen has a ``finish_reason``; ``data: [DONE]`` is the last event.

    ``usage_requested`` (None: unknown) says whether the request set
    ``stream_options.include_usage``; it only explains a missing usage.
    """

    def __init__(self, *, usage_requested: bool | None = None) -> None:
        super().__init__()
        self._usage_requested = usage_requested
        self._content = ChatContent(MAX_STREAM_TEXT_BYTES)
        self._raw: dict[int, str] = {}
        self._choices: set[int] = set()
        self._usage: dict[str, int] | None = None
        self._meta: dict[str, Any] = {}
        self._tier: dict[str, Any] = {}
        self._error: dict[str, Any] | None = None

    def on_json(self, chunk: dict[str, Any], event_name: str) -> bool:
        for key in ("model", "id"):
            if isinstance(chunk.get(key), str):
                self._meta[key] = chunk[key]
        service_tier(chunk, self._tier)  # every chunk says it: the last one stands
        if chunk.get("error") is not None or event_name == "error":
            self._error = error_info(chunk["error"] if chunk.get("error") is not None else chunk)
            self.stats.error(self._error)
        usage = chunk.get("usage")
        if not isinstance(usage, dict):
            usage = as_dict(chunk.get("x_groq")).get("usage")
        if isinstance(usage, dict):
            self._usage = _usage(usage)
        output = False
        for choice in as_list(chunk.get("choices")):
            choice = as_dict(choice)
            index = as_int(choice.get("index"))
            self._choices.add(index)
            if isinstance(choice.get("finish_reason"), str):
                self._raw[index] = choice["finish_reason"]
            if index != 0:
                self._content.extra_choices.add(index)
                continue
            output = absorb(self._content, as_dict(choice.get("delta")), self.stats) or output
        if self._raw:
            # Usage may follow in a later chunk, but the answer can no longer change.
            self.content_final_seen = self._choices <= self._raw.keys()
        return output

    def finish(self) -> NormalizedResponse:
        """The assembled response; ``complete`` is False until every choice has a
        ``finish_reason`` (or ``[DONE]`` came)."""
        raw = self._raw.get(0)
        finish = "error" if self._error else neutral_finish(raw)
        response = _response(self._content, raw, finish, self._usage, self._meta)
        self.stats.extra["extra_choice_count"] = len(self._content.extra_choices)
        summary = self.stats.summary(finish, response["content"], len(response["warnings"]))
        result = NormalizedResponse(
            response=response,
            usage=self._usage,
            response_model=as_str(self._meta.get("model")),
            finish_reasons=[self._raw[i] for i in sorted(self._raw)],
            error=self._error,
            metadata={"stream_summary": summary, **self._tier},
            complete=self.content_final,
        )
        if self._usage_requested is False:
            reason = USAGE_NOT_REQUESTED
        elif self.terminal_seen:
            reason = USAGE_NOT_SENT
        else:
            # The usage chunk comes after the finish reason, just before [DONE].
            reason = USAGE_CLOSED_EARLY
        return note_missing_usage(result, reason)
