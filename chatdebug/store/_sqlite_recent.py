"""The cross-chat listing on SQLite: how the model filter reads the index the database
keeps (``0004_search``), and where a search goes (:mod:`._sqlite_search`)."""

from __future__ import annotations

import sqlite3
from typing import Any, Final

from . import _sqlite_sql as sql
from ._sqlite_search import search_rows
from ._values import RunPosition

__all__ = ["recent_rows"]

_MODEL_DRIVE_LIMIT: Final = 2000
"""Runs of a model above which the model filter is checked run by run."""


def recent_rows(
    conn: sqlite3.Connection, names: list[str], values: dict[str, Any], after: RunPosition | None
) -> list[Any]:
    """The listing's rows. A model with many runs is checked run by run while the runs
    are read newest first (which stops after one page); one with few is looked up
    first."""
    model_probe = False
    if "model" in names:
        params = {"model": values["model"], "cap": _MODEL_DRIVE_LIMIT + 1}
        model_probe = conn.execute(sql.COUNT_MODEL, params).fetchone()[0] > _MODEL_DRIVE_LIMIT
    if any(name.startswith("text:") for name in names):
        return search_rows(conn, names, values, after, model_probe)
    return conn.execute(sql.recent_runs(names, model_probe), values).fetchall()
