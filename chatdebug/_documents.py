"""The JSON documents of runs, steps and exports, used by the read API (``server``) and
the command line (``cli``): ``ChatDebugRunSummary``, ``ChatDebugRun`` (with its ordered
``steps``), ``ChatDebugStep`` and the chat export document (``version`` 1), plus the
reads that combine several store calls into one of them.

Optional fields (marked ``?`` below) are omitted when null. Timestamps are RFC 3339 in
UTC with a ``Z``.

Token usage is never made up: a step whose provider reported none has no ``usage`` and
says why in ``metadata.usage_unavailable`` (``"stream without include_usage"``,
``"stream closed before usage"``, ``"provider sent no usage"``); a run summary's token
totals sum the usage that was reported and ``steps_without_usage`` counts the steps
that had none (absent when every step reported its usage). Readers show such usage as
not reported, never as 0. Cost is the same: a priced step has ``metadata.cost``
(``total_usd``, ``input_usd``, ``output_usd``, ``cache_read_usd``, ``cache_write_usd``,
``currency``, ``source``, ``source_version``, ``match``), one without a price has
``metadata.cost_unavailable`` (the reason) instead, and a run summary has
``total_cost_usd`` (its priced steps, absent when none was priced) and
``unpriced_step_count`` (steps found to have no price, absent when there are none).
JSON columns arrive from the store already decoded tolerantly: a malformed payload is
a ``{"error": "malformed debug payload", "parse_error", "raw"}`` object (attempts: a
one-element list of ``"malformed attempts payload"``), a JSON ``null`` in a non-null
column is ``{}`` (attempts ``[]``). Bodies inside attempts stay
the base64 strings they were stored as.

Nothing here needs Starlette: ``chatdebug export`` works without the ``serve`` extra.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from .store import DEFAULT_LIST_LIMIT, Run, Step, Store

__all__ = [
    "CHAT_SUMMARY_RUNS",
    "EXPORT_VERSION",
    "chat_export",
    "chat_summary_document",
    "export_document",
    "rfc3339",
    "run_by_id",
    "run_document",
    "run_summary_document",
    "run_with_steps",
    "step_document",
]

EXPORT_VERSION: Final = 1
CHAT_SUMMARY_RUNS: Final = 10_000
"""Most runs a chat's totals add up (newest first); ``complete`` says whether that was all."""


def rfc3339(value: datetime) -> str:
    """``2025-03-01T12:00:00.123456Z`` (the value is UTC already)."""
    return value.isoformat().replace("+00:00", "Z")


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        target[key] = value


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def run_summary_document(run: Run) -> dict[str, Any]:
    """``ChatDebugRunSummary``: ``id, chat_id, user_id?, kind, status, provider?, model?,
    summary, started_at, updated_at, finished_at?, trace_id?``.

    ``summary`` holds ``step_count``, ``total_input_tokens``, ``total_output_tokens``
    (reported usage only), ``steps_without_usage?`` and the other derived and seed keys
    once the run has ended, among them ``error`` (``{"type", "message",
    "step_number"?}``: the first failing step's error, else the exception that ended
    the run) when it failed."""
    out: dict[str, Any] = {"id": str(run.id), "chat_id": run.chat_id}
    _put(out, "user_id", run.user_id)
    out["kind"] = run.kind
    out["status"] = run.status
    _put(out, "provider", run.provider)
    _put(out, "model", run.model)
    out["summary"] = _object(run.summary)
    out["started_at"] = rfc3339(run.started_at)
    out["updated_at"] = rfc3339(run.updated_at)
    if run.finished_at is not None:
        out["finished_at"] = rfc3339(run.finished_at)
    _put(out, "trace_id", run.trace_id)
    return out


def step_document(step: Step) -> dict[str, Any]:
    """``ChatDebugStep``: ``id, run_id, chat_id, step_number, operation, status,
    history_tip_message_id?, assistant_message_id?, normalized_request,
    normalized_response?, usage?, attempts, error?, metadata, started_at, updated_at,
    finished_at?``.

    ``usage`` is absent when the provider reported none; ``metadata.usage_unavailable``
    then says why."""
    out: dict[str, Any] = {
        "id": str(step.id),
        "run_id": str(step.run_id),
        "chat_id": step.chat_id,
        "step_number": step.step_number,
        "operation": step.operation,
        "status": step.status,
    }
    _put(out, "history_tip_message_id", step.history_tip_message_id)
    _put(out, "assistant_message_id", step.assistant_message_id)
    out["normalized_request"] = _object(step.normalized_request)
    _put(out, "normalized_response", step.normalized_response)
    _put(out, "usage", step.usage)
    out["attempts"] = list(step.attempts or [])
    _put(out, "error", step.error)
    out["metadata"] = _object(step.metadata)
    out["started_at"] = rfc3339(step.started_at)
    out["updated_at"] = rfc3339(step.updated_at)
    if step.finished_at is not None:
        out["finished_at"] = rfc3339(step.finished_at)
    return out


