"""``chatdebug reprice``: compute the cost of stored steps again.

Steps are priced when they are recorded, with the genai-prices data and overrides of
the recording process. After an upgrade of genai-prices, or with new overrides (a
fine-tune's prices), ``reprice`` prices the stored steps again from their stored usage,
provider, model and time, and sums their runs' summaries again. Steps still in progress
are left alone (their usage is not final).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from ..exporter import Pricer, PricesError, aggregate_run_summary, load_prices_file
from ..exporter import repriced_metadata as _repriced_metadata
from ..store import RunFilter, RunPosition, RunUpdate, StepUpdate
from ._core import EXIT_OK, EXIT_USAGE, CommandError, arg, command, open_from_args
from .runs import parse_moment

_PAGE = 200

PRICES_ARG = arg(
    "--prices",
    metavar="FILE",
    default=None,
    help="JSON price overrides, dollars per million tokens by model",
)
"""The ``--prices FILE`` option of the commands that price steps."""


def pricer_from_args(args: argparse.Namespace) -> Pricer:
    """The pricer of ``--prices`` (bundled prices alone without it); a usage error
    naming the bad entry when the file is not a valid price table."""
    overrides: dict[str, Any] = {}
    if args.prices is not None:
        try:
            overrides = load_prices_file(args.prices)
        except PricesError as exc:
            raise CommandError(str(exc), EXIT_USAGE) from None
    return Pricer(overrides)


@command(
    "reprice",
    "price stored steps again (after a genai-prices upgrade or with new overrides)",
    arg(
        "--since",
        metavar="AGE|TIME",
        help="only runs started within AGE (90s, 15m, 1h, 7d, 2w) or after TIME (RFC 3339)",
    ),
    arg("--model", metavar="MODEL", help="only steps of this model"),
    PRICES_ARG,
    arg("--dry-run", action="store_true", help="count what would change, write nothing"),
)
def _reprice(args: argparse.Namespace) -> int:
    pricer = pricer_from_args(args)
    filters = RunFilter(since=parse_moment("--since", args.since, datetime.now(UTC)))
    model = args.model.lower() if args.model else None
    runs_seen = steps_changed = priced = unpriced = 0
    with open_from_args(args) as store:
        after: RunPosition | None = None
        while True:
            page = store.list_recent_runs(filters, after=after, limit=_PAGE)
            for run in page:
                runs_seen += 1
                steps = store.list_steps(run.id, payloads=False)
                changed = False
                for index, step in enumerate(steps):
                    if step.status == "in_progress":
                        continue
                    if model is not None and (step.model or "").lower() != model:
                        continue
                    metadata = _repriced_metadata(step, pricer)
                    if "cost" in metadata:
                        priced += 1
                    else:
                        unpriced += 1
                    if metadata == step.metadata:
                        continue
                    steps_changed += 1
                    changed = True
                    if not args.dry_run:
                        steps[index] = store.update_step(
                            StepUpdate(id=step.id, chat_id=step.chat_id, metadata=metadata)
                        )
                if changed and not args.dry_run and run.status != "in_progress":
                    summary = aggregate_run_summary(
                        run.id,
                        steps,
                        dict(run.summary or {}),
                        started_at=run.started_at,
                        finished_at=run.finished_at,
                    )
                    store.update_run(RunUpdate(id=run.id, chat_id=run.chat_id, summary=summary))
            if len(page) < _PAGE:
                break
            after = RunPosition(started_at=page[-1].started_at, id=page[-1].id)
    verb = "would change" if args.dry_run else "changed"
    print(
        f"{runs_seen} runs, {priced} steps priced, {unpriced} without a price; "
        f"{verb} {steps_changed} steps"
    )
    return EXIT_OK
