"""The cross-chat run listing shared by both backends: which filter conditions apply
and their parameter values. Each backend joins the conditions it names (its own SQL
fragments, parameterized) into one statement."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from ._codec import utc
from ._search import search_terms
from ._values import RunFilter, RunPosition

__all__ = ["RECENT_RUN_CONDITIONS", "recent_runs_parameters"]

RECENT_RUN_CONDITIONS: Final = (
    "chat_id",
    "status",
    "kind",
    "user_id",
    "model",
    "since",
    "until",
    "after",
    "text",
)
"""Every condition name a backend must provide a SQL fragment for. ``text`` appears once
per search word, as ``text:N`` with the parameter ``text_N`` (the backend's own match
expression of the word, from ``match``; the word itself by default)."""


def recent_runs_parameters(
    filters: RunFilter | None,
    after: RunPosition | None,
    limit: int,
    to_param: Callable[[Any], Any] = lambda value: value,
    match: Callable[[str], str] = lambda term: term,
) -> tuple[list[str], dict[str, Any]]:
    """The names of the conditions that apply (in :data:`RECENT_RUN_CONDITIONS` order)
    and the named parameter values; ``to_param`` maps UUIDs and datetimes to the form the
    driver stores, ``match`` a search word to the backend's match expression.
    ``ValueError`` for a search without words or with too many."""
    f = filters or RunFilter()
    values: dict[str, Any] = {"limit": limit}
    names: list[str] = []
    for name in ("chat_id", "status", "kind", "user_id", "model"):
        value = getattr(f, name)
        if value is not None:
            names.append(name)
            values[name] = value
    for name in ("since", "until"):
        moment: datetime | None = getattr(f, name)
        if moment is not None:
            names.append(name)
            values[name] = to_param(utc(moment))
    if after is not None:
        if not isinstance(after.id, uuid.UUID):
            raise ValueError(f"a run position needs a UUID id, got {after.id!r}")
        names.append("after")
        values["after_started_at"] = to_param(utc(after.started_at))
        values["after_id"] = to_param(after.id)
    if f.text is not None:
        for index, term in enumerate(search_terms(f.text)):
            names.append(f"text:{index}")
            values[f"text_{index}"] = match(term)
    return names, values
