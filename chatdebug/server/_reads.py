"""Reads that combine several store calls into one API document (shared by the API
routes and ``chatdebug export``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from ..store import DEFAULT_LIST_LIMIT, Store
from ._shapes import export_document, run_document

__all__ = ["chat_export", "run_with_steps"]


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
