"""The contract between the instrumentation and the exporter: span names, attribute keys,
and the lifecycle records of runs and steps.

Runs are spans named :data:`RUN_SPAN`, steps child spans named :data:`STEP_SPAN`. Our
own data lives under ``chat_debug.*``; where the OpenTelemetry GenAI semantic conventions
have a key we set that too, so any OTel backend shows useful traces. JSON payloads are
attribute strings holding JSON; they are redacted before they are set.

Spans belong to the application's ``TracerProvider``: its sampler may drop them (then no
span processor ever sees them) and its ``SpanLimits`` may truncate or drop attributes.
Our stored rows must not depend on either, so the instrumentation also publishes each run
and step as a :class:`SpanRecord` (plain Python values, payloads not encoded) to the
:class:`RecordSink` installed in the settings. The exporter implements the sink and
:func:`chatdebug.configure` installs it; the instrumentation knows only this protocol and
never imports the exporter.

With a sink installed, spans carry only the small attributes (ids, numbers and the GenAI
semantic-convention keys) for OpenTelemetry backends. Without one, spans carry the JSON
payloads too, for :class:`~chatdebug.exporter.StoreSpanExporter` and friends.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

import orjson
from opentelemetry.trace import Span

from ._lifecycle import ForkStage, at_fork_in_child

__all__ = [
    "INSTRUMENTATION_NAME",
    "PAYLOAD_KEYS",
    "PROGRESS_TEXT_CHARS",
    "RUN_SPAN",
    "STEP_SPAN",
    "RecordSink",
    "SpanRecord",
    "StreamProgressSource",
    "dumps",
    "new_id",
    "span_attributes",
    "span_ids",
]

INSTRUMENTATION_NAME: Final = "chatdebug"
"""The instrumentation scope of our spans."""

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
STEP_REQUEST_HISTORY_SENT: Final = "chat_debug.step.request_history_sent"
"""How many leading messages of the normalized request the run's previous step sent
(they are left out of the search index: that step's text has them)."""
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
OPENAI_RESPONSE_SERVICE_TIER: Final = "openai.response.service_tier"
"""The service tier OpenAI says served the call (``default``, ``flex``, ``priority``)."""
ERROR_TYPE: Final = "error.type"

# Keys whose values are JSON payloads. On a lifecycle record they are plain Python
# objects; on a span (only when no record sink is installed) they are JSON strings.
PAYLOAD_KEYS: Final = frozenset(
    {
        RUN_ERROR,
        RUN_SUMMARY_SEED,
        RUN_STEP_UPDATES,
        STEP_NORMALIZED_REQUEST,
        STEP_REQUEST_HISTORY_SENT,  # travels with the request
        STEP_NORMALIZED_RESPONSE,
        STEP_USAGE,
        STEP_ATTEMPTS,
        STEP_ERROR,
        STEP_METADATA,
    }
)


@dataclass(slots=True)
class SpanRecord:
    """One run or step as the instrumentation knows it.

    ``attributes`` uses the keys of this module; values of
    :data:`PAYLOAD_KEYS` are Python objects (already
    redacted). ``owner`` is the live run or step object: while it is referenced the run or
    step is open and gets heartbeats.
    """

    name: str
    """:data:`RUN_SPAN` or ``STEP_SPAN``."""
    attributes: dict[str, Any]
    trace_id: int
    span_id: int
    start_ns: int
    end_ns: int | None = None
    owner: object = None


class RecordSink(Protocol):
    """Receives run and step records on the thread that starts or ends them.

    Implementations must be quick and must never raise into the caller.
    """

    def record_started(self, record: SpanRecord) -> None:
        """A run or step started (its row can be written ``in_progress``)."""
        ...

    def record_ended(self, record: SpanRecord) -> None:
        """A run or step ended with the final ``record.attributes``."""
        ...


@runtime_checkable
class StreamProgressSource(Protocol):
    """A step record's ``owner`` that can say how far its streamed response has come."""

    def stream_progress(self) -> dict[str, Any] | None:
        """``{"chunks", "text_chars", "time_to_first_chunk_ms", "text"}`` of the
        response streaming now (``text``: its first :data:`PROGRESS_TEXT_CHARS`
        characters, redacted), or None when nothing streams or nothing new arrived
        since the last call."""
        ...


PROGRESS_TEXT_CHARS: Final = 2000
"""How much of a stream's text its progress carries."""


# A generator of our own, seeded from os.urandom: the module-level one is the
# application's, and code that calls ``random.seed(...)`` (test frameworks such as
# Hypothesis do, per example) would otherwise make every run id repeat.
_ids = random.Random()
at_fork_in_child(ForkStage.IDS, _ids.seed)


def new_id() -> uuid.UUID:
    """A random (version 4) UUID for a run or step.

    Drawn from a private PRNG seeded from ``os.urandom`` (and reseeded in forked
    children) rather than ``os.urandom`` per id: a system call per step that also hands
    the GIL to other threads in the middle of the caller's request. Ids must be unique,
    not secret.
    """
    return uuid.UUID(int=_ids.getrandbits(128), version=4)


def dumps(value: Any) -> str:
    """Compact JSON for span attributes; never fails (odd values become strings)."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # e.g. an integer beyond 64 bits
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def span_attributes(values: dict[str, Any], *, payloads: bool) -> dict[str, Any]:
    """The attributes to set on a span: payloads JSON-encoded, or left out entirely."""
    if payloads:
        return {
            key: dumps(value) if key in PAYLOAD_KEYS and not isinstance(value, str) else value
            for key, value in values.items()
        }
    return {key: value for key, value in values.items() if key not in PAYLOAD_KEYS}


def span_ids(span: Span) -> tuple[int, int]:
    """Trace and span id of ``span`` (valid also for a span the sampler dropped)."""
    context = span.get_span_context()
    return context.trace_id, context.span_id
