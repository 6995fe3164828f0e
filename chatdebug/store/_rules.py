"""Rules shared by both backends, applied before any SQL runs.

Each builder turns a parameter dataclass into the named SQL parameters both dialects'
statements use (``%(name)s`` on PostgreSQL, ``:name`` on SQLite): JSON encoded, the
terminal-status ``finished_at`` filled, the status priority for the no-downgrade guard
computed. The bulk write path builds its rows with the same builders. The SQLite
backend then maps UUIDs and datetimes to text.

Also here: the step-number retries and the classification of a step insert that wrote
nothing, the settings' keys and the validation of retention and limits.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from .._status import status_priority
from ._codec import dump_json, utc
from ._contract import DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS, STEP_NUMBER_RETRIES
from ._errors import RunFinalized, RunNotFound, StoreConfigError, StoreError
from ._values import CLEAR, BulkWrites, NewRun, NewStep, RunUpdate, Step, StepUpdate

__all__ = [
    "SETTING_ALLOW_USERS",
    "SETTING_RETENTION_DAYS",
    "BulkParameters",
    "DuplicateStepNumber",
    "bulk_parameters",
    "classify_unwritten_step",
    "create_step_with_retries",
    "new_run_params",
    "new_step_params",
    "parse_retention_days",
    "run_update_params",
    "step_update_params",
    "validate_limit",
    "validate_retention_days",
]

JSON_NULL: Final = "null"

# Keys of the site-wide settings table.
SETTING_ALLOW_USERS: Final = "allow_users"
SETTING_RETENTION_DAYS: Final = "retention_days"


def _finished_at(
    status: str | None, finished_at: datetime | None, now: datetime
) -> datetime | None:
    if finished_at is not None:
        return utc(finished_at)
    if status is not None and status_priority(status) > 0:
        return now
    return None


def _json_or_none(value: Any) -> str | None:
    return None if value is None else dump_json(value)


def new_run_params(p: NewRun, now: datetime) -> dict[str, Any]:
    return {
        "id": p.id,
        "chat_id": p.chat_id,
        "user_id": p.user_id,
        "root_chat_id": p.root_chat_id,
        "parent_chat_id": p.parent_chat_id,
        "model_config_id": p.model_config_id,
        "trigger_message_id": p.trigger_message_id,
        "history_tip_message_id": p.history_tip_message_id,
        "kind": p.kind,
        "status": p.status,
        "provider": p.provider,
        "model": p.model,
        "summary": dump_json({} if p.summary is None else p.summary),
        "started_at": now if p.started_at is None else utc(p.started_at),
        "updated_at": now,
        "finished_at": _finished_at(p.status, p.finished_at, now),
        "trace_id": p.trace_id,
        "span_id": p.span_id,
    }


def run_update_params(p: RunUpdate, now: datetime) -> dict[str, Any]:
    return {
        "id": p.id,
        "chat_id": p.chat_id,
        "status": p.status,
        "status_priority": status_priority(p.status),
        "provider": p.provider,
        "model": p.model,
        "summary": _json_or_none(p.summary),
        "history_tip_message_id": p.history_tip_message_id,
        "trigger_message_id": p.trigger_message_id,
        "model_config_id": p.model_config_id,
        "finished_at": _finished_at(p.status, p.finished_at, now),
        "now": now,
    }


def new_step_params(p: NewStep, now: datetime) -> dict[str, Any]:
    return {
        "id": p.id,
        "run_id": p.run_id,
        "chat_id": p.chat_id,
        "step_number": p.step_number,
        "floor": 1,
        "operation": p.operation,
        "status": p.status,
        "history_tip_message_id": p.history_tip_message_id,
        "assistant_message_id": p.assistant_message_id,
        "normalized_request": dump_json(
            {} if p.normalized_request is None else p.normalized_request
        ),
        "normalized_response": _json_or_none(p.normalized_response),
        "usage": _json_or_none(p.usage),
        "attempts": dump_json([] if p.attempts is None else p.attempts),
        "error": _json_or_none(p.error),
        "metadata": dump_json({} if p.metadata is None else p.metadata),
        "started_at": now if p.started_at is None else utc(p.started_at),
        "updated_at": now,
        "finished_at": _finished_at(p.status, p.finished_at, now),
        "trace_id": p.trace_id,
        "span_id": p.span_id,
        "provider": p.provider,
        "model": p.model,
        "request_history_sent": p.request_history_sent,
        "now": now,
    }


def step_update_params(p: StepUpdate, now: datetime) -> dict[str, Any]:
    return {
        "id": p.id,
        "chat_id": p.chat_id,
        "status": p.status,
        "status_priority": status_priority(p.status),
        "history_tip_message_id": p.history_tip_message_id,
        "assistant_message_id": p.assistant_message_id,
        "normalized_request": _json_or_none(p.normalized_request),
        "normalized_response": _json_or_none(p.normalized_response),
        "usage": _json_or_none(p.usage),
        "attempts": _json_or_none(p.attempts),
        # CLEAR must overwrite, so it is the JSON literal null, not SQL NULL (which the
        # COALESCE in the statement reads as "keep").
        "error": JSON_NULL if p.error is CLEAR else _json_or_none(p.error),
        "metadata": _json_or_none(p.metadata),
        "finished_at": _finished_at(p.status, p.finished_at, now),
        "provider": p.provider,
        "model": p.model,
        # Written with the request it describes (a new request without it resets it).
        "request_history_sent": p.request_history_sent,
        "now": now,
    }


@dataclass(slots=True)
class BulkParameters:
    """Named SQL parameters of each statement of a bulk write."""

    runs: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    updates: list[dict[str, Any]]
    step_touches: list[dict[str, Any]]
    run_touches: list[dict[str, Any]]
    run_updates: list[dict[str, Any]]


def bulk_parameters(
    writes: BulkWrites,
    now: datetime,
    convert: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    pace: Callable[[], None] | None = None,
) -> BulkParameters:
    """The parameters of every statement, built as the single operations build them
    (``convert`` maps them to a backend's stored forms; ``pace`` is called per row)."""

    def build(values: dict[str, Any]) -> dict[str, Any]:
        if pace is not None:
            pace()
        return values if convert is None else convert(values)

    return BulkParameters(
        runs=[build(new_run_params(p, now)) for p in writes.new_runs],
        steps=[build(new_step_params(p, now)) for p in writes.new_steps],
        updates=[build(step_update_params(p, now)) for p in writes.step_updates],
        step_touches=[
            build({"step_id": s, "run_id": r, "chat_id": c, "now": now})
            for s, r, c in writes.step_touches
        ],
        run_touches=[build({"run_id": r, "chat_id": c, "now": now}) for r, c in writes.run_touches],
        run_updates=[build(run_update_params(p, now)) for p in writes.run_updates],
    )


class DuplicateStepNumber(Exception):
    """Raised by a backend's insert attempt when ``(run_id, step_number)`` is taken."""


def create_step_with_retries(
    run_id: uuid.UUID,
    step_number: int | None,
    attempt: Callable[[int | None, int], Step | None],
) -> Step:
    """Insert a step, moving to a free step number when the requested one is taken.

    ``attempt(step_number, floor)`` inserts with ``step_number`` when it is not ``None``
    and otherwise with ``max(existing) + 1`` but at least ``floor``, computed inside the
    insert; it returns ``None`` to be called again unchanged (a race it could not
    classify). After a collision the next attempt asks for the next free number, at
    least one above the number that collided, so numbers stay contiguous.
    """
    floor = 1
    for _ in range(STEP_NUMBER_RETRIES):
        try:
            step = attempt(step_number, floor)
        except DuplicateStepNumber:
            if step_number is not None:
                floor = step_number + 1
            step_number = None
            continue
        if step is not None:
            return step
    raise StoreError(
        f"chatdebug: failed to create step after {STEP_NUMBER_RETRIES} retries (run {run_id})"
    )


def classify_unwritten_step(
    params_run_id: uuid.UUID,
    chat_id: str,
    existing: Step | None,
    run_chat_id: str | None,
    run_finished: bool,
) -> Step | None:
    """Explain an insert that wrote no row, from what was read right after it.

    The step already exists (a retried create): return it. The run is missing or belongs
    to another chat: :class:`RunNotFound`. The run is finished: :class:`RunFinalized`.
    Otherwise the run changed between the insert and the read: ``None``, try again.
    """
    if existing is not None:
        if existing.run_id == params_run_id and existing.chat_id == chat_id:
            return existing
        raise StoreError(f"chatdebug: step {existing.id} already exists in another run")
    if run_chat_id is None or run_chat_id != chat_id:
        raise RunNotFound()
    if run_finished:
        raise RunFinalized()
    return None


def validate_retention_days(days: int) -> int:
    if isinstance(days, bool) or not isinstance(days, int):
        raise ValueError(f"retention days must be an integer, got {days!r}")
    if not 0 <= days <= MAX_RETENTION_DAYS:
        raise ValueError(
            f"retention days must be between 0 and {MAX_RETENTION_DAYS} (0 disables the "
            f"purge), got {days}"
        )
    return days


def parse_retention_days(value: str | None, *, strict: bool = False) -> int:
    """The stored retention setting; the default when unset. An unreadable stored value
    gives the default too, or raises :class:`StoreConfigError` when ``strict`` (the purge
    must not guess a retention: it fails that iteration instead)."""
    if value is None:
        return DEFAULT_RETENTION_DAYS
    try:
        days = int(value)
    except ValueError:
        days = -1
    if 0 <= days <= MAX_RETENTION_DAYS:
        return days
    if strict:
        raise StoreConfigError(
            f"chatdebug: stored retention_days setting {value[:40]!r} is not an integer "
            f"between 0 and {MAX_RETENTION_DAYS}"
        )
    return DEFAULT_RETENTION_DAYS


def validate_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    return limit
