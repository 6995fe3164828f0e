"""The one warning a process logs when a run does not record because recording is off.

Recording is off by default (it needs the deployment flag, or the admin switch and the
user's opt-in), so a new user who follows
the quick start without ``enabled=True`` would otherwise record nothing and hear nothing.
The first run that is not recorded says why — not forced by the deployment, the admin
switch ``allow_users`` off, or its user not opted in — and the exact argument or command
that turns recording on. Later runs cost one flag check.
"""

from __future__ import annotations

import logging
import shlex
import threading
from collections.abc import Callable

from ._settings import force_enabled, settings

__all__ = ["not_recorded_reason", "reset_not_recorded_warning", "warn_not_recorded"]

logger = logging.getLogger("chatdebug")

FORCE_HINT = "configure(enabled=True) or CHATDEBUG_ENABLED=1"

_warned = False
_lock = threading.Lock()


def _read(what: str, read: Callable[[], bool]) -> bool | None:
    """A setting from the enablement source; None when it cannot be read."""
    try:
        return bool(read())
    except Exception:
        logger.debug("chatdebug: could not read %s for the not-recorded warning", what)
        return None


def not_recorded_reason(chat_id: str, user_id: str | None) -> str | None:
    """Why a run of ``user_id`` does not record and how to turn recording on; None when
    it would record (forced by the deployment)."""
    if force_enabled():
        return None
    who = f"chat {chat_id!r}" + (f" (user {user_id!r})" if user_id else "")
    user_arg = shlex.quote(user_id) if user_id else "USER"
    opt_in = f"`chatdebug settings user {user_arg} on`"
    source = settings().enablement_source
    if source is None:
        why = "chatdebug.configure() was not called"
        fix = "To record every run: chatdebug.configure(enabled=True) or CHATDEBUG_ENABLED=1."
    else:
        allowed = _read("allow_users", source.get_allow_users)
        if allowed is None:
            why = "the allow_users and opt-in settings could not be read from the store"
            fix = f"To record every run regardless: {FORCE_HINT}."
        elif not allowed:
            why = "the admin setting allow_users is off"
            fix = (
                f"To record every run: {FORCE_HINT}; to let users opt in: "
                f"`chatdebug settings allow-users on`, then {opt_in}."
            )
        elif not user_id:
            why = "the run has no user_id, so no user's opt-in applies"
            fix = (
                f"Pass user_id= to chatdebug.run() and opt that user in with {opt_in}, "
                f"or record every run: {FORCE_HINT}."
            )
        else:
            opted_in = _read("the user's opt-in", lambda: source.get_user_enabled(user_id))
            if opted_in is None:
                why = f"the opt-in of user {user_id!r} could not be read from the store"
                fix = f"To record every run regardless: {FORCE_HINT}."
            elif opted_in:
                return None  # on by now (the answer was cached a moment ago)
            else:
                why = f"user {user_id!r} has not opted in (allow_users is on)"
                fix = f"To opt this user in: {opt_in}; to record every run: {FORCE_HINT}."
    return (
        f"chatdebug: nothing recorded for {who}: recording is off because it is not forced "
        f"by the deployment and {why}. {fix} (Logged once per process.)"
    )


def warn_not_recorded(chat_id: str, user_id: str | None) -> None:
    """Log :func:`not_recorded_reason` as a WARNING, the first time only."""
    global _warned
    if _warned:
        return
    reason = not_recorded_reason(chat_id, user_id)
    if reason is None:
        return
    with _lock:
        if _warned:
            return
        _warned = True
    logger.warning("%s", reason)


def reset_not_recorded_warning() -> None:
    """Let the next run that does not record warn again (for tests)."""
    global _warned
    with _lock:
        _warned = False
