"""Status, run kind and step operation values shared by every layer.

The values and the priority order are fixed: they are stored in the database, shown by
the CLI and compared by the exporter, so they must never change meaning.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "TERMINAL_STATUSES",
    "Operation",
    "RunKind",
    "Status",
    "may_replace",
    "status_priority",
]


class Status(StrEnum):
    """Lifecycle status of a run or a step."""

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    ERROR = "error"
    INTERRUPTED = "interrupted"

    @property
    def priority(self) -> int:
        """Rank used to decide whether a later status may overwrite an earlier one."""
        return _PRIORITY[self]

    @property
    def is_terminal(self) -> bool:
        """Every status except ``in_progress`` ends the run or step."""
        return self is not Status.IN_PROGRESS


_PRIORITY = {
    Status.IN_PROGRESS: 0,
    Status.INTERRUPTED: 1,
    Status.ERROR: 2,
    Status.COMPLETED: 3,
}

TERMINAL_STATUSES = (Status.COMPLETED, Status.ERROR, Status.INTERRUPTED)


def status_priority(value: str | None) -> int:
    """Priority of a status string; unknown strings rank like ``in_progress`` (0)."""
    if value is None:
        return 0
    try:
        return _PRIORITY[Status(value)]
    except ValueError:
        return 0


def may_replace(current: str | None, new: str) -> bool:
    """Whether ``new`` may overwrite ``current``.

    A terminal status is never replaced by one of lower priority (equal is allowed), so a
    stream that completed cannot be downgraded to ``interrupted`` by a late cancellation.
    """
    if current is None or status_priority(current) == 0:
        return True
    return status_priority(new) >= status_priority(current)


class RunKind(StrEnum):
    """What a run was for."""

    CHAT_TURN = "chat_turn"
    TITLE_GENERATION = "title_generation"
    QUICKGEN = "quickgen"
    COMPACTION = "compaction"


class Operation(StrEnum):
    """How a step called the model."""

    STREAM = "stream"
    GENERATE = "generate"
