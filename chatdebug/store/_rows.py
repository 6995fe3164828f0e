"""Column lists and the conversion of database rows into :class:`Run` / :class:`Step`.

Both backends select the columns in the order given here and hand the row to
:func:`run_from_row` / :func:`step_from_row` together with the two conversions that
differ between them (how a UUID and a timestamp come back from the driver).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final

from ._codec import load_attempts, load_object, load_optional_object
from ._values import ChatTotals, Run, Step

__all__ = [
    "RUN_COLUMNS",
    "STEP_COLUMNS",
    "STEP_COLUMNS_WITHOUT_PAYLOADS",
    "chat_totals_from_row",
    "run_from_row",
    "step_from_row",
]

RUN_COLUMNS: Final = (
    "id, chat_id, user_id, root_chat_id, parent_chat_id, model_config_id, "
    "trigger_message_id, history_tip_message_id, kind, status, provider, model, summary, "
    "started_at, updated_at, finished_at, trace_id, span_id"
)

STEP_COLUMNS: Final = (
    "id, run_id, chat_id, step_number, operation, status, history_tip_message_id, "
    "assistant_message_id, normalized_request, normalized_response, usage, attempts, "
    "error, metadata, started_at, updated_at, finished_at, trace_id, span_id, provider, model"
)

STEP_COLUMNS_WITHOUT_PAYLOADS: Final = STEP_COLUMNS.replace(
    "normalized_request, normalized_response", "'{}' AS normalized_request, NULL"
)
""":data:`STEP_COLUMNS` with the two large payloads left unread (``{}`` and ``None``)."""

ToUUID = Callable[[Any], uuid.UUID]
ToTime = Callable[[Any], datetime]


def run_from_row(row: Sequence[Any], to_uuid: ToUUID, to_time: ToTime) -> Run:
    """Build a :class:`Run` from a row selected with :data:`RUN_COLUMNS`."""
    return Run(
        id=to_uuid(row[0]),
        chat_id=row[1],
        user_id=row[2],
        root_chat_id=row[3],
        parent_chat_id=row[4],
        model_config_id=row[5],
        trigger_message_id=row[6],
        history_tip_message_id=row[7],
        kind=row[8],
        status=row[9],
        provider=row[10],
        model=row[11],
        summary=load_object(row[12]),
        started_at=to_time(row[13]),
        updated_at=to_time(row[14]),
        finished_at=None if row[15] is None else to_time(row[15]),
        trace_id=row[16],
        span_id=row[17],
    )


def step_from_row(row: Sequence[Any], to_uuid: ToUUID, to_time: ToTime) -> Step:
    """Build a :class:`Step` from a row selected with :data:`STEP_COLUMNS`."""
    return Step(
        id=to_uuid(row[0]),
        run_id=to_uuid(row[1]),
        chat_id=row[2],
        step_number=row[3],
        operation=row[4],
        status=row[5],
        history_tip_message_id=row[6],
        assistant_message_id=row[7],
        normalized_request=load_object(row[8]),
        normalized_response=load_optional_object(row[9]),
        usage=load_optional_object(row[10]),
        attempts=load_attempts(row[11]),
        error=load_optional_object(row[12]),
        metadata=load_object(row[13]),
        started_at=to_time(row[14]),
        updated_at=to_time(row[15]),
        finished_at=None if row[16] is None else to_time(row[16]),
        trace_id=row[17],
        span_id=row[18],
        provider=row[19],
        model=row[20],
    )


def chat_totals_from_row(
    row: Any, user_ids: list[str], to_datetime: Callable[[Any], datetime]
) -> ChatTotals:
    """:class:`ChatTotals` from a ``CHAT_TOTALS`` row (``user_ids`` decoded)."""
    return ChatTotals(
        run_count=int(row[0]),
        error_run_count=int(row[1]),
        in_progress_run_count=int(row[2]),
        total_input_tokens=int(row[3]),
        total_output_tokens=int(row[4]),
        total_cost_usd=None if row[5] is None else float(row[5]),
        unpriced_step_count=int(row[6]),
        steps_without_usage=int(row[7]),
        user_ids=sorted(user_ids),
        first_started_at=None if row[9] is None else to_datetime(row[9]),
        last_started_at=None if row[10] is None else to_datetime(row[10]),
    )
