"""Every field of the Anthropic SDK's wire types is either normalized or knowingly skipped.

The sets below are checked against the installed ``anthropic`` SDK by reflection, so an
SDK release that adds a request parameter, a response field, a content block, a stream
event or a delta fails here until the codec handles it or it is added to a SKIPPED set
with the reason. Stale entries (fields the SDK dropped) fail too.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
from anthropic.types import (
    Message,
    MessageDeltaUsage,
    OutputTokensDetails,
    RawMessageStreamEvent,
    Usage,
    assistant_message_param,
    message_create_params,
    output_config_param,
    raw_content_block_delta,
    raw_message_delta_event,
    system_message_param,
    text_citation,
    thinking_config_param,
    tool_choice_param,
    tool_param,
    tool_result_block_param,
    tool_union_param,
    user_message_param,
)
from anthropic.types import content_block as response_content_block
from anthropic.types.shared import ErrorResponse

from chatdebug.instrument.normalize.anthropic import AnthropicMessagesCodec

CACHE = {"cache_control": "prompt-caching marker: changes billing, not content"}
CALLER = {"caller": "which tool invoked the block (programmatic tool calling)"}

REQUEST_NORMALIZED = {
    "model", "messages", "system", "max_tokens", "stop_sequences", "thinking",
    "tool_choice", "tools", "output_config", "stream",
}  # fmt: skip
REQUEST_SKIPPED = {
    "metadata": "end-user id for abuse detection; counted in provider_option_count",
    "service_tier": "capacity choice; counted in provider_option_count",
    "container": "code-execution container id/config; counted",
    "diagnostics": "asks for prompt-cache diagnostics; counted",
    "inference_geo": "data-residency region; counted",
    "speed": "fast-mode switch; counted",
    "user_profile_id": "account routing; counted",
    "workspace_id": "account routing; counted",
    **CACHE,
}

MESSAGE_NORMALIZED = {"id", "model", "content", "stop_reason", "stop_sequence",
                      "stop_details", "usage"}  # fmt: skip
MESSAGE_SKIPPED = {
    "type": "always 'message' (an error body is recognised by its 'error' type)",
    "role": "always 'assistant'",
    "container": "code-execution container id and expiry, not model output",
    "diagnostics": "prompt-cache miss explanation; the cache effect shows in usage",
}

USAGE_NORMALIZED = {"input_tokens", "output_tokens", "cache_creation_input_tokens",
                    "cache_read_input_tokens", "output_tokens_details"}  # fmt: skip
USAGE_SKIPPED = {
    "cache_creation": "split of cache_creation_input_tokens by TTL; the sum is kept",
    "server_tool_use": "count of web search/fetch requests, not tokens",
    "inference_geo": "region of inference",
    "service_tier": "capacity tier used",
    "speed": "speed mode used",
}

# Response content blocks: type -> (normalized fields, skipped fields with reasons).
RESULT: tuple[set[str], dict[str, str]] = ({"type", "tool_use_id", "content"}, {})
RESPONSE_BLOCKS: dict[str, tuple[set[str], dict[str, str]]] = {
    "text": ({"type", "text", "citations"}, {}),
    "thinking": ({"type", "thinking"}, {"signature": "opaque; only has_signature is kept"}),
    "redacted_thinking": ({"type"}, {"data": "encrypted thinking"}),
    "tool_use": ({"type", "id", "name", "input"},
                 {**CALLER, "toolset_name": "toolset family of the tool"}),
    "server_tool_use": ({"type", "id", "name", "input"}, CALLER),
    "web_search_tool_result": (RESULT[0], CALLER),
    "web_fetch_tool_result": (RESULT[0], CALLER),
    "code_execution_tool_result": RESULT,
    "bash_code_execution_tool_result": RESULT,
    "text_editor_code_execution_tool_result": RESULT,
    "tool_search_tool_result": RESULT,
    "container_upload": ({"type"}, {"file_id": "id of a file in the container"}),
}  # fmt: skip

# Request content blocks (user / assistant messages): same idea.
SERVER_RESULT = (RESULT[0], {**CACHE, **CALLER})
REQUEST_BLOCKS: dict[str, tuple[set[str], dict[str, str]]] = {
    "text": ({"type", "text", "citations"}, CACHE),
    "image": ({"type", "source"},
              {**CACHE, "transformations": "server-side resize/crop instructions"}),
    "document": ({"type", "source", "title"}, {**CACHE,
                 "citations": "switch enabling citations", "context": "extra document context"}),
    "search_result": ({"type", "title", "source"}, {**CACHE,
                      "content": "the result's text: only title and source are kept",
                      "citations": "switch enabling citations"}),
    "thinking": ({"type", "thinking"}, {"signature": "opaque; only has_signature is kept"}),
    "redacted_thinking": ({"type"}, {"data": "encrypted thinking"}),
    "tool_use": ({"type", "id", "name", "input"},
                 {**CACHE, **CALLER, "toolset_name": "toolset family of the tool"}),
    "tool_result": ({"type", "tool_use_id", "content", "is_error"},
                    {**CACHE, "toolset_name": "toolset family of the tool"}),
    "server_tool_use": ({"type", "id", "name", "input"}, {**CACHE, **CALLER}),
    "web_search_tool_result": SERVER_RESULT,
    "web_fetch_tool_result": SERVER_RESULT,
    "code_execution_tool_result": (RESULT[0], CACHE),
    "bash_code_execution_tool_result": (RESULT[0], CACHE),
    "text_editor_code_execution_tool_result": (RESULT[0], CACHE),
    "tool_search_tool_result": (RESULT[0], CACHE),
    "container_upload": ({"type"}, {**CACHE, "file_id": "id of a file in the container"}),
}  # fmt: skip

# Blocks inside tool_result.content: text is kept, media become placeholders, the rest
# become "[<type>]" / "[search result: <title>]" markers.
TOOL_RESULT_CONTENT = {"text", "image", "document", "search_result", "tool_reference",
                       "browser_state"}  # fmt: skip

STREAM_EVENTS = {"message_start", "message_delta", "message_stop", "content_block_start",
                 "content_block_delta", "content_block_stop"}  # fmt: skip
DELTAS: dict[str, tuple[set[str], dict[str, str]]] = {
    "text_delta": ({"type", "text"}, {}),
    "thinking_delta": ({"type", "thinking"}, {}),
    "input_json_delta": ({"type", "partial_json"}, {}),
    "citations_delta": ({"type", "citation"}, {}),
    "signature_delta": ({"type"}, {"signature": "opaque; counted, only has_signature kept"}),
}
MESSAGE_DELTA_NORMALIZED = {"stop_reason", "stop_sequence", "stop_details"}
MESSAGE_DELTA_SKIPPED = {"container": "code-execution container id and expiry"}
CITATIONS = {"char_location", "page_location", "content_block_location",
             "web_search_result_location", "search_result_location"}  # fmt: skip

CUSTOM_TOOL_NORMALIZED = {"type", "name", "description", "input_schema"}
CUSTOM_TOOL_SKIPPED = {
    **CACHE,
    "allowed_callers": "who may call the tool",
    "defer_loading": "tool-search loading hint",
    "eager_input_streaming": "streaming hint",
    "input_examples": "example inputs",
    "strict": "schema strictness switch",
}
# Server/Anthropic-defined tools keep type and name; their configuration is not stored.
SERVER_TOOL_CONFIG_SKIPPED = {
    "allowed_callers", "allowed_domains", "blocked_domains", "cache_control", "citations",
    "configs", "defer_loading", "input_examples", "max_characters", "max_content_tokens",
    "max_uses", "response_inclusion", "strict", "url_sources", "use_cache", "user_location",
}  # fmt: skip
TOOL_CHOICE_NORMALIZED = {"type", "name", "disable_parallel_tool_use"}
THINKING_NORMALIZED = {"type", "budget_tokens"}
THINKING_SKIPPED = {"display": "whether thinking text is summarized or omitted"}
OUTPUT_CONFIG_NORMALIZED = {"effort", "format"}
ERROR_NORMALIZED = {"type", "error", "request_id"}


def members(alias: Any) -> list[Any]:
    """The members of a (possibly Annotated) Union alias."""
    if get_origin(alias) is Annotated:
        alias = get_args(alias)[0]
    return list(get_args(alias)) if get_origin(alias) is Union else [alias]


def fields(model: Any) -> set[str]:
    """Field names of a pydantic model or a TypedDict (including its bases)."""
    if isinstance(model, type) and issubclass(model, dict):
        return set(typing.get_type_hints(model))
    return set(model.model_fields)


def type_literals(model: Any) -> tuple[str, ...]:
    if isinstance(model, type) and issubclass(model, dict):
        hint = typing.get_type_hints(model)["type"]
    else:
        hint = model.model_fields["type"].annotation
    return tuple(a for m in members(hint) for a in get_args(m) if isinstance(a, str))


def block_models(message_param: Any) -> list[Any]:
    """The content-block types a message param's ``content`` list accepts."""
    found = []
    for member in members(typing.get_type_hints(message_param)["content"]):
        if get_origin(member) is not None and get_origin(member).__name__ == "Iterable":
            found += members(get_args(member)[0])
    return found


