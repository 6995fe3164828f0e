"""Every field of the OpenAI SDK's request and response types is either normalized or
explicitly skipped (with the reason), so an SDK upgrade that adds a field fails here until
someone decides what to do with it.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import typing_extensions
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionAssistantMessageParam,
    ChatCompletionChunk,
    ChatCompletionContentPartImageParam,
    ChatCompletionContentPartInputAudioParam,
    ChatCompletionContentPartRefusalParam,
    ChatCompletionContentPartTextParam,
    ChatCompletionCustomToolParam,
    ChatCompletionDeveloperMessageParam,
    ChatCompletionFunctionMessageParam,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessage,
    ChatCompletionMessageCustomToolCall,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionSystemMessageParam,
    ChatCompletionToolMessageParam,
    ChatCompletionUserMessageParam,
    chat_completion,
    chat_completion_chunk,
    chat_completion_content_part_image_param,
    chat_completion_content_part_input_audio_param,
    chat_completion_content_part_param,
    chat_completion_custom_tool_param,
    chat_completion_message,
    chat_completion_message_custom_tool_call,
    chat_completion_message_function_tool_call,
    completion_create_params,
)
from openai.types.chat.chat_completion_audio import ChatCompletionAudio
from openai.types.completion_usage import (
    CompletionTokensDetails,
    CompletionUsage,
    PromptTokensDetails,
)
from openai.types.responses import (
    EasyInputMessageParam,
    Response,
    ResponseCustomToolCall,
    ResponseError,
    ResponseFunctionToolCall,
    ResponseFunctionToolCallParam,
    ResponseInputFileParam,
    ResponseInputImageParam,
    ResponseInputTextParam,
    ResponseOutputMessage,
    ResponseOutputMessageParam,
    ResponseOutputRefusal,
    ResponseOutputText,
    ResponseReasoningItem,
    ResponseReasoningItemParam,
    ResponseStreamEvent,
    ResponseTextConfigParam,
    ResponseUsage,
    response_create_params,
    response_input_param,
    response_output_text,
    response_usage,
)
from openai.types.responses.response import IncompleteDetails
from openai.types.responses.response_format_text_json_schema_config_param import (
    ResponseFormatTextJSONSchemaConfigParam,
)
from openai.types.responses.response_input_item_param import ResponseInputItemParam
from openai.types.shared_params import FunctionDefinition, Reasoning

from chatdebug.instrument.normalize._openai_responses_content import HOSTED_CALLS
from chatdebug.instrument.normalize.openai_chat import OpenAIChatCodec
from chatdebug.instrument.normalize.openai_responses import OpenAIResponsesCodec

CACHE = "prompt-cache hint, not content"


def fields(cls: type) -> set[str]:
    """Field names of an SDK model or TypedDict, including inherited ones."""
    if typing_extensions.is_typeddict(cls):
        return set(typing_extensions.get_type_hints(cls))
    return set(cls.model_fields)  # type: ignore[attr-defined]


def type_literals(union: Any) -> set[str]:
    """Every ``type`` literal of the members of a (possibly annotated) union."""
    found: set[str] = set()

    def literals(tp: Any) -> None:
        if typing_extensions.get_origin(tp) is typing.Literal:
            found.update(a for a in typing_extensions.get_args(tp) if isinstance(a, str))
        else:
            for arg in typing_extensions.get_args(tp):
                literals(arg)

    def walk(tp: Any) -> None:
        origin = typing_extensions.get_origin(tp)
        if origin is typing.Annotated:
            walk(typing_extensions.get_args(tp)[0])
        elif origin is not None:  # Union, List, Iterable ...
            for arg in typing_extensions.get_args(tp):
                walk(arg)
        elif typing_extensions.is_typeddict(tp):
            literals(typing_extensions.get_type_hints(tp)["type"])
        elif isinstance(tp, type) and hasattr(tp, "model_fields"):
            literals(tp.model_fields["type"].annotation)

    walk(union)
    return found


def hint(cls: type, name: str) -> Any:
    return typing_extensions.get_type_hints(cls)[name]


# name -> (what the SDK has, normalized names, {skipped name: reason})
Case = tuple[Callable[[], set[str]], set[str], Mapping[str, str]]

PROVIDER_OPTIONS = "counted in provider_option_count, not stored"

CHAT_REQUEST_NORMALIZED = {
    "messages", "model", "stream", "tools", "functions", "tool_choice", "function_call",
    "response_format", "max_completion_tokens", "max_tokens", "temperature", "top_p",
    "presence_penalty", "frequency_penalty", "stop", "seed", "n", "reasoning_effort",
    "parallel_tool_calls", "verbosity", "stream_options",
}  # fmt: skip
CHAT_REQUEST_SKIPPED = dict.fromkeys(
    [
        "audio", "logit_bias", "logprobs", "metadata", "modalities", "moderation", "prediction",
        "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention",
        "safety_identifier", "service_tier", "store", "top_logprobs", "user",
        "web_search_options",
    ],
    PROVIDER_OPTIONS,
)  # fmt: skip
RESPONSES_REQUEST_NORMALIZED = {
    "input", "instructions", "model", "stream", "tools", "tool_choice", "text", "reasoning",
    "max_output_tokens", "temperature", "top_p", "parallel_tool_calls",
}  # fmt: skip
RESPONSES_REQUEST_SKIPPED = dict.fromkeys(
    [
        "access_programs", "background", "background_options", "context_management",
        "conversation", "image", "include", "max_tool_calls", "metadata", "moderation",
        "previous_response_id", "prompt", "prompt_cache_key", "prompt_cache_options",
        "prompt_cache_retention", "safety_identifier", "service_tier", "store",
        "stream_options", "top_logprobs", "truncation", "user",
    ],
    PROVIDER_OPTIONS,
)  # fmt: skip

HOSTED = set(HOSTED_CALLS)
TOOL_OUTPUTS = {
    "function_call_output", "custom_tool_call_output", "computer_call_output",
    "local_shell_call_output", "shell_call_output", "apply_patch_call_output",
}  # fmt: skip
SERVER_STATE_ITEMS = {
    "compaction": "opaque encrypted context",
    "compaction_trigger": "server-side context management",
    "configuration_update": "server-side configuration change",
    "additional_tools": "tool list change, not conversation content",
    "mcp_list_tools": "server-side MCP tool discovery",
    "mcp_approval_request": "MCP approval bookkeeping",
    "mcp_approval_response": "MCP approval bookkeeping",
    "tool_search_output": "server-side tool discovery result",
    "program": "programmatic tool calling internals",
    "program_output": "programmatic tool calling internals",
}
PROGRESS = "progress notification without content"
WHOLE_LATER = "the code arrives whole in output_item.done"

CASES: dict[str, Case] = {
    # ---------------------------------------------------------------- chat: request
    "chat.CompletionCreateParams": (
        lambda: fields(completion_create_params.CompletionCreateParamsStreaming),
        CHAT_REQUEST_NORMALIZED,
        CHAT_REQUEST_SKIPPED,
    ),
    "chat.SystemMessage": (
        lambda: fields(ChatCompletionSystemMessageParam),
        {"content", "role"},
        {"name": "participant name, not content"},
    ),
    "chat.DeveloperMessage": (
        lambda: fields(ChatCompletionDeveloperMessageParam),
        {"content", "role"},
        {"name": "participant name, not content"},
    ),
    "chat.UserMessage": (
        lambda: fields(ChatCompletionUserMessageParam),
        {"content", "role"},
        {"name": "participant name, not content"},
    ),
    "chat.AssistantMessage": (
        lambda: fields(ChatCompletionAssistantMessageParam),
        {"content", "role", "refusal", "tool_calls", "function_call"},
        {"name": "participant name, not content", "audio": "id of earlier audio output only"},
    ),
    "chat.ToolMessage": (
        lambda: fields(ChatCompletionToolMessageParam),
        {"content", "role", "tool_call_id"},
        {},
    ),
    "chat.FunctionMessage": (
        lambda: fields(ChatCompletionFunctionMessageParam),
        {"content", "role", "name"},
        {},
    ),
    "chat.TextPart": (
        lambda: fields(ChatCompletionContentPartTextParam),
        {"text", "type"},
        {"prompt_cache_breakpoint": CACHE},
    ),
    "chat.RefusalPart": (
        lambda: fields(ChatCompletionContentPartRefusalParam),
        {"refusal", "type"},
        {},
    ),
    "chat.ImagePart": (
        lambda: fields(ChatCompletionContentPartImageParam),
        {"image_url", "type"},
        {"prompt_cache_breakpoint": CACHE},
    ),
    "chat.ImageURL": (
        lambda: fields(chat_completion_content_part_image_param.ImageURL),
        {"url"},
        {"detail": "resolution hint"},
    ),
    "chat.AudioPart": (
        lambda: fields(ChatCompletionContentPartInputAudioParam),
        {"input_audio", "type"},
        {"prompt_cache_breakpoint": CACHE},
    ),
    "chat.InputAudio": (
        lambda: fields(chat_completion_content_part_input_audio_param.InputAudio),
        {"data", "format"},  # data: decoded size only
        {},
    ),
    "chat.FilePart": (
        lambda: fields(chat_completion_content_part_param.File),
        {"file", "type"},
        {"prompt_cache_breakpoint": CACHE},
    ),
    "chat.FileFile": (
        lambda: fields(chat_completion_content_part_param.FileFile),
        {"file_data", "file_id", "filename"},  # file_data: media type and size only
        {},
    ),
    "chat.FunctionTool": (
        lambda: fields(ChatCompletionFunctionToolParam),
        {"function", "type"},
        {},
    ),
    "chat.FunctionDefinition": (
        lambda: fields(FunctionDefinition),
        {"name", "description", "parameters"},
        {"strict": "schema enforcement flag"},
    ),
    "chat.CustomTool": (lambda: fields(ChatCompletionCustomToolParam), {"custom", "type"}, {}),
    "chat.CustomToolDefinition": (
        lambda: fields(chat_completion_custom_tool_param.Custom),
        {"name", "description"},
        {"format": "grammar of free-form input, not an input schema"},
    ),
    "chat.ResponseFormatJSONSchema": (
        lambda: fields(
            typing_extensions.get_type_hints(
                typing_extensions.get_args(
                    hint(completion_create_params.CompletionCreateParamsBase, "response_format")
                )[1]
            )["json_schema"]
        ),
        {"name"},
        {
            "schema": "schema body not stored",
            "description": "schema body not stored",
            "strict": "schema enforcement flag",
        },
    ),
    # ---------------------------------------------------------------- chat: response
    "chat.ChatCompletion": (
        lambda: fields(ChatCompletion),
        {"id", "choices", "model", "usage", "service_tier"},
        {
            "created": "timestamp; the step has its own",
            "object": "constant",
            "metadata": "echo of the request",
            "moderation": "moderation scores",
            "system_fingerprint": "backend build id",
        },
    ),
    "chat.Choice": (
        lambda: fields(chat_completion.Choice),
        {"finish_reason", "index", "message"},
        {"logprobs": "token log probabilities"},
    ),
    "chat.ChatCompletionMessage": (
        lambda: fields(ChatCompletionMessage),
        {"content", "refusal", "annotations", "audio", "function_call", "tool_calls"},
        {"role": "always assistant"},
    ),
    "chat.Annotation": (
        lambda: fields(chat_completion_message.Annotation),
        {"url_citation"},
        {"type": "always url_citation; the nested object is read"},
    ),
    "chat.AnnotationURLCitation": (
        lambda: fields(chat_completion_message.AnnotationURLCitation),
        {"url", "title"},
        {"start_index": "text offsets", "end_index": "text offsets"},
    ),
    "chat.ChatCompletionAudio": (
        lambda: fields(ChatCompletionAudio),
        {"data", "transcript"},  # data: estimated size only
        {"id": "handle for later turns", "expires_at": "handle expiry"},
    ),
    "chat.FunctionCall": (
        lambda: fields(chat_completion_message.FunctionCall),
        {"arguments", "name"},
        {},
    ),
    "chat.FunctionToolCall": (
        lambda: fields(ChatCompletionMessageFunctionToolCall),
        {"id", "function", "type"},
        {},
    ),
    "chat.FunctionToolCall.Function": (
        lambda: fields(chat_completion_message_function_tool_call.Function),
        {"arguments", "name"},
        {},
    ),
    "chat.CustomToolCall": (
        lambda: fields(ChatCompletionMessageCustomToolCall),
        {"id", "custom", "type"},
        {},
    ),
    "chat.CustomToolCall.Custom": (
        lambda: fields(chat_completion_message_custom_tool_call.Custom),
        {"input", "name"},
        {},
    ),
    "chat.CompletionUsage": (
        lambda: fields(CompletionUsage),
        {
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "prompt_tokens_details",
            "completion_tokens_details",
        },
        {},
    ),
    "chat.CompletionTokensDetails": (
        lambda: fields(CompletionTokensDetails),
        {"reasoning_tokens"},
        {
            "accepted_prediction_tokens": "predicted-output accounting",
            "rejected_prediction_tokens": "predicted-output accounting",
            "audio_tokens": "modality breakdown",
            "text_tokens": "modality breakdown",
        },
    ),
    "chat.PromptTokensDetails": (
        lambda: fields(PromptTokensDetails),
        {"cached_tokens", "cache_write_tokens"},
        {
            "audio_tokens": "modality breakdown",
            "image_tokens": "modality breakdown",
            "text_tokens": "modality breakdown",
        },
    ),
    # ---------------------------------------------------------------- chat: stream
    "chat.ChatCompletionChunk": (
        lambda: fields(ChatCompletionChunk),
        {"id", "choices", "model", "usage", "service_tier"},
        {
            "created": "timestamp; the step has its own",
            "object": "constant",
            "moderation": "moderation scores",
            "obfuscation": "padding against side channels",
            "system_fingerprint": "backend build id",
        },
    ),
    "chat.ChunkChoice": (
        lambda: fields(chat_completion_chunk.Choice),
        {"delta", "index", "finish_reason"},
        {"logprobs": "token log probabilities"},
    ),
    "chat.ChoiceDelta": (
        lambda: fields(chat_completion_chunk.ChoiceDelta),
        {"content", "refusal", "tool_calls", "function_call", "audio"},
        {"role": "always assistant"},
    ),
    "chat.ChoiceDeltaToolCall": (
        lambda: fields(chat_completion_chunk.ChoiceDeltaToolCall),
        {"index", "id", "function"},
        {"type": "always function"},
    ),
    "chat.ChoiceDeltaToolCallFunction": (
        lambda: fields(chat_completion_chunk.ChoiceDeltaToolCallFunction),
        {"arguments", "name"},
        {},
    ),
    "chat.ChoiceDeltaFunctionCall": (
        lambda: fields(chat_completion_chunk.ChoiceDeltaFunctionCall),
        {"arguments", "name"},
        {},
    ),
    "chat.ChoiceDeltaAudio": (
        lambda: fields(chat_completion_chunk.ChoiceDeltaAudio),
        {"data", "transcript"},
        {"id": "handle for later turns", "expires_at": "handle expiry"},
    ),
    # ---------------------------------------------------------------- responses: request
    "responses.ResponseCreateParams": (
        lambda: fields(response_create_params.ResponseCreateParamsStreaming),
        RESPONSES_REQUEST_NORMALIZED,
        RESPONSES_REQUEST_SKIPPED,
    ),
    "responses.Reasoning": (
        lambda: fields(Reasoning),
        {"effort", "summary", "generate_summary"},
        {"context": "server-side reasoning reuse", "mode": "service mode"},
    ),
    "responses.TextConfig": (lambda: fields(ResponseTextConfigParam), {"format", "verbosity"}, {}),
    "responses.JSONSchemaFormat": (
        lambda: fields(ResponseFormatTextJSONSchemaConfigParam),
        {"name", "type"},
        {
            "schema": "schema body not stored",
            "description": "schema body not stored",
            "strict": "schema enforcement flag",
        },
    ),
    "responses.input item types": (
        lambda: type_literals(
            typing_extensions.get_args(
                hint(response_create_params.ResponseCreateParamsBase, "input")
            )[1]
        ),
        {"message", "reasoning", "function_call", "custom_tool_call"} | HOSTED | TOOL_OUTPUTS,
        {
            "item_reference": "points at a stored item; its content is not in the request",
            **SERVER_STATE_ITEMS,
        },
    ),
    "responses.tool types": (
        lambda: type_literals(
            typing_extensions.get_args(
                hint(response_create_params.ResponseCreateParamsBase, "tools")
            )[0]
        ),
        {
            "function",
            "custom",
            # The rest become {"type": "provider-defined", "id": "openai.<type>"}.
            "file_search",
            "computer",
            "computer_use_preview",
            "web_search",
            "web_search_2025_08_26",
            "mcp",
            "code_interpreter",
            "programmatic_tool_calling",
            "image_generation",
            "local_shell",
            "shell",
            "namespace",
            "tool_search",
            "web_search_preview",
            "web_search_preview_2025_03_11",
            "apply_patch",
        },
        {},
    ),
    "responses.EasyInputMessage": (
        lambda: fields(EasyInputMessageParam),
        {"content", "role", "type"},
        {"phase": "commentary/final-answer label"},
    ),
    "responses.InputMessage": (
        lambda: fields(response_input_param.Message),
        {"content", "role", "type"},
        {"status": "item lifecycle"},
    ),
    "responses.OutputMessageInput": (
        lambda: fields(ResponseOutputMessageParam),
        {"content", "role", "type"},
        {"id": "item id", "status": "item lifecycle", "phase": "commentary/final-answer label"},
    ),
    "responses.InputText": (
        lambda: fields(ResponseInputTextParam),
        {"text", "type"},
        {"prompt_cache_breakpoint": CACHE},
    ),
    "responses.InputImage": (
        lambda: fields(ResponseInputImageParam),
        {"image_url", "file_id", "type"},  # image_url: media type / size / URL without query
        {"detail": "resolution hint", "prompt_cache_breakpoint": CACHE},
    ),
    "responses.InputFile": (
        lambda: fields(ResponseInputFileParam),
        {"file_data", "file_id", "file_url", "filename", "type"},
        {"detail": "resolution hint", "prompt_cache_breakpoint": CACHE},
    ),
    "responses.FunctionCallInput": (
        lambda: fields(ResponseFunctionToolCallParam),
        {"arguments", "call_id", "name", "type", "id"},
        {
            "async": "execution mode",
            "caller": "programmatic caller",
            "namespace": "tool namespace",
            "status": "item lifecycle",
        },
    ),
    "responses.FunctionCallOutput": (
        lambda: fields(response_input_param.FunctionCallOutput),
        {"output", "call_id", "type", "name"},
        {
            "id": "item id",
            "caller": "programmatic caller",
            "namespace": "tool namespace",
            "status": "item lifecycle",
        },
    ),
    "responses.ReasoningInput": (
        lambda: fields(ResponseReasoningItemParam),
        {"summary", "content", "type"},
        {"id": "item id", "encrypted_content": "opaque", "status": "item lifecycle"},
    ),
    # ---------------------------------------------------------------- responses: response
    "responses.Response": (
        lambda: fields(Response),
        {"id", "model", "output", "usage", "status", "error", "incomplete_details", "service_tier"},
        {
            name: "echo of a request setting or server bookkeeping"
            for name in (
                "access_programs",
                "created_at",
                "instructions",
                "metadata",
                "object",
                "parallel_tool_calls",
                "temperature",
                "tool_choice",
                "tools",
                "top_p",
                "background",
                "completed_at",
                "conversation",
                "image",
                "input_transformations",
                "max_output_tokens",
                "max_tool_calls",
                "moderation",
                "previous_response_id",
                "prompt",
                "prompt_cache_diagnostics",
                "prompt_cache_key",
                "prompt_cache_options",
                "prompt_cache_retention",
                "reasoning",
                "safety_identifier",
                "text",
                "tool_usage",
                "top_logprobs",
                "truncation",
                "user",
            )
        },
    ),
    "responses.ResponseUsage": (
        lambda: fields(ResponseUsage),
        {
            "input_tokens",
            "input_tokens_details",
            "output_tokens",
            "output_tokens_details",
            "total_tokens",
        },
        {},
    ),
    "responses.InputTokensDetails": (
        lambda: fields(response_usage.InputTokensDetails),
        {"cached_tokens", "cache_write_tokens"},
        {"cache_write_tokens_details": "breakdown of cache writes"},
    ),
    "responses.OutputTokensDetails": (
        lambda: fields(response_usage.OutputTokensDetails),
        {"reasoning_tokens"},
        {},
    ),
    "responses.ResponseError": (
        lambda: fields(ResponseError),
        {"message", "code", "type", "param"},
        {"misalignment": "policy diagnostics"},
    ),
    "responses.IncompleteDetails": (lambda: fields(IncompleteDetails), {"reason"}, {}),
    "responses.output item types": (
        lambda: type_literals(Response.model_fields["output"].annotation),
        {"message", "reasoning", "function_call", "custom_tool_call"} | HOSTED,
        {
            **dict.fromkeys(TOOL_OUTPUTS, "tool output echoed back, not model output"),
            **{
                k: v
                for k, v in SERVER_STATE_ITEMS.items()
                if k not in ("compaction_trigger", "configuration_update")  # request-only items
            },
        },
    ),
    "responses.OutputMessage": (
        lambda: fields(ResponseOutputMessage),
        {"content", "type"},
        {
            "id": "item id",
            "role": "always assistant",
            "status": "item lifecycle",
            "phase": "commentary/final-answer label",
        },
    ),
    "responses.OutputText": (
        lambda: fields(ResponseOutputText),
        {"text", "annotations", "type"},
        {"logprobs": "token log probabilities"},
    ),
    "responses.OutputRefusal": (lambda: fields(ResponseOutputRefusal), {"refusal", "type"}, {}),
    "responses.annotation types": (
        lambda: type_literals(
            typing_extensions.get_args(ResponseOutputText.model_fields["annotations"].annotation)[0]
        ),
        {"url_citation"},
        {
            "file_citation": "file reference, not a web source",
            "container_file_citation": "file reference, not a web source",
            "file_path": "file reference, not a web source",
        },
    ),
    "responses.AnnotationURLCitation": (
        lambda: fields(response_output_text.AnnotationURLCitation),
        {"url", "title", "type"},
        {"start_index": "text offsets", "end_index": "text offsets"},
    ),
    "responses.FunctionToolCall": (
        lambda: fields(ResponseFunctionToolCall),
        {"arguments", "call_id", "name", "type", "id"},
        {
            "async_": "execution mode",
            "caller": "programmatic caller",
            "namespace": "tool namespace",
            "status": "item lifecycle",
        },
    ),
    "responses.CustomToolCall": (
        lambda: fields(ResponseCustomToolCall),
        {"call_id", "input", "name", "type", "id"},
        {
            "async_": "execution mode",
            "caller": "programmatic caller",
            "namespace": "tool namespace",
        },
    ),
    "responses.ReasoningItem": (
        lambda: fields(ResponseReasoningItem),
        {"summary", "content", "type"},
        {"id": "item id", "encrypted_content": "opaque", "status": "item lifecycle"},
    ),
    # ---------------------------------------------------------------- responses: stream
    "responses.stream event types": (
        lambda: type_literals(ResponseStreamEvent),
        {
            "response.created",
            "response.in_progress",
            "response.queued",
            "response.completed",
            "response.incomplete",
            "response.failed",
            "error",
            "response.output_text.delta",
            "response.output_text.done",
            "response.refusal.delta",
            "response.refusal.done",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.reasoning_text.delta",
            "response.reasoning_text.done",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done",
            "response.mcp_call_arguments.delta",
            "response.mcp_call_arguments.done",
            "response.content_part.done",
            "response.output_text.annotation.added",
            "response.output_item.added",
            "response.output_item.done",
        },
        {
            "response.audio.delta": "audio bytes are never stored",
            "response.audio.done": "audio bytes are never stored",
            "response.audio.transcript.delta": "no Responses model streams audio yet",
            "response.audio.transcript.done": "no Responses model streams audio yet",
            "response.content_part.added": "empty placeholder; text comes in deltas",
            "response.reasoning_summary_part.added": "empty placeholder; text comes in deltas",
            "response.code_interpreter_call_code.delta": WHOLE_LATER,
            "response.code_interpreter_call_code.done": WHOLE_LATER,
            "response.shell_call_command.added": "the action arrives whole in output_item.done",
            "response.shell_call_command.delta": "the action arrives whole in output_item.done",
            "response.shell_call_command.done": "the action arrives whole in output_item.done",
            "response.shell_call_output_content.delta": "tool output, not model output",
            "response.shell_call_output_content.done": "tool output, not model output",
            "response.image_generation_call.partial_image": "image bytes are never stored",
            **{
                name: PROGRESS
                for name in (
                    "response.code_interpreter_call.completed",
                    "response.code_interpreter_call.in_progress",
                    "response.code_interpreter_call.interpreting",
                    "response.compaction.compacting",
                    "response.file_search_call.completed",
                    "response.file_search_call.in_progress",
                    "response.file_search_call.searching",
                    "response.web_search_call.completed",
                    "response.web_search_call.in_progress",
                    "response.web_search_call.searching",
                    "response.image_generation_call.completed",
                    "response.image_generation_call.generating",
                    "response.image_generation_call.in_progress",
                    "response.mcp_call.completed",
                    "response.mcp_call.failed",
                    "response.mcp_call.in_progress",
                    "response.mcp_list_tools.completed",
                    "response.mcp_list_tools.failed",
                    "response.mcp_list_tools.in_progress",
                )
            },
        },
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_field_is_normalized_or_skipped(name: str) -> None:
    actual, normalized, skipped = CASES[name]
    present = actual()
    assert present, "nothing reflected: the SDK layout changed"
    assert not normalized & set(skipped), "a field cannot be both normalized and skipped"
    assert all(skipped.values()), "every skipped field needs a reason"
    assert present - normalized - set(skipped) == set(), "new SDK fields: normalize or skip them"
    assert (normalized | set(skipped)) - present == set(), "stale entries: the SDK dropped them"


def test_request_input_union_is_the_item_param_union() -> None:
    base = response_create_params.ResponseCreateParamsBase
    items = typing_extensions.get_args(typing_extensions.get_args(hint(base, "input"))[1])[0]
    assert type_literals(items) == type_literals(ResponseInputItemParam)


@pytest.mark.parametrize(
    ("codec", "normalized", "skipped"),
    [
        (OpenAIChatCodec(), CHAT_REQUEST_NORMALIZED, CHAT_REQUEST_SKIPPED),
        (OpenAIResponsesCodec(), RESPONSES_REQUEST_NORMALIZED, RESPONSES_REQUEST_SKIPPED),
    ],
    ids=["chat", "responses"],
)
def test_request_sets_match_what_the_codec_reads(
    codec: Any, normalized: set[str], skipped: Mapping[str, str]
) -> None:
    # A key the codec does not read is counted; one it reads is not.
    for key in skipped:
        assert codec.normalize_request({key: "x"}).get("provider_option_count") == 1, key
    for key in normalized:
        assert "provider_option_count" not in codec.normalize_request({key: "x"}), key
