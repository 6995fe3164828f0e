"""Multi-row forms of the PostgreSQL bulk path's statements.

A statement executed once per row pays, per row, what PostgreSQL does once per
statement: the executor's start, and the statement-level triggers that publish change
events (:file:`migrations/postgres/0005_change_events.sql`), which run a query over
their transition table and send a notification each time. Writing a backlog of
thousands of events, that is most of the cost. Here each single-row statement of
:mod:`._postgres_sql` is turned into one that takes its rows from a set,
so one statement writes a whole part of a batch: the rows go as one JSON array
(``json_to_recordset``, which types each column: encoding a JSON document is one call
of a C encoder, where psycopg would adapt every value of every row in Python), the
row's parameters ``%(name)s`` become the columns ``v.p_name`` of that set, and the
statement reads ``v``. The text of each statement stays the one of
:mod:`._postgres_sql`: the rules (status never downgraded, ``COALESCE`` keeps, a step
only for a run still open) are written once.

Each statement reports how many rows it wrote, so the bulk path's check (every write
applied) is unchanged. Two rows of one ``UPDATE`` must not name the same row (only one
of them would apply): :func:`parts` never puts them in the same statement, and keeps
their order across statements.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any, Final

import orjson

from . import _postgres_sql as sql

__all__ = ["MULTI_INSERT_RUN", "MULTI_INSERT_STEP", "MULTI_UPDATE_RUN", "MULTI_UPDATE_STEP",
           "MultiRow", "parts"]  # fmt: skip

_PARAM: Final = re.compile(r"%\((\w+)\)s")

# The type of every parameter the bulk statements take.
_TYPES: Final = {
    "id": "uuid",
    "run_id": "uuid",
    "chat_id": "text",
    "user_id": "text",
    "root_chat_id": "text",
    "parent_chat_id": "text",
    "model_config_id": "text",
    "trigger_message_id": "bigint",
    "history_tip_message_id": "bigint",
    "assistant_message_id": "bigint",
    "kind": "text",
    "operation": "text",
    "status": "text",
    "status_priority": "int",
    "step_number": "int",
    "request_history_sent": "int",
    "floor": "int",
    "provider": "text",
    "model": "text",
    "summary": "jsonb",
    "normalized_request": "jsonb",
    "normalized_response": "jsonb",
    "usage": "jsonb",
    "attempts": "jsonb",
    "error": "jsonb",
    "metadata": "jsonb",
    "started_at": "timestamptz",
    "updated_at": "timestamptz",
    "finished_at": "timestamptz",
    "now": "timestamptz",
    "trace_id": "text",
    "span_id": "text",
}


def _replace_once(text: str, old: str, new: str) -> str:
    # The statements are ours: a shape this module does not expect is a bug, found at
    # import rather than as a wrong write.
    if text.count(old) != 1:
        raise RuntimeError(f"chatdebug: unexpected bulk statement shape near {old!r}")
    return text.replace(old, new)


class MultiRow:
    """One of the bulk path's statements for any number of rows."""

    def __init__(self, single: str, shape: Sequence[tuple[str, str]]) -> None:
        body = single.rsplit("RETURNING", 1)[0].strip()
        self.names: tuple[str, ...] = tuple(dict.fromkeys(_PARAM.findall(body)))
        body = _PARAM.sub(lambda m: f"v.p_{m[1]}", body)
        for old, new in shape:
            body = _replace_once(body, old, new)
        # JSON payloads travel as the JSON text they already are: the statement casts
        # them to jsonb, as the single-row one does.
        record = ", ".join(
            f"{name} {'text' if _TYPES[name] == 'jsonb' else _TYPES[name]}" for name in self.names
        )
        columns = ", ".join(f"x.{name} AS p_{name}" for name in self.names)
        head = f"WITH v AS (SELECT {columns} FROM json_to_recordset(%s::json) AS x({record}))"
        if body.startswith("WITH "):
            self.text = head + ",\n" + body.removeprefix("WITH ")
        else:
            self.text = head + "\n" + body

    @staticmethod
    def parameters(rows: Sequence[dict[str, Any]]) -> list[str]:
        """The statement's parameter for ``rows`` (each a dict of the single statement's
        named parameters): one JSON array of them, encoded in one call (``TypeError``
        for a value JSON cannot hold; the caller then writes the rows one by one)."""
        return [orjson.dumps(rows).decode()]


# INSERT ... VALUES (one row) → INSERT ... SELECT the rows of v.
_RUN_COLUMNS = sql.INSERT_RUN.split("VALUES (", 1)[1].split(")\nON CONFLICT", 1)[0]
MULTI_INSERT_RUN: Final = MultiRow(
    sql.INSERT_RUN,
    [
        (
            "VALUES (" + _PARAM.sub(lambda m: f"v.p_{m[1]}", _RUN_COLUMNS) + ")",
            "SELECT " + _PARAM.sub(lambda m: f"v.p_{m[1]}", _RUN_COLUMNS) + " FROM v",
        )
    ],
)
# The run of each row is locked (its updated_at set) once, whatever its number of rows.
MULTI_INSERT_STEP: Final = MultiRow(
    sql.INSERT_STEP,
    [
        ("SET updated_at = v.p_now\n    WHERE", "SET updated_at = v.p_now\n    FROM v WHERE"),
        (
            "FROM locked_run AS r",
            "FROM v JOIN locked_run AS r ON r.id = v.p_run_id AND r.chat_id = v.p_chat_id",
        ),
    ],
)
MULTI_UPDATE_STEP: Final = MultiRow(sql.UPDATE_STEP, [("\nWHERE id = ", "\nFROM v\nWHERE id = ")])
MULTI_UPDATE_RUN: Final = MultiRow(sql.UPDATE_RUN, [("\nWHERE id = ", "\nFROM v\nWHERE id = ")])


def parts(
    rows: Sequence[dict[str, Any]], size: int, key: str = "id"
) -> Iterator[list[dict[str, Any]]]:
    """``rows`` in order, in parts of at most ``size`` rows in which no two rows have
    the same ``key``."""
    part: list[dict[str, Any]] = []
    seen: set[Any] = set()
    for row in rows:
        if len(part) >= size or row[key] in seen:
            yield part
            part, seen = [], set()
        part.append(row)
        seen.add(row[key])
    if part:
        yield part