def check(
    name: str, actual: set[str], normalized: set[str], skipped: dict[str, str] | set[str]
) -> None:
    overlap = normalized & set(skipped)
    assert not overlap, f"{name}: both normalized and skipped: {sorted(overlap)}"
    unknown = actual - normalized - set(skipped)
    assert not unknown, f"{name}: new SDK fields, neither normalized nor skipped: {sorted(unknown)}"
    stale = (normalized | set(skipped)) - actual
    assert not stale, f"{name}: listed but no longer in the SDK: {sorted(stale)}"
    if isinstance(skipped, dict):
        assert all(skipped.values()), f"{name}: every skipped field needs a reason"


def test_request_parameters() -> None:
    params = fields(message_create_params.MessageCreateParamsBase)
    params |= fields(message_create_params.MessageCreateParamsStreaming)
    check("MessageCreateParams", params, REQUEST_NORMALIZED, REQUEST_SKIPPED)


def test_skipped_request_parameters_are_only_counted() -> None:
    base = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
    plain = AnthropicMessagesCodec().normalize_request(base)
    for key in REQUEST_SKIPPED:
        out = AnthropicMessagesCodec().normalize_request(base | {key: {"x": "secret-value"}})
        assert out.pop("provider_option_count") == 1, key
        assert out == plain, key


