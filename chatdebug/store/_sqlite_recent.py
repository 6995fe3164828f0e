"""The cross-chat listing on SQLite: how a search and the model filter read the index
the database keeps (``0004_search``), so that a word most runs have costs one page and
a word few runs have costs its matches, never the whole history."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from . import _sqlite_sql as sql
from ._codec import format_timestamp, utc
from ._values import RunPosition

__all__ = ["recent_rows"]

_MODEL_DRIVE_LIMIT: Final = 2000
"""Runs of a model above which the model filter is checked run by run."""
_SEARCH_WINDOW: Final = 2000
"""Matches of a search word a first search reads (newest first); then 8 times more."""
_NO_KEY: Final = 2**63 - 1
_MS_BITS: Final = 20


def _search_key(moment: datetime) -> int:
    """The first search rowid of the runs that started in ``moment``'s millisecond."""
    milliseconds = (utc(moment) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    return milliseconds << _MS_BITS


def _key_time(key: int) -> datetime:
    """The first moment of the millisecond a search rowid names."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=key >> _MS_BITS)


def recent_rows(
    conn: sqlite3.Connection, names: list[str], values: dict[str, Any], after: RunPosition | None
) -> list[Any]:
    """The listing's rows. A model with many runs is checked run by run. A search reads
    its first word's matches newest first in growing windows of whole milliseconds:
    when a window holds a full page, no older run can be on it, so the page is exact
    without reading the older matches of a common word."""
    model_probe = False
    if "model" in names:
        params = {"model": values["model"], "cap": _MODEL_DRIVE_LIMIT + 1}
        model_probe = conn.execute(sql.COUNT_MODEL, params).fetchone()[0] > _MODEL_DRIVE_LIMIT
    if "text:0" not in names:
        return conn.execute(sql.recent_runs(names, model_probe), values).fetchall()
    # Rows of runs started after the cursor's millisecond cannot be on the page.
    upper = _NO_KEY if after is None else _search_key(after.started_at) + (1 << _MS_BITS)
    terms = [values[name.replace(":", "_")] for name in names if name.startswith("text:")]
    skip = _SEARCH_WINDOW
    while True:
        # A word with fewer matches than `skip` bounds every run that can match from
        # its oldest match: that window is complete and this query the last. Else the
        # window starts at the newest of the words' skip-th newest matches.
        newest: list[int] = []
        oldest: list[int] = []
        for term in terms:
            params = {"match": term, "upper": upper, "skip": skip}
            found = conn.execute(sql.SEARCH_WINDOW, params).fetchone()
            if found is not None:
                newest.append(found[0])
                continue
            found = conn.execute(sql.SEARCH_OLDEST, params).fetchone()
            if found is None:
                return []  # a word without any match: no run has them all
            oldest.append(found[0])
        complete = bool(oldest)
        lower = ((max(oldest) if complete else max(newest)) >> _MS_BITS) << _MS_BITS
        params = {**values, "search_lower": lower, "search_upper": upper}
        if complete:
            query = sql.recent_runs(names, model_probe)
        else:
            query = sql.recent_runs(names, model_probe, scan=True)
            params["window_start"] = format_timestamp(_key_time(lower))
        rows = conn.execute(query, params).fetchall()
        if complete or len(rows) >= values["limit"]:
            return rows
        skip *= 8
