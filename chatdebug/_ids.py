"""The one rule for the chat and user ids chatdebug records and serves.

An id is any text of 1 to :data:`MAX_ID_LENGTH` characters except NUL and unpaired
surrogates (neither can be stored as UTF-8 text by both databases): tabs, non-breaking
spaces, joined emoji, ``.``, ``..``, ``/``, ``?`` and ``#`` are all ids. The recorder
refuses a run whose chat id breaks the rule (logged and counted, the caller's code runs
unchanged), and the read API accepts exactly the ids that can have been recorded.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_ID_LENGTH", "id_problem"]

MAX_ID_LENGTH: Final = 256
"""Longest chat or user id, in characters."""


def id_problem(value: object) -> str | None:
    """Why ``value`` cannot be a chat or user id, or ``None`` when it can."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"is {len(value)} characters long, the limit is {MAX_ID_LENGTH}"
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired surrogate"
    return None