def run_document(run: Run, steps: Sequence[Step]) -> dict[str, Any]:
    """``ChatDebugRun``: ``id, chat_id, user_id?, root_chat_id?, parent_chat_id?,
    model_config_id?, trigger_message_id?, history_tip_message_id?, kind, status,
    provider?, model?, summary, started_at, updated_at, finished_at?, trace_id?,
    steps``."""
    out: dict[str, Any] = {"id": str(run.id), "chat_id": run.chat_id}
    _put(out, "user_id", run.user_id)
    _put(out, "root_chat_id", run.root_chat_id)
    _put(out, "parent_chat_id", run.parent_chat_id)
    _put(out, "model_config_id", run.model_config_id)
    _put(out, "trigger_message_id", run.trigger_message_id)
    _put(out, "history_tip_message_id", run.history_tip_message_id)
    summary = run_summary_document(run)
    del summary["id"], summary["chat_id"]
    summary.pop("user_id", None)
    out.update(summary)  # kind … finished_at, in the documented field order
    out["steps"] = [step_document(step) for step in steps]
    return out


def export_document(
    chat_id: str, runs: Sequence[tuple[Run, Sequence[Step]]], exported_at: datetime
) -> dict[str, Any]:
    """The chat export: ``{"version": 1, "scope": "chat", "exported_at", "chat_id",
    "run_count", "limited_to_most_recent": 100, "runs": [ChatDebugRun…]}``."""
    return {
        "version": EXPORT_VERSION,
        "scope": "chat",
        "exported_at": rfc3339(exported_at),
        "chat_id": chat_id,
        "run_count": len(runs),
        "limited_to_most_recent": DEFAULT_LIST_LIMIT,
        "runs": [run_document(run, steps) for run, steps in runs],
    }


# -- reads -----------------------------------------------------------------------------


def run_with_steps(store: Store, chat_id: str, run_id: uuid.UUID) -> dict[str, Any] | None:
    """``ChatDebugRun`` of the run, or ``None`` when it does not exist in that chat."""
    run = store.get_run(run_id)
    if run is None or run.chat_id != chat_id:
        return None
    return run_document(run, store.list_steps(run_id))


def chat_export(store: Store, chat_id: str, now: datetime) -> dict[str, Any]:
    """The export document of the chat's newest 100 runs, each with its steps."""
    runs = store.list_runs(chat_id, DEFAULT_LIST_LIMIT)
    return export_document(chat_id, [(run, store.list_steps(run.id)) for run in runs], now)


def run_by_id(store: Store, run_id: uuid.UUID) -> dict[str, Any] | None:
    """``ChatDebugRun`` of the run whatever its chat, or ``None`` when it does not exist."""
    run = store.get_run(run_id)
    return None if run is None else run_document(run, store.list_steps(run_id))


def chat_summary_document(store: Store, chat_id: str) -> dict[str, Any]:
    """A chat's totals over its newest :data:`CHAT_SUMMARY_RUNS` runs: ``chat_id,
    run_count, error_run_count, in_progress_run_count, total_input_tokens,
    total_output_tokens, total_cost_usd?, unpriced_step_count, steps_without_usage,
    user_ids, first_started_at?, last_started_at?, complete``. ``total_cost_usd`` is
    absent when no step was priced; with ``unpriced_step_count`` above 0 it is a lower
    bound."""
    totals = store.chat_totals(chat_id, CHAT_SUMMARY_RUNS)
    out: dict[str, Any] = {
        "chat_id": chat_id,
        "run_count": totals.run_count,
        "error_run_count": totals.error_run_count,
        "in_progress_run_count": totals.in_progress_run_count,
        "total_input_tokens": totals.total_input_tokens,
        "total_output_tokens": totals.total_output_tokens,
    }
    cost = totals.total_cost_usd
    _put(out, "total_cost_usd", None if cost is None else round(cost, 9))
    out["unpriced_step_count"] = totals.unpriced_step_count
    out["steps_without_usage"] = totals.steps_without_usage
    out["user_ids"] = totals.user_ids
    if totals.first_started_at is not None and totals.last_started_at is not None:
        out["first_started_at"] = rfc3339(totals.first_started_at)
        out["last_started_at"] = rfc3339(totals.last_started_at)
    out["complete"] = totals.run_count < CHAT_SUMMARY_RUNS
    return out
