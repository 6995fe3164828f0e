"""Text search on SQLite: each word's matches read newest first and joined millisecond
by millisecond, so that a page costs the matches newer than its last run rather than
every match.

The FTS5 index (``0004_search``) lists a word's matching texts by rowid, and a rowid is
the start time of the text's run in milliseconds shifted left by 20 bits plus a
sequence number: every text of a run lies in the run's *millisecond* (``rowid >> 20``).
A word is one FTS5 query in descending rowid order; FTS5 gathers the entries of the
words a prefix begins when the query starts, so a query is read on rather than asked
again where possible.

Without other filters the words' queries are *walked* together, the one furthest behind
first. A millisecond is complete once every walk has gone past it; a complete
millisecond that every walk reached holds the candidates. Only their texts are mapped
to runs (a run needs each word in one of its own texts, not necessarily the same one)
and read. Milliseconds are taken newest first, so successive batches follow one another
in the listing's order and the search stops at the batch that fills the page.

With other filters (chat, status, user, kind, model) the runs they keep are read newest
first, a *window* of them at a time (4 times the page, then 4 times the window before),
and each word is looked up in the milliseconds of the window only, which FTS5 checks
itself. A window that does not fill the page and whose runs are a large share of the
runs of its time (a filter that keeps most runs, so the words must be rare) hands over
to walking: the runs the filters keep become one more walk, one that jumps ahead to the
next millisecond the words reach instead of reading every run in between.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from . import _sqlite_sql as sql
from ._codec import format_timestamp, utc
from ._values import RunPosition

__all__ = ["search_rows"]

_MS_BITS: Final = 20
_NO_KEY: Final = 2**63 - 1
_BOTTOM: Final = -(2**63)
"""Below every millisecond: the frontier once every walk is done."""
_FIRST_READ: Final = 256
"""Rows a walk reads at first; each further read of the same walk doubles, up to
:data:`_MAX_READ`."""
_MAX_READ: Final = 8192
_WINDOW_PAGES: Final = 4
"""The first window of filtered runs, in pages; each further window is this many times
the one before."""
_DENSE: Final = 4
"""A window whose runs are more than 1 in this many of the runs of its time hands over
to walking."""


def _key(moment: datetime) -> int:
    """The first rowid of the texts of runs that started in ``moment``'s millisecond."""
    milliseconds = (utc(moment) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    return milliseconds << _MS_BITS


def _millisecond_text(millisecond: int) -> str:
    """The stored text of the first moment of ``millisecond`` (since the epoch)."""
    return format_timestamp(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millisecond))


