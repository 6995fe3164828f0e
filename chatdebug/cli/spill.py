"""``chatdebug replay-spill PATH``: write the spill journals that ended processes left."""

from __future__ import annotations

import argparse

from ..exporter import replay_spill
from ._core import EXIT_FAILURE, EXIT_OK, arg, command, open_from_args
from .maintenance import parse_duration
from .reprice import PRICES_ARG, pricer_from_args


@command(
    "replay-spill",
    "write into the database the events that ended processes left in a spill journal",
    arg("path", metavar="PATH", help="the spill_path the application was configured with"),
    arg("--timeout", default="10m", metavar="DURATION",
        help="give up after this long if the database stops answering (default 10m)"),
    PRICES_ARG,
)  # fmt: skip
def _replay_spill(args: argparse.Namespace) -> int:
    timeout = parse_duration(args.timeout).total_seconds()
    # Steps handed to the journal before the application priced them are priced here.
    pricer = pricer_from_args(args)
    with open_from_args(args) as store:
        report = replay_spill(args.path, store, timeout=timeout, pricer=pricer)
    dropped = sum(report.dropped.values())
    if not report.files:
        print(f"no spill journal to replay under {args.path}")
    else:
        detail = ", ".join(f"{n} {reason}" for reason, n in sorted(report.dropped.items()))
        print(
            f"replayed {report.replayed} event(s) from {len(report.files)} journal file(s); "
            f"{dropped} not written" + (f" ({detail})" if detail else "")
        )
    for path in report.busy:
        print(f"skipped {path}: in use by a running process (it replays it itself)")
    if report.remaining:
        print(
            f"{report.remaining} event(s) are still in the journal: the database stopped answering"
        )
        return EXIT_FAILURE
    return EXIT_OK
