"""Text search on PostgreSQL: the runs' words (``chat_debug_run_search``, migration
``0006_search_runs``) checked newest run first while that is cheap, looked up in their
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

from typing import Any, Final

from . import _postgres_sql as sql

__all__ = ["LOOKUP_LIMIT", "WINDOW", "search_rows"]

WINDOW: Final = 1000
"""Newest runs a search checks one by one before choosing how to go on."""
LOOKUP_LIMIT: Final = 5000
"""Expected matches up to which the rest of a search is looked up in the words' index."""
_FRAMING: Final = frozenset({"chat_id", "since", "until", "after"})
"""The conditions that frame the window (read through an index, never checked run by
run)."""


def search_rows(conn: Any, names: list[str], values: dict[str, Any]) -> list[Any]:
    """The rows of the listing with a search (``text:N`` among ``names``)."""
    terms = [values[name.replace(":", "_")] for name in names if name.startswith("text:")]
    conditions = [name for name in names if not name.startswith("text:")]
    params = {**values, "q": sql.search_query(terms)}
    limit: int = values["limit"]
    # The window: the newest runs of the chat, if any, else of every chat.
    framing = [name for name in conditions if name in _FRAMING]
    edge = conn.execute(sql.search_window(framing), {**params, "offset": WINDOW - 1}).fetchone()
    if edge is None:  # the window holds every run there is
        return list(conn.execute(sql.search_walk(conditions, False), params).fetchall())
    params["window_started_at"], params["window_id"], estimate = edge
    rows = list(conn.execute(sql.search_walk(conditions, True), params).fetchall())
    if len(rows) >= limit:
        return rows
    if set(conditions) - _FRAMING:
        found = conn.execute(sql.search_window_matches(framing), params).fetchone()
        window_matches = int(found[0]) if found is not None else 0
    else:
        window_matches = len(rows)
    # The rest is older than the window.
    rest = [name for name in conditions if name != "after"] + ["after"]
    params["after_started_at"], params["after_id"] = edge[0], edge[1]
    params["limit"] = limit - len(rows)
    expected = window_matches * max(float(estimate or 0), float(WINDOW)) / WINDOW
    query = sql.search_lookup(rest) if expected <= LOOKUP_LIMIT else sql.search_walk(rest, False)
    rows += conn.execute(query, params).fetchall()
    return rows