def test_normalized_request_parameters_change_the_payload() -> None:
    base: dict[str, Any] = {"messages": []}
    samples: dict[str, Any] = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "system": "s",
        "max_tokens": 5,
        "stop_sequences": ["x"],
        "thinking": {"type": "adaptive"},
        "tool_choice": {"type": "any"},
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "output_config": {"effort": "low"},
        "stream": False,
    }
    assert set(samples) == REQUEST_NORMALIZED
    plain = AnthropicMessagesCodec().normalize_request(base)
    for key, value in samples.items():
        out = AnthropicMessagesCodec().normalize_request(base | {key: value})
        assert out != plain and "provider_option_count" not in out, key


def test_message_fields() -> None:
    check("Message", fields(Message), MESSAGE_NORMALIZED, MESSAGE_SKIPPED)


def test_usage_fields() -> None:
    check("Usage", fields(Usage) | fields(MessageDeltaUsage), USAGE_NORMALIZED, USAGE_SKIPPED)
    check("OutputTokensDetails", fields(OutputTokensDetails), {"thinking_tokens"}, set())


@pytest.mark.parametrize("model", members(response_content_block.ContentBlock), ids=repr)
def test_response_content_blocks(model: Any) -> None:
    (kind,) = type_literals(model)
    assert kind in RESPONSE_BLOCKS, f"new response block type {kind!r}"
    check(kind, fields(model), *RESPONSE_BLOCKS[kind])


