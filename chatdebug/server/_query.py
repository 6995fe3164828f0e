"""Strict parsing of the read API's query parameters, path ids and the paging cursor.

Everything a client sends is checked before it reaches the store: a value that is
malformed, out of range, too long, repeated, or a parameter the route does not know
raises :class:`BadParameter`, which the routes answer with a 400 and a one-line JSON
message (never a stack trace).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from .._status import Status
from ..store import DEFAULT_LIST_LIMIT, RunPosition, search_terms

__all__ = [
    "MAX_TEXT_PARAMETER",
    "BadParameter",
    "check_known",
    "decode_cursor",
    "encode_cursor",
    "parse_limit",
    "parse_message_id",
    "parse_moment",
    "parse_run_id",
    "parse_search",
    "parse_status",
    "parse_text",
    "strict_json",
]

MAX_TEXT_PARAMETER: Final = 256
_MAX_CURSOR: Final = 128
_CURSOR_PREFIX: Final = "v1|"
_DIGITS = re.compile(r"[0-9]{1,7}")
_RELATIVE = re.compile(r"([0-9]{1,7})([smhdw])")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_MAX_MESSAGE_ID: Final = 2**63 - 1


class BadParameter(ValueError):
    """A query parameter, path id or body field the route cannot accept (HTTP 400)."""


def check_known(
    query: Mapping[str, str], multi: list[tuple[str, str]], known: Collection[str]
) -> None:
    """Reject unknown and repeated parameters (``multi`` is every ``(key, value)`` pair)."""
    for key in query:
        if key not in known:
            raise BadParameter(f"unknown query parameter {_show(key)}")
    keys = [key for key, _ in multi]
    for key in set(keys):
        if keys.count(key) > 1:
            raise BadParameter(f"query parameter {_show(key)} given more than once")


def _show(text: str, limit: int = 40) -> str:
    """A client value quoted for an error message, cut short."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def parse_limit(raw: str | None, maximum: int = DEFAULT_LIST_LIMIT) -> int:
    """``limit``: a decimal integer in ``1..maximum``; absent means ``maximum``."""
    if raw is None:
        return maximum
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= maximum:
        raise BadParameter(f"limit must be an integer from 1 to {maximum}")
    return int(raw)


def parse_run_id(raw: str) -> uuid.UUID:
    """A run id in the canonical UUID text form."""
    try:
        if len(raw) != 36:
            raise ValueError
        return uuid.UUID(raw)
    except ValueError:
        raise BadParameter("Invalid debug run ID.") from None


def parse_status(raw: str | None) -> str | None:
    """``status``: one of the run statuses."""
    if raw is None:
        return None
    if raw not in {s.value for s in Status}:
        allowed = ", ".join(s.value for s in Status)
        raise BadParameter(f"status must be one of {allowed}")
    return raw


def parse_text(name: str, raw: str | None) -> str | None:
    """A free-text filter (``kind``, ``user_id``, ``model``): 1..256 printable characters."""
    if raw is None:
        return None
    if not raw or len(raw) > MAX_TEXT_PARAMETER or not raw.isprintable():
        raise BadParameter(f"{name} must be 1 to {MAX_TEXT_PARAMETER} printable characters")
    return raw


def parse_search(raw: str | None) -> str | None:
    """``q``: a text search of 1..256 characters with 1 to 8 words."""
    if raw is None:
        return None
    if not raw or len(raw) > MAX_TEXT_PARAMETER:
        raise BadParameter(f"q must be 1 to {MAX_TEXT_PARAMETER} characters")
    try:
        search_terms(raw)
    except ValueError as exc:
        raise BadParameter(f"q: {exc}") from None
    return raw


def strict_json(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` of :func:`json.loads` that refuses a repeated key (which
    of two values a reader takes is not defined: the request is ambiguous)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicated key {key!r}")
        out[key] = value
    return out


def parse_moment(name: str, raw: str | None, now: datetime) -> datetime | None:
    """``since`` / ``until``: an RFC 3339 timestamp with its offset
    (``2025-03-01T12:00:00Z``), or an age such as ``90s``, ``15m``, ``1h``, ``7d``, ``2w``
    (that long before ``now``)."""
    if raw is None:
        return None
    message = f"{name} must be an RFC 3339 timestamp with a time zone or an age like 1h"
    if len(raw) > 40:
        raise BadParameter(message)
    relative = _RELATIVE.fullmatch(raw)
    try:
        if relative is not None:
            seconds = int(relative[1]) * _UNIT_SECONDS[relative[2]]
            return now - timedelta(seconds=seconds)
        moment = datetime.fromisoformat(raw.replace("z", "Z"))
    except (ValueError, OverflowError):
        raise BadParameter(message) from None
    if moment.tzinfo is None or "T" not in raw.upper():
        raise BadParameter(message)
    try:
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadParameter(message) from None


def parse_message_id(raw: str | None) -> int | None:
    """A chat message id: a non-negative 64-bit integer."""
    if raw is None:
        return None
    if not re.fullmatch(r"[0-9]{1,19}", raw) or int(raw) > _MAX_MESSAGE_ID:
        raise BadParameter("after_message_id must be a non-negative 64-bit integer")
    return int(raw)


def encode_cursor(position: RunPosition) -> str:
    """The opaque cursor naming ``position`` (URL-safe base64, no padding)."""
    text = f"{_CURSOR_PREFIX}{position.started_at.astimezone(UTC).isoformat()}|{position.id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(raw: str | None) -> RunPosition | None:
    """The position a cursor from :func:`encode_cursor` names; anything else is a 400."""
    if raw is None:
        return None
    message = "cursor is not valid: pass back the next_cursor of a previous page"
    if not raw or len(raw) > _MAX_CURSOR or not re.fullmatch(r"[A-Za-z0-9_-]+", raw):
        raise BadParameter(message)
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
        prefix, moment, run_id = text.split("|")
        started_at = datetime.fromisoformat(moment)
        if prefix + "|" != _CURSOR_PREFIX or started_at.tzinfo is None:
            raise ValueError
        return RunPosition(started_at.astimezone(UTC), parse_run_id(run_id))
    except (ValueError, UnicodeDecodeError, binascii.Error, BadParameter, OverflowError):
        raise BadParameter(message) from None
