"""Text search on PostgreSQL: the runs' words (``chat_debug_run_search``, migration
``0007_search_runs``) checked newest run first while that is cheap, looked up in their
GIN index when the words are rare.

A word most runs have is best found by reading the runs newest first and checking each
(one index lookup per run): a page then costs about as many checks as it has rows. A
rare word is best looked up in the index: that costs its matches, however old. Which
one a search is shows in its newest runs: the search first checks a window of the
newest :data:`WINDOW` runs (of the chat, when it has a chat filter); if that does not
fill the page, the share of them whose words match tells how many matches the older
runs should hold (against the planner's estimate of the number of runs), and the rest
of the history is either looked up (at most :data:`LOOKUP_LIMIT` expected) or read on
newest first.
"""

from __future__ import annotations

import re
from typing import Any, Final

from . import _postgres_sql as sql

__all__ = ["LOOKUP_LIMIT", "WINDOW", "search_rows"]

WINDOW: Final = 1000
"""Newest runs a search checks one by one before choosing how to go on."""
LOOKUP_LIMIT: Final = 5000
"""Expected matches up to which the rest of a search is looked up in the words' index."""
_PHRASE: Final = re.compile(r"<\d*-?>")
"""A phrase operator of a tsquery's text (<-> or <N>)."""
_FRAMING: Final = frozenset({"chat_id", "since", "until", "after"})
"""The conditions that frame the window (read through an index, never checked run by
run)."""


def search_rows(conn: Any, names: list[str], values: dict[str, Any]) -> list[Any]:
    """The rows of the listing with a search (``text:N`` among ``names``, each
    parameter ``text_N`` the word's prefix query, see :func:`search_word`)."""
    words = sum(1 for name in names if name.startswith("text:"))
    conditions = [name for name in names if not name.startswith("text:")]
    params = dict(values)
    limit: int = values["limit"]
    # The window: the newest runs of the chat, if any, else of every chat.
    framing = [name for name in conditions if name in _FRAMING]
    start = sql.search_start(words, framing)
    found = conn.execute(start, {**params, "offset": WINDOW - 1}).fetchone()
    queries: list[str] = list(found[:words])
    if not all(queries):
        return []  # a word in which the parser finds no word matches nothing
    # Every word must be in the run; a word the parser cuts into several (a phrase,
    # 'a' <-> 'b') must also be a phrase of one of its texts.
    params["q"] = " & ".join(f"({_PHRASE.sub('&', query)})" for query in queries)
    exact = [n for n, query in enumerate(queries) if _PHRASE.search(query)]
    params.update((f"exact_{n}", queries[n]) for n in exact)
    edge_started_at, edge_id, estimate = found[words:]
    if edge_started_at is None:  # the window holds every run there is
        return list(conn.execute(sql.search_walk(conditions, exact, False), params).fetchall())
    params["window_started_at"], params["window_id"] = edge_started_at, edge_id
    rows = list(conn.execute(sql.search_walk(conditions, exact, True), params).fetchall())
    if len(rows) >= limit:
        return rows
    if set(conditions) - _FRAMING:
        counted = conn.execute(sql.search_window_matches(framing, exact), params).fetchone()
        window_matches = int(counted[0]) if counted is not None else 0
    else:
        window_matches = len(rows)
    # The rest is older than the window.
    rest = [name for name in conditions if name != "after"] + ["after"]
    params["after_started_at"], params["after_id"] = edge_started_at, edge_id
    params["limit"] = limit - len(rows)
    expected = window_matches * max(float(estimate or 0), float(WINDOW)) / WINDOW
    if expected <= LOOKUP_LIMIT:
        query = sql.search_lookup(rest, exact)
    else:
        query = sql.search_walk(rest, exact, False)
    rows += conn.execute(query, params).fetchall()
    return rows