def test_response_block_list_is_complete() -> None:
    kinds = {type_literals(m)[0] for m in members(response_content_block.ContentBlock)}
    assert kinds == set(RESPONSE_BLOCKS)


def test_request_content_blocks() -> None:
    # Message params accept both the *Param TypedDicts and the response models (so a
    # Message's content can be sent back): fields are checked per block type, merged.
    models = block_models(user_message_param.UserMessageParam)
    models += block_models(assistant_message_param.AssistantMessageParam)
    models += block_models(system_message_param.SystemMessageParam)
    by_kind: dict[str, set[str]] = {}
    for model in models:
        (kind,) = type_literals(model)
        assert kind in REQUEST_BLOCKS, f"new request block type {kind!r}"
        by_kind.setdefault(kind, set()).update(fields(model))
    assert set(by_kind) == set(REQUEST_BLOCKS)
    for kind, names in by_kind.items():
        check(f"{kind} (request)", names, *REQUEST_BLOCKS[kind])


def test_tool_result_content_blocks() -> None:
    models = block_models(tool_result_block_param.ToolResultBlockParam)
    assert {type_literals(m)[0] for m in models} == TOOL_RESULT_CONTENT


def test_stream_events_and_deltas() -> None:
    events = {type_literals(m)[0] for m in members(RawMessageStreamEvent)}
    assert events == STREAM_EVENTS  # plus "ping" and "error", which the SDK does not type
    for model in members(raw_content_block_delta.RawContentBlockDelta):
        (kind,) = type_literals(model)
        assert kind in DELTAS, f"new delta type {kind!r}"
        check(kind, fields(model), *DELTAS[kind])
    assert {
        type_literals(m)[0] for m in members(raw_content_block_delta.RawContentBlockDelta)
    } == set(DELTAS)
    delta = fields(raw_message_delta_event.Delta)
    check("message_delta.delta", delta, MESSAGE_DELTA_NORMALIZED, MESSAGE_DELTA_SKIPPED)
    check("message_delta", fields(raw_message_delta_event.RawMessageDeltaEvent),
          {"type", "delta", "usage"}, set())  # fmt: skip


def test_citation_types() -> None:
    assert {type_literals(m)[0] for m in members(text_citation.TextCitation)} == CITATIONS


def test_tools() -> None:
    check("ToolParam", fields(tool_param.ToolParam), CUSTOM_TOOL_NORMALIZED, CUSTOM_TOOL_SKIPPED)
    for model in members(tool_union_param.ToolUnionParam):
        if model is tool_param.ToolParam:
            continue
        assert type_literals(model), model
        config = fields(model) - {"type", "name"}
        assert config <= SERVER_TOOL_CONFIG_SKIPPED, (model, config - SERVER_TOOL_CONFIG_SKIPPED)


def test_tool_choice_thinking_output_config_and_errors() -> None:
    choices = set().union(*(fields(m) for m in members(tool_choice_param.ToolChoiceParam)))
    check("ToolChoice", choices, TOOL_CHOICE_NORMALIZED, set())
    kinds = {type_literals(m)[0] for m in members(tool_choice_param.ToolChoiceParam)}
    assert kinds == {"auto", "any", "tool", "none"}
    thinking = set().union(*(fields(m) for m in members(thinking_config_param.ThinkingConfigParam)))
    check("ThinkingConfig", thinking, THINKING_NORMALIZED, THINKING_SKIPPED)
    output = fields(output_config_param.OutputConfigParam)
    check("OutputConfig", output, OUTPUT_CONFIG_NORMALIZED, set())
    check("ErrorResponse", fields(ErrorResponse), ERROR_NORMALIZED, set())
