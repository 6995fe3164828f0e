"""The cross-chat run listing shared by both backends: which filter conditions apply
and their parameter values. Each backend joins the conditions it names (its own SQL
fragments, parameterized) into one statement."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from ._codec import utc
from ._values import RunFilter, RunPosition

__all__ = ["RECENT_RUN_CONDITIONS", "recent_runs_parameters"]

RECENT_RUN_CONDITIONS: Final = ("status", "kind", "user_id", "model", "since", "until", "after")
"""Every condition name a backend must provide a SQL fragment for."""


def recent_runs_parameters(
    filters: RunFilter | None,
    after: RunPosition | None,
    limit: int,
    to_param: Callable[[Any], Any] = lambda value: value,
) -> tuple[list[str], dict[str, Any]]:
    """The names of the conditions that apply (in :data:`RECENT_RUN_CONDITIONS` order)
    and the named parameter values; ``to_param`` maps UUIDs and datetimes to the form the
    driver stores."""
    f = filters or RunFilter()
    values: dict[str, Any] = {"limit": limit}
    names: list[str] = []
    for name in ("status", "kind", "user_id", "model"):
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
    return names, values
