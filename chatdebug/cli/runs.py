"""``chatdebug runs`` and ``chatdebug show``: read what was recorded."""

from __future__ import annotations

import argparse
import sys
import uuid

from .._status import Status
from ..store import DEFAULT_LIST_LIMIT, RunFilter, Store
from ._core import EXIT_OK, EXIT_USAGE, CommandError, arg, command, open_from_args
from ._hints import nothing_found_hint
from ._moments import recent_filters
from ._render import dumps, render_run, render_runs, run_json, run_summary_json


def _hint(store: Store, args: argparse.Namespace, lead: str = "nothing found") -> list[str]:
    """Why nothing may have been recorded (for ``--user`` when given) and how to turn
    recording on."""
    user = getattr(args, "user", None)
    return nothing_found_hint(store, lead=lead, user_id=user, database_url=args.database_url)


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
