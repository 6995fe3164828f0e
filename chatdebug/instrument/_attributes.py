"""Span names and attribute keys: the contract between instrumentation and exporters.

Runs are spans named :data:`RUN_SPAN`, steps child spans named :data:`STEP_SPAN`. Our
own data lives under ``chat_debug.*``; where the OpenTelemetry GenAI semantic conventions
have a key we set that too, so any OTel backend shows useful traces. JSON payloads are
attribute strings holding JSON; they are redacted before they are set.
"""

from __future__ import annotations

from typing import Final

RUN_SPAN: Final = "chat_debug.run"
STEP_SPAN: Final = "chat_debug.step"

# -- both spans -------------------------------------------------------------------------
RUN_ID: Final = "chat_debug.run.id"
CHAT_ID: Final = "chat_debug.chat_id"

# -- run span, set when it starts ------------------------------------------------------
USER_ID: Final = "chat_debug.user_id"
RUN_KIND: Final = "chat_debug.run.kind"
RUN_PROVIDER: Final = "chat_debug.run.provider"
RUN_MODEL: Final = "chat_debug.run.model"
RUN_FIRST_MESSAGE: Final = "chat_debug.run.first_message"
RUN_TRIGGER_MESSAGE_ID: Final = "chat_debug.run.trigger_message_id"
RUN_HISTORY_TIP_MESSAGE_ID: Final = "chat_debug.run.history_tip_message_id"
RUN_ROOT_CHAT_ID: Final = "chat_debug.run.root_chat_id"
RUN_PARENT_CHAT_ID: Final = "chat_debug.run.parent_chat_id"
RUN_MODEL_CONFIG_ID: Final = "chat_debug.run.model_config_id"
# -- run span, set when it ends ----------------------------------------------------------
RUN_STATUS: Final = "chat_debug.run.status"
RUN_ERROR: Final = "chat_debug.run.error"  # JSON error payload
RUN_SUMMARY_SEED: Final = "chat_debug.run.summary_seed"  # JSON object of extra seed keys
# JSON list of {"step_id", "assistant_message_id"?, "history_tip_message_id"?}: message ids
# set on steps after they ended (e.g. once the answer was persisted), applied at run end.
RUN_STEP_UPDATES: Final = "chat_debug.run.step_updates"

# -- step span -------------------------------------------------------------------------
STEP_ID: Final = "chat_debug.step.id"
STEP_NUMBER: Final = "chat_debug.step.number"
STEP_OPERATION: Final = "chat_debug.step.operation"
STEP_EXPLICIT: Final = "chat_debug.step.explicit"  # bool: opened with chatdebug.step()
STEP_STATUS: Final = "chat_debug.step.status"
STEP_HISTORY_TIP_MESSAGE_ID: Final = "chat_debug.step.history_tip_message_id"
STEP_ASSISTANT_MESSAGE_ID: Final = "chat_debug.step.assistant_message_id"
STEP_NORMALIZED_REQUEST: Final = "chat_debug.step.normalized_request"  # JSON
STEP_NORMALIZED_RESPONSE: Final = "chat_debug.step.normalized_response"  # JSON
STEP_USAGE: Final = "chat_debug.step.usage"  # JSON
STEP_ATTEMPTS: Final = "chat_debug.step.attempts"  # JSON array
STEP_ERROR: Final = "chat_debug.step.error"  # JSON object, or "null" = cleared
STEP_METADATA: Final = "chat_debug.step.metadata"  # JSON object
STEP_TTFB_MS: Final = "chat_debug.step.ttfb_ms"
STEP_TTFT_MS: Final = "chat_debug.step.ttft_ms"
STEP_API_FORMAT: Final = "chat_debug.step.api_format"

# -- GenAI semantic conventions ----------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
ERROR_TYPE: Final = "error.type"

# Keys whose values are JSON payloads. On a lifecycle record they are plain Python
# objects; on a span (only when no record sink is installed) they are JSON strings.
PAYLOAD_KEYS: Final = frozenset(
    {
        RUN_ERROR,
        RUN_SUMMARY_SEED,
        RUN_STEP_UPDATES,
        STEP_NORMALIZED_REQUEST,
        STEP_NORMALIZED_RESPONSE,
        STEP_USAGE,
        STEP_ATTEMPTS,
        STEP_ERROR,
        STEP_METADATA,
    }
)
