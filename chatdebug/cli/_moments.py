"""The filters of ``chatdebug runs`` across chats: ``--since``/``--until`` as an age
(``90s``, ``15m``, ``1h``, ``7d``, ``2w``) or an RFC 3339 time, and the others as given."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta
from typing import Final

from ..store import RunFilter
from ._core import EXIT_USAGE, CommandError

__all__ = ["parse_moment", "recent_filters"]

_AGE = re.compile(r"([0-9]{1,7})([smhdw])")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_moment(option: str, text: str | None, now: datetime) -> datetime | None:
    """``text`` as a UTC moment: an age before ``now``, or a time (UTC when it has no
    offset); a usage error otherwise."""
    if text is None:
        return None
    age = _AGE.fullmatch(text.strip())
    try:
        if age is not None:
            return now - timedelta(seconds=int(age[1]) * _UNIT_SECONDS[age[2]])
        moment = datetime.fromisoformat(text.strip())
    except (ValueError, OverflowError):
        raise CommandError(
            f"{option} {text!r}: expected an age like 15m, 1h, 7d or a time like "
            "2025-03-01T12:00:00Z",
            EXIT_USAGE,
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def recent_filters(args: argparse.Namespace) -> RunFilter:
    """The :class:`~chatdebug.store.RunFilter` the options ask for."""
    now = datetime.now(UTC)
    return RunFilter(
        status=args.status,
        kind=args.kind,
        user_id=args.user,
        model=args.model,
        since=parse_moment("--since", args.since, now),
        until=parse_moment("--until", args.until, now),
    )
