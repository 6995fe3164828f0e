"""``chatdebug runs`` and ``chatdebug show``: read what was recorded.

``chatdebug runs`` lists the runs of one chat (``--chat``) or recent runs across chats,
filtered by status, kind, user, model and start time (``--since``/``--until`` as an age
or an RFC 3339 time).
"""

from __future__ import annotations

import argparse
import re
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Final

from .._status import Status
from ..store import DEFAULT_LIST_LIMIT, RunFilter, Store
from ._core import EXIT_OK, EXIT_USAGE, CommandError, arg, command, open_from_args
from ._hints import nothing_found_hint
from ._render import dumps, render_run, render_runs, run_json, run_summary_json

_AGE = re.compile(r"([0-9]{1,7})([smhdw])")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def _hint(store: Store, args: argparse.Namespace, lead: str = "nothing found") -> list[str]:
    """Why nothing may have been recorded (for ``--user`` when given) and how to turn
    recording on."""
    user = getattr(args, "user", None)
    return nothing_found_hint(store, lead=lead, user_id=user, database_url=args.database_url)


def parse_moment(option: str, text: str | None, now: datetime) -> datetime | None:
    """``--since``/``--until``: an age (``90s``, ``15m``, ``1h``, ``7d``, ``2w``) before
    ``now``, or an RFC 3339 time (UTC when it has no offset); a usage error otherwise."""
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
    """The :class:`~chatdebug.store.RunFilter` the options of ``chatdebug runs`` ask for:
    ``--since``/``--until`` parsed, the others as given."""
    now = datetime.now(UTC)
    return RunFilter(
        status=args.status,
        kind=args.kind,
        user_id=args.user,
        model=args.model,
        since=parse_moment("--since", args.since, now),
        until=parse_moment("--until", args.until, now),
    )


def parse_run_id(text: str) -> uuid.UUID:
    """The run id argument, or a usage error naming what was wrong."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise CommandError(f"invalid run id {text!r}: expected a UUID", EXIT_USAGE) from None


@command(
    "runs",
    "list recent runs across chats (filters below), or the runs of one chat (--chat)",
    arg("--chat", metavar="CHAT_ID", help="list the runs of this chat only"),
    arg("--status", choices=[s.value for s in Status], help="only runs with this status"),
    arg(
        "--since",
        metavar="AGE|TIME",
        help="started within AGE (90s, 15m, 1h, 7d, 2w) or after TIME (RFC 3339)",
    ),
    arg("--until", metavar="AGE|TIME", help="started more than AGE ago or before TIME"),
    arg("--user", metavar="USER_ID", help="only runs of this user"),
    arg("--model", metavar="MODEL", help="only runs of this model"),
    arg("--kind", metavar="KIND", help="only runs of this kind (chat_turn, title_generation, …)"),
    arg("--limit", type=int, default=DEFAULT_LIST_LIMIT, metavar="N", help="at most N runs"),
    arg("--json", action="store_true", help="print ChatDebugRunSummary objects as JSON"),
)
def _runs(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CommandError("--limit must be at least 1", EXIT_USAGE)
    filters = recent_filters(args)
    if args.chat is not None and filters != RunFilter():
        raise CommandError(
            "--status, --since, --until, --user, --model and --kind list runs across "
            "chats: leave out --chat",
            EXIT_USAGE,
        )
    with open_from_args(args) as store:
        if args.chat is not None:
            runs = store.list_runs(args.chat, limit=args.limit)
        else:
            runs = store.list_recent_runs(filters, limit=args.limit)
        hint = [] if runs else _hint(store, args)
    if args.json:
        print(dumps([run_summary_json(run) for run in runs]))
    else:
        print(render_runs(runs, with_chat=args.chat is None))
    for line in hint:  # on stderr: stdout stays the table or the JSON
        print(line, file=sys.stderr)
    return EXIT_OK


@command(
    "show",
    "show one run: its steps, attempts, usage, errors and redacted headers",
    arg("run_id", metavar="RUN_ID"),
    arg("--json", action="store_true", help="print the ChatDebugRun object as JSON"),
    arg("--bodies", action="store_true", help="also print the captured (redacted) bodies"),
)
def _show(args: argparse.Namespace) -> int:
    run_id = parse_run_id(args.run_id)
    with open_from_args(args) as store:
        run = store.get_run(run_id)
        if run is None:
            raise CommandError(" ".join(_hint(store, args, f"run {run_id} not found")))
        steps = store.list_steps(run_id)
    if args.json:
        print(dumps(run_json(run, steps)))
    else:
        print(render_run(run, steps, verbose=args.bodies))
    return EXIT_OK
