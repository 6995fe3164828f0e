"""Pure conversion of run and step spans (or their lifecycle records) into store events.

Attribute keys are those of :mod:`chatdebug._spans`. A
:class:`~chatdebug._spans.SpanRecord` holds its payloads as Python objects;
a span holds them as JSON strings. Both convert to the same events. A malformed value
(a run id that is not a UUID, JSON that does not parse or has the wrong shape, a number
that is not an integer) is logged and counted as an internal error of the ``exporter``
component, and the field is left out; it never raises. A span without a run id or a chat
id is not ours to record and gives ``None``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from .. import _spans as attr
from .._safety import log_internal_error
from .._spans import SpanRecord
from .._status import Status
from ..store import CLEAR, Clear, EncodedJSON, NewRun, NewStep, RunUpdate, StepUpdate, encode_json
from ._events import CreateRun, CreateStep, FinishRun, UpdateStep
from ._summary import error_summary, truncate_label

__all__ = [
    "Source",
    "placeholder_run",
    "run_ended",
    "run_started",
    "span_time",
    "step_ended",
    "step_started",
]

_COMPONENT: Final = "exporter"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_FINAL_STATUSES: Final = frozenset(s.value for s in Status if s.is_terminal)
# Step ids are normally set by the instrumentation; for a step span without one, a UUID
# derived from the span's identity keeps its start and end events pointing at one row.
_STEP_ID_NAMESPACE: Final = uuid.UUID("6f0c5d1e-3c1b-4a59-9a1e-2b8f4c7d9e10")


class MalformedAttribute(ValueError):
    """A ``chat_debug.*`` attribute whose value does not have the documented shape."""


def _malformed(key: str, value: object, why: str) -> None:
    shown = value if not isinstance(value, str) or len(value) <= 80 else value[:80] + "…"
    log_internal_error(_COMPONENT, MalformedAttribute(f"{key}={shown!r}: {why}"))


def span_time(ns: int | None) -> datetime | None:
    """An OTel timestamp (nanoseconds since the epoch) as an aware UTC datetime."""
    if ns is None:
        return None
    return _EPOCH + timedelta(microseconds=ns // 1000)


Source = ReadableSpan | SpanRecord
"""A span of ours, or the record the instrumentation published for it."""


def _attrs(source: Source) -> Mapping[str, Any]:
    return source.attributes or {}


def _times(source: Source) -> tuple[int | None, int | None]:
    if isinstance(source, SpanRecord):
        return source.start_ns, source.end_ns
    return source.start_time, source.end_time


def _str(attrs: Mapping[str, Any], key: str) -> str | None:
    value = attrs.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    # Ids given as numbers are still ids.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    _malformed(key, value, "expected a string")
    return None


def _int(attrs: Mapping[str, Any], key: str) -> int | None:
    value = attrs.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    _malformed(key, value, "expected an integer")
    return None


def _uuid(attrs: Mapping[str, Any], key: str) -> uuid.UUID | None:
    value = attrs.get(key)
    if value is None or value == "":
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        _malformed(key, value, "expected a UUID")
        return None


def _json(attrs: Mapping[str, Any], key: str, shape: type[dict[Any, Any]] | type[list[Any]]) -> Any:
    value = attrs.get(key)
    if value is None:
        return None
    if isinstance(value, shape):
        return value  # a record's payload: already a Python object
    if not isinstance(value, str):
        _malformed(key, value, "expected a JSON string")
        return None
    try:
        decoded = orjson.loads(value)
    except ValueError as exc:
        _malformed(key, value, f"invalid JSON ({exc})")
        return None
    if not isinstance(decoded, shape):
        _malformed(key, value, f"expected a JSON {'object' if shape is dict else 'array'}")
        return None
    return decoded


def _payload(
    attrs: Mapping[str, Any], key: str, shape: type[dict[Any, Any]] | type[list[Any]]
) -> Any:
    """A stored JSON column of a step: a record's payload is encoded right here.

    Encoded, the payload is one string while it waits in the writer's queue, and the
    dicts and lists it was made of are freed now (see
    :class:`~chatdebug.store.EncodedJSON`). A span's payload arrives as JSON text and
    is decoded to check its shape.
    """
    value = attrs.get(key)
    if isinstance(value, shape):
        return encode_json(value)
    decoded: dict[str, Any] | list[Any] | None = _json(attrs, key, shape)
    return decoded


def _error(attrs: Mapping[str, Any]) -> dict[str, Any] | EncodedJSON | Clear | None:
    if attrs.get(attr.STEP_ERROR) == "null":
        return CLEAR
    error: dict[str, Any] | EncodedJSON | None = _payload(attrs, attr.STEP_ERROR, dict)
    return error


def _status(source: Source, key: str) -> str:
    value = _attrs(source).get(key)
    if isinstance(value, str) and value in _FINAL_STATUSES:
        return value
    if value is not None:
        _malformed(key, value, f"expected one of {sorted(_FINAL_STATUSES)} at the end")
    if isinstance(source, SpanRecord):
        return "completed"
    return "error" if source.status.status_code is StatusCode.ERROR else "completed"


def _ids(source: Source) -> tuple[str | None, str | None]:
    if isinstance(source, SpanRecord):
        trace_id, span_id = source.trace_id, source.span_id
    else:
        ctx = source.context
        if ctx is None:
            return None, None
        trace_id, span_id = ctx.trace_id, ctx.span_id
    if not trace_id or not span_id:
        return None, None  # no tracing SDK behind the API: no ids to point at
    return format(trace_id, "032x"), format(span_id, "016x")


def _run_key(attrs: Mapping[str, Any]) -> tuple[uuid.UUID, str] | None:
    run_id = _uuid(attrs, attr.RUN_ID)
    if run_id is None:
        return None
    chat_id = _str(attrs, attr.CHAT_ID)
    if chat_id is None:
        _malformed(attr.CHAT_ID, None, f"missing on a span of run {run_id}")
        return None
    return run_id, chat_id


def _seed(attrs: Mapping[str, Any]) -> dict[str, Any]:
    seed: dict[str, Any] = dict(_json(attrs, attr.RUN_SUMMARY_SEED, dict) or {})
    first_message = _str(attrs, attr.RUN_FIRST_MESSAGE) or seed.get("first_message")
    seed.pop("first_message", None)
    if isinstance(first_message, str):
        label = truncate_label(first_message)
        if label:
            seed["first_message"] = label
    return seed


def run_started(span: Source) -> CreateRun | None:
    """The ``in_progress`` run row of a run span that just started."""
    attrs = _attrs(span)
    key = _run_key(attrs)
    if key is None:
        return None
    trace_id, span_id = _ids(span)
    return CreateRun(
        NewRun(
            id=key[0],
            chat_id=key[1],
            kind=_str(attrs, attr.RUN_KIND) or "chat_turn",
            user_id=_str(attrs, attr.USER_ID),
            root_chat_id=_str(attrs, attr.RUN_ROOT_CHAT_ID),
            parent_chat_id=_str(attrs, attr.RUN_PARENT_CHAT_ID),
            model_config_id=_str(attrs, attr.RUN_MODEL_CONFIG_ID),
            trigger_message_id=_int(attrs, attr.RUN_TRIGGER_MESSAGE_ID),
            history_tip_message_id=_int(attrs, attr.RUN_HISTORY_TIP_MESSAGE_ID),
            provider=_str(attrs, attr.RUN_PROVIDER),
            model=_str(attrs, attr.RUN_MODEL),
            summary=_seed(attrs) or None,
            started_at=span_time(_times(span)[0]),
            trace_id=trace_id,
            span_id=span_id,
        )
    )


def run_ended(span: Source) -> FinishRun | None:
    """The final state of a run span that ended; the summary is computed when applied."""
    attrs = _attrs(span)
    key = _run_key(attrs)
    if key is None:
        return None
    update = RunUpdate(
        id=key[0],
        chat_id=key[1],
        status=_status(span, attr.RUN_STATUS),
        provider=_str(attrs, attr.RUN_PROVIDER),
        model=_str(attrs, attr.RUN_MODEL),
        history_tip_message_id=_int(attrs, attr.RUN_HISTORY_TIP_MESSAGE_ID),
        trigger_message_id=_int(attrs, attr.RUN_TRIGGER_MESSAGE_ID),
        model_config_id=_str(attrs, attr.RUN_MODEL_CONFIG_ID),
        finished_at=span_time(_times(span)[1]),
    )
    seed = _seed(attrs)
    error = _json(attrs, attr.RUN_ERROR, dict)
    if error:  # the exception that left the run (redacted when captured)
        seed["error"] = error_summary(error)
    return FinishRun(
        update,
        seed=seed,
        started_at=span_time(_times(span)[0]),
        step_updates=_step_updates(attrs, key[1]),
    )


def _step_updates(attrs: Mapping[str, Any], chat_id: str) -> tuple[StepUpdate, ...]:
    """Message ids set on steps after they ended, carried by the run span."""
    updates = []
    for item in _json(attrs, attr.RUN_STEP_UPDATES, list) or []:
        if not isinstance(item, dict):
            continue
        step_id = _uuid(item, "step_id")
        assistant = _int(item, "assistant_message_id")
        tip = _int(item, "history_tip_message_id")
        if step_id is not None and (assistant is not None or tip is not None):
            updates.append(
                StepUpdate(
                    id=step_id,
                    chat_id=chat_id,
                    assistant_message_id=assistant,
                    history_tip_message_id=tip,
                )
            )
    return tuple(updates)


def _step_id(span: Source, attrs: Mapping[str, Any]) -> uuid.UUID:
    step_id = _uuid(attrs, attr.STEP_ID)
    if step_id is not None:
        return step_id
    trace_id, span_id = _ids(span)
    return uuid.uuid5(_STEP_ID_NAMESPACE, f"{trace_id}-{span_id}")


def _step_model(attrs: Mapping[str, Any]) -> str | None:
    """The model that answered, else the one asked for (a call that failed early)."""
    return _str(attrs, attr.GEN_AI_RESPONSE_MODEL) or _str(attrs, attr.GEN_AI_REQUEST_MODEL)


def step_started(span: Source) -> CreateStep | None:
    """The ``in_progress`` step row of a step span that just started."""
    attrs = _attrs(span)
    key = _run_key(attrs)
    if key is None:
        return None
    operation = _str(attrs, attr.STEP_OPERATION)
    if operation is None:
        operation = "stream" if attrs.get(attr.GEN_AI_REQUEST_STREAM) is True else "generate"
    trace_id, span_id = _ids(span)
    return CreateStep(
        NewStep(
            id=_step_id(span, attrs),
            run_id=key[0],
            chat_id=key[1],
            operation=operation,
            step_number=_int(attrs, attr.STEP_NUMBER),
            history_tip_message_id=_int(attrs, attr.STEP_HISTORY_TIP_MESSAGE_ID),
            # Not encoded here: a step starts on the caller's thread, and its request
            # stays alive with the open step anyway; the writer encodes it.
            normalized_request=_json(attrs, attr.STEP_NORMALIZED_REQUEST, dict),
            started_at=span_time(_times(span)[0]),
            trace_id=trace_id,
            span_id=span_id,
            provider=_str(attrs, attr.GEN_AI_PROVIDER_NAME),
            model=_step_model(attrs),
            request_history_sent=_int(attrs, attr.STEP_REQUEST_HISTORY_SENT),
        )
    )


def step_ended(span: Source) -> UpdateStep | None:
    """The final state of a step span that ended."""
    attrs = _attrs(span)
    key = _run_key(attrs)
    if key is None:
        return None
    update = StepUpdate(
        id=_step_id(span, attrs),
        chat_id=key[1],
        status=_status(span, attr.STEP_STATUS),
        history_tip_message_id=_int(attrs, attr.STEP_HISTORY_TIP_MESSAGE_ID),
        assistant_message_id=_int(attrs, attr.STEP_ASSISTANT_MESSAGE_ID),
        normalized_request=_payload(attrs, attr.STEP_NORMALIZED_REQUEST, dict),
        request_history_sent=_int(attrs, attr.STEP_REQUEST_HISTORY_SENT),
        normalized_response=_payload(attrs, attr.STEP_NORMALIZED_RESPONSE, dict),
        usage=_payload(attrs, attr.STEP_USAGE, dict),
        attempts=_payload(attrs, attr.STEP_ATTEMPTS, list),
        error=_error(attrs),
        # Always written: it replaces the progress an open streaming step had.
        metadata=_payload(attrs, attr.STEP_METADATA, dict) or {},
        provider=_str(attrs, attr.GEN_AI_PROVIDER_NAME),
        model=_step_model(attrs),
        finished_at=span_time(_times(span)[1]),
    )
    return UpdateStep(
        update,
        run_id=key[0],
        models=(_str(attrs, attr.GEN_AI_RESPONSE_MODEL), _str(attrs, attr.GEN_AI_REQUEST_MODEL)),
        service_tier=_str(attrs, attr.OPENAI_RESPONSE_SERVICE_TIER),
    )


def placeholder_run(step: CreateStep) -> CreateRun:
    """A run row for a step whose run span never arrived (kind ``unknown``)."""
    params = step.params
    return CreateRun(
        NewRun(
            id=params.run_id,
            chat_id=params.chat_id,
            kind="unknown",
            started_at=params.started_at,
            trace_id=params.trace_id,
        )
    )
