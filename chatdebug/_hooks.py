"""Deletion hooks for the application: when a chat is deleted, or a conversation is
rewound to an earlier message, its debug data goes with it.

Both work on the store :func:`chatdebug.configure` set up. What is still queued for
writing is flushed first, so a run recorded just before the call is deleted too; runs
that start after the call are kept (the ``started_before`` bound is the moment of the
call). Like everything chatdebug does inside the application, they never raise: a
failure is logged and counted, and the hook returns ``None``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from . import _configure
from ._safety import handle_internal_error
from .store import Store

__all__ = ["delete_after_message", "delete_chat"]

logger = logging.getLogger("chatdebug")


def _delete(
    what: str, flush_timeout: float, delete: Callable[[Store, datetime], int]
) -> int | None:
    started_before = datetime.now(UTC)
    config = _configure.current()
    if config is None:
        logger.warning("chatdebug.%s: chatdebug is not configured, nothing deleted", what)
        return None
    try:
        _configure.flush(flush_timeout)
        return delete(config.store, started_before)
    except Exception as exc:
        handle_internal_error("hooks", exc)
        return None


def delete_chat(chat_id: str, *, flush_timeout: float = 5.0) -> int | None:
    """Delete every debug run (and its steps) recorded for ``chat_id`` up to now.

    Returns the number of runs deleted, or ``None`` when chatdebug is not configured or
    the store failed (logged and counted)."""
    return _delete(
        "delete_chat", flush_timeout, lambda store, before: store.delete_by_chat(chat_id, before)
    )


def delete_after_message(
    chat_id: str, message_id: int, *, flush_timeout: float = 5.0
) -> int | None:
    """Delete the debug runs of ``chat_id`` that come after message ``message_id``: their
    trigger or history tip is a later message, or one of their steps saw or produced one
    (as when the conversation is edited or regenerated from that message).

    Returns the number of runs deleted, or ``None`` when chatdebug is not configured or
    the store failed (logged and counted)."""
    return _delete(
        "delete_after_message",
        flush_timeout,
        lambda store, before: store.delete_after_message(chat_id, int(message_id), before),
    )
