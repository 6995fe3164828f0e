"""What ``chatdebug runs`` and ``chatdebug show`` add when they find nothing: whether
recording is on (for the user, when known) and the exact command that turns it on.

Recording is off by default, so "no runs" most often means "nothing was allowed to
record", not "nothing happened"; the store holds the settings that decide it. Only the
deployment flag lives in the application's process, which this command cannot see.
"""

from __future__ import annotations

import os
import shlex

from ..environment_variables import CHATDEBUG_ENABLED, truthy
from ..store import Store, database_location, mask_password

__all__ = ["nothing_found_hint"]

_FORCE = "configure(enabled=True) or CHATDEBUG_ENABLED=1 in the application"


def _command(words: str, database_url: str | None) -> str:
    """``chatdebug WORDS`` against the same database as this command."""
    if database_url:
        has_password = "***" in mask_password(database_url) and "***" not in database_url
        url = "URL" if has_password else database_url
        words = f"--database-url {shlex.quote(url)} {words}"
    return f"`chatdebug {words}`"


def nothing_found_hint(
    store: Store,
    *,
    lead: str = "nothing found",
    user_id: str | None = None,
    database_url: str | None = None,
) -> list[str]:
    """Lines saying where nothing was found (``lead``), whether recording is on and how
    to turn it on.

    ``user_id``: the user whose runs were looked for, when known. ``database_url``: the
    ``--database-url`` given to this command (repeated in the suggested commands).
    """
    lines = _status(store, user_id, database_url)
    lines[0] = f"chatdebug: {lead} in {database_location(database_url)}. {lines[0]}"
    return lines


def _status(store: Store, user_id: str | None, database_url: str | None) -> list[str]:
    user_arg = shlex.quote(user_id) if user_id else "USER"
    opt_in = _command(f"settings user {user_arg} on", database_url)
    allow = _command("settings allow-users on", database_url)
    lines: list[str] = []
    if truthy(os.environ.get(CHATDEBUG_ENABLED)):
        lines.append(
            f"{CHATDEBUG_ENABLED} is set here: if the application runs with it too, every "
            "run records; check that it writes to this database and calls chatdebug.run()."
        )
        return lines
    if not store.get_allow_users():
        who = f"user {user_id!r}" if user_id else "every user"
        lines.append(
            f"Recording is off for {who} unless the application forces it: "
            "the admin setting allow_users is off."
        )
        lines.append(f"Turn it on: {allow}, then {opt_in}; or record every run with {_FORCE}.")
        return lines
    if user_id is None:
        lines.append(
            "allow_users is on: runs record for users who opted in, or every run when the "
            "application forces it."
        )
        lines.append(f"Opt the chat's user in: {opt_in}; or record every run with {_FORCE}.")
        return lines
    if store.get_user_enabled(user_id):
        lines.append(
            f"Recording is on for user {user_id!r} (allow_users on, opted in): runs record "
            "inside chatdebug.run() through a chatdebug transport or instrument_httpx()."
        )
        return lines
    lines.append(f"Recording is off for user {user_id!r}: allow_users is on, but not opted in.")
    lines.append(f"Turn it on: {opt_in}; or record every run with {_FORCE}.")
    return lines
