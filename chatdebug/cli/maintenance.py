"""``chatdebug finalize-stale`` and ``chatdebug purge``: one-shot maintenance."""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Final

from ..store import PURGE_BATCH_SIZE, Store
from ._core import EXIT_OK, EXIT_USAGE, CommandError, arg, command, open_from_args

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_LOCK_RETRY: Final = 0.5
_LOCK_PATIENCE: Final = 60.0


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
    "delete runs not updated for longer than the retention setting (one batch, or --all)",
    arg(
        "--batch-size",
        type=int,
        default=PURGE_BATCH_SIZE,
        metavar="N",
        help=f"at most N runs per batch (default {PURGE_BATCH_SIZE})",
    ),
    arg(
        "--all",
        action="store_true",
        help="drain the whole backlog, batch after batch (each in its own transaction)",
    ),
)
def _purge(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise CommandError("--batch-size must be at least 1", EXIT_USAGE)
    with open_from_args(args) as store:
        days = store.get_retention_days(strict=True)
        if days == 0:
            print("retention is disabled (retention_days = 0): nothing purged")
            return EXIT_OK
        before = datetime.now(UTC) - timedelta(days=days)
        if args.all:
            runs, steps = _drain(store, before, args.batch_size)
        else:
            result = store.delete_old_runs(before, args.batch_size)
            if result.skipped:
                print("another process is purging right now: skipped")
                return EXIT_OK
            runs, steps = result.runs_removed, result.steps_removed
    print(f"purged {runs} run(s) and {steps} step(s) not updated in {days} day(s)")
    return EXIT_OK


def _drain(store: Store, before: datetime, batch_size: int) -> tuple[int, int]:
    """Delete batch after batch until a batch comes back short. A batch that finds
    another process holding the purge lock waits a moment and tries again."""
    progress = sys.stdout.isatty()
    runs = steps = 0
    waited = 0.0
    while True:
        result = store.delete_old_runs(before, batch_size)
        if result.skipped:
            if waited >= _LOCK_PATIENCE:
                raise CommandError(
                    f"another process kept the purge lock for {_LOCK_PATIENCE:.0f} s; "
                    f"purged {runs} run(s) and {steps} step(s) so far"
                )
            time.sleep(_LOCK_RETRY)
            waited += _LOCK_RETRY
            continue
        waited = 0.0
        runs += result.runs_removed
        steps += result.steps_removed
        if progress:
            print(f"\rpurged {runs} run(s) and {steps} step(s)…", end="", flush=True)
        if result.runs_removed < batch_size:
            break
    if progress:
        print("\r\033[K", end="", flush=True)
    return runs, steps