class _Search:
    """One search: its words, the filters' conditions and parameter values, the rowid
    bounds of the time filters and the cursor, and the statement that reads a batch."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        names: list[str],
        values: dict[str, Any],
        after: RunPosition | None,
        model_probe: bool,
    ) -> None:
        self.conn = conn
        self.terms = [values[n.replace(":", "_")] for n in names if n.startswith("text:")]
        self.conditions = [name for name in names if not name.startswith("text:")]
        self.values = values
        self.model_probe = model_probe
        self.limit: int = values["limit"]
        upper = _NO_KEY
        if after is not None:
            upper = _key(after.started_at) + (1 << _MS_BITS)
        if "until" in values:
            upper = min(upper, _key(datetime.fromisoformat(values["until"])) + (1 << _MS_BITS))
        self.upper = upper
        self.lower = _key(datetime.fromisoformat(values["since"])) if "since" in values else _BOTTOM
        self.filtered = bool(set(self.conditions) - {"since", "until", "after"})

    def batch(self, docs: Sequence[list[int]], runs: list[str] | None, remaining: int) -> list[Any]:
        """The runs that have a text of each word's list in ``docs`` (among ``runs``
        when given: those already known to pass the filters), newest first."""
        params = dict(self.values)
        for n, found in enumerate(docs):
            params[f"docs_{n}"] = json.dumps(found)
        if runs is not None:
            params["runs"] = json.dumps(runs)
        params["limit"] = remaining
        query = sql.search_batch(self.conditions, len(docs), runs is not None, self.model_probe)
        return self.conn.execute(query, params).fetchall()


def search_rows(
    conn: sqlite3.Connection,
    names: list[str],
    values: dict[str, Any],
    after: RunPosition | None,
    model_probe: bool,
) -> list[Any]:
    """The rows of the listing with a search (``text:N`` among ``names``); the model, if
    any, is checked run by run when ``model_probe``."""
    search = _Search(conn, names, values, after, model_probe)
    if search.lower >= search.upper:
        return []
    if not search.filtered:
        return _walk(search, search.upper, None, search.limit)
    return _windows(search)


# -- windows of the runs the filters keep ------------------------------------------------


def _windows(search: _Search) -> list[Any]:
    runs = search.conn.execute(
        sql.run_walk(search.conditions, search.model_probe),
        {**search.values, "walk_upper": sql.WALK_FROM_START},
    )
    rows: list[Any] = []
    size = _WINDOW_PAGES * search.limit
    carry: list[Any] = []
    first = True
    try:
        while True:
            window, carry, last = _take(runs, size, carry)
            if not window:
                return rows
            rows += _window(search, window, search.limit - len(rows))
            bottom: int = window[-1][0]
            if len(rows) >= search.limit or last:
                return rows
            if first and _dense(search.conn, window):
                rest = search.limit - len(rows)
                return rows + _walk(search, bottom << _MS_BITS, _millisecond_text(bottom), rest)
            first = False
            size *= _WINDOW_PAGES
    finally:
        runs.close()


def _take(runs: sqlite3.Cursor, size: int, carry: list[Any]) -> tuple[list[Any], list[Any], bool]:
    """The next window of (millisecond, run id) rows: about ``size`` rows, ending at the
    end of a millisecond (the rest of the last one is carried over); whether it is the
    last."""
    window = carry + runs.fetchmany(size)
    while True:
        if len(window) - len(carry) < size:
            return window, [], True
        oldest = window[-1][0]
        cut = len(window)
        while cut and window[cut - 1][0] == oldest:
            cut -= 1
        if cut:
            return window[:cut], window[cut:], False
        carry = window  # one millisecond fills the window: read on to its end
        window = carry + runs.fetchmany(size)


def _window(search: _Search, window: list[Any], remaining: int) -> list[Any]:
    """The matching runs of one window, looking each word up in its milliseconds."""
    milliseconds = sorted({row[0] for row in window})
    bounds = {
        "lower": max(search.lower, milliseconds[0] << _MS_BITS),
        "upper": min(search.upper, (milliseconds[-1] + 1) << _MS_BITS),
        "only": json.dumps(milliseconds),
    }
    reached: dict[int, list[list[int]]] = {}
    for n, term in enumerate(search.terms):
        found = search.conn.execute(sql.SEARCH_WALK_ONLY, {**bounds, "match": term})
        for (rowid,) in found:
            docs = reached.setdefault(rowid >> _MS_BITS, [[] for _ in search.terms])
            docs[n].append(rowid)
    shared = {m for m, docs in reached.items() if all(docs)}
    if not shared:
        return []
    docs = [[doc for m in shared for doc in reached[m][n]] for n in range(len(search.terms))]
    runs = [run_id for millisecond, run_id in window if millisecond in shared]
    return search.batch(docs, runs, remaining)


def _dense(conn: sqlite3.Connection, window: list[Any]) -> bool:
    """Whether the window's runs are more than 1 in :data:`_DENSE` of all the runs that
    started in its time."""
    span = {"lower": _millisecond_text(window[-1][0]), "upper": _millisecond_text(window[0][0] + 1)}
    total: int = conn.execute(sql.RUNS_BETWEEN, span).fetchone()[0]
    return len(window) * _DENSE > total


# -- walks ------------------------------------------------------------------------------


class _Walk:
    """Rows of one query, newest millisecond first, grouped by millisecond as they are
    read (``pending``: the items of each millisecond not yet dealt with)."""

    __slots__ = ("cursor", "done", "low", "pending", "size")

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self.cursor = cursor
        self.pending: dict[int, list[Any]] = {}
        self.low: int | None = None  # the oldest millisecond read so far
        self.done = False
        self.size = _FIRST_READ

    def fetch(self) -> list[Any]:
        rows = self.cursor.fetchmany(self.size)
        if len(rows) < self.size:
            self.done = True
        self.size = min(self.size * 2, _MAX_READ)
        return rows

    def read(self) -> None:
        """Read on: rows of a text's rowid."""
        rows = self.fetch()
        pending = self.pending
        for (rowid,) in rows:
            millisecond = rowid >> _MS_BITS
            found = pending.get(millisecond)
            if found is None:
                pending[millisecond] = [rowid]
            else:
                found.append(rowid)
        if rows:
            self.low = rows[-1][0] >> _MS_BITS

    def close(self) -> None:
        self.cursor.close()


