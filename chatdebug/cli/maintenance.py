"""``chatdebug finalize-stale`` and ``chatdebug purge``: one-shot maintenance."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta

from ..store import PURGE_BATCH_SIZE
from ._core import EXIT_OK, EXIT_USAGE, CommandError, arg, command, open_from_args

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> timedelta:
    """``300``, ``300s``, ``5m``, ``1.5h``, ``2d`` (bare numbers are seconds)."""
    match = _DURATION.match(text)
    if match is None:
        raise CommandError(f"invalid duration {text!r}: use e.g. 90s, 5m, 1h", EXIT_USAGE)
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise CommandError(f"invalid duration {text!r}: must be positive", EXIT_USAGE)
    return timedelta(seconds=seconds)


@command(
    "finalize-stale",
    "mark runs and steps abandoned by crashed processes as interrupted",
    arg(
        "--threshold",
        default="5m",
        metavar="DURATION",
        help="no heartbeat for this long means abandoned (default 5m)",
    ),
)
def _finalize_stale(args: argparse.Namespace) -> int:
    threshold = parse_duration(args.threshold)
    with open_from_args(args) as store:
        result = store.finalize_stale(datetime.now(UTC) - threshold)
    print(
        f"finalized {result.runs_finalized} run(s) and {result.steps_finalized} step(s) "
        f"idle for more than {threshold}"
    )
    return EXIT_OK


@command(
    "purge",
    "delete runs not updated for longer than the retention setting (one batch)",
    arg(
        "--batch-size",
        type=int,
        default=PURGE_BATCH_SIZE,
        metavar="N",
        help=f"at most N runs (default {PURGE_BATCH_SIZE})",
    ),
)
def _purge(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise CommandError("--batch-size must be at least 1", EXIT_USAGE)
    with open_from_args(args) as store:
        days = store.get_retention_days()
        if days == 0:
            print("retention is disabled (retention_days = 0): nothing purged")
            return EXIT_OK
        result = store.delete_old_runs(datetime.now(UTC) - timedelta(days=days), args.batch_size)
    if result.skipped:
        print("another process is purging right now: skipped")
        return EXIT_OK
    print(
        f"purged {result.runs_removed} run(s) and {result.steps_removed} step(s) "
        f"not updated in {days} day(s)"
    )
    return EXIT_OK