class _RunWalk(_Walk):
    """The runs that pass the filters, newest first: rows of (millisecond, run id)."""

    __slots__ = ("conn", "query", "values")

    def __init__(self, conn: sqlite3.Connection, query: str, values: dict[str, Any]) -> None:
        self.conn = conn
        self.query = query
        self.values = values
        super().__init__(conn.execute(query, values))

    def read(self) -> None:
        rows = self.fetch()
        pending = self.pending
        for millisecond, run_id in rows:
            found = pending.get(millisecond)
            if found is None:
                pending[millisecond] = [run_id]
            else:
                found.append(run_id)
        if rows:
            self.low = rows[-1][0]

    def seek(self, millisecond: int) -> None:
        """Go on from ``millisecond`` (older than anything read so far)."""
        self.cursor.close()
        params = {**self.values, "walk_upper": _millisecond_text(millisecond + 1)}
        self.cursor = self.conn.execute(self.query, params)
        self.done = False


def _walk(search: _Search, upper: int, runs_from: str | None, limit: int) -> list[Any]:
    """The first ``limit`` matching runs below rowid ``upper``, by walking the words
    (and, from the stored time ``runs_from`` down, the runs the filters keep)."""
    conn = search.conn
    bounds = {"lower": search.lower, "upper": min(upper, search.upper)}
    words = [_Walk(conn.execute(sql.SEARCH_WALK, {**bounds, "match": t})) for t in search.terms]
    runs: _RunWalk | None = None
    if runs_from is not None:
        query = sql.run_walk(search.conditions, search.model_probe)
        runs = _RunWalk(conn, query, {**search.values, "walk_upper": runs_from})
    rows: list[Any] = []
    try:
        while len(rows) < limit:
            frontier = _advance(words, runs)
            rows += _check(search, words, runs, frontier, limit - len(rows))
            if frontier == _BOTTOM:
                break
    finally:
        for walk in [*words, *([] if runs is None else [runs])]:
            walk.close()
    return rows[:limit]


def _advance(words: Sequence[_Walk], runs: _RunWalk | None) -> int:
    """Read on the walk furthest behind; the frontier then: every millisecond newer
    than it is complete (:data:`_BOTTOM` once every walk is done)."""
    walks = [*words, *([] if runs is None else [runs])]
    behind = [walk for walk in walks if not walk.done]
    if behind:
        laggard = max(behind, key=lambda w: _NO_KEY if w.low is None else w.low)
        if laggard is runs and runs.low is not None:
            target = _next_candidate(words, runs.low)
            if target is not None and target < runs.low:
                runs.seek(target)
        laggard.read()
    return max((_NO_KEY if w.low is None else w.low for w in walks if not w.done), default=_BOTTOM)


def _next_candidate(words: Sequence[_Walk], below: int) -> int | None:
    """The newest millisecond older than ``below`` that every word may still reach:
    reached by each word so far, or not yet read by any."""
    best: int | None = None
    for millisecond in words[0].pending:
        if millisecond < below and (best is None or millisecond > best):
            if all(_may_reach(w, millisecond) for w in words[1:]):
                best = millisecond
    if all(not w.done and w.low is not None for w in words):
        unread = min(w.low for w in words if w.low is not None)
        if unread < below and (best is None or unread > best):
            best = unread
    return best


def _may_reach(walk: _Walk, millisecond: int) -> bool:
    if millisecond in walk.pending:
        return True
    return not walk.done and walk.low is not None and millisecond <= walk.low


def _check(
    search: _Search,
    words: Sequence[_Walk],
    runs: _RunWalk | None,
    frontier: int,
    remaining: int,
) -> list[Any]:
    """The runs of the complete milliseconds (newer than ``frontier``) that every walk
    reached, filtered, newest first; the walks forget those milliseconds."""
    walks = sorted([*words, *([] if runs is None else [runs])], key=lambda w: len(w.pending))
    shared = [
        m for m in walks[0].pending if m > frontier and all(m in walk.pending for walk in walks[1:])
    ]
    docs = [[doc for m in shared for doc in walk.pending[m]] for walk in words]
    known = None if runs is None else [run for m in shared for run in runs.pending[m]]
    for walk in walks:
        for millisecond in [m for m in walk.pending if m > frontier]:
            del walk.pending[millisecond]
    if not shared:
        return []
    return search.batch(docs, known, remaining)
