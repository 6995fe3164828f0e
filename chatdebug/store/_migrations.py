"""The versioned schema migrations shipped in ``chatdebug/store/migrations/<dialect>/``.

A migration is a file ``NNNN_name.sql``; its version is ``NNNN``. Both dialects have the
same versions with the same meaning, side by side. Applied versions are recorded in
``chat_debug_schema_migrations``; each backend applies the missing ones in order inside
one transaction that excludes other migrating processes.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Final, Literal

__all__ = ["MIGRATIONS_TABLE", "Migration", "migrations", "split_sqlite_script"]

MIGRATIONS_TABLE: Final = "chat_debug_schema_migrations"

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version of one dialect."""

    version: int
    name: str
    sql: str


@cache
def migrations(dialect: Literal["sqlite", "postgres"]) -> tuple[Migration, ...]:
    """Every migration of ``dialect``, in version order."""
    folder = resources.files("chatdebug.store").joinpath("migrations", dialect)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        # A packaging mistake, not a runtime condition: fail loudly.
        raise RuntimeError(f"chatdebug: {dialect} migrations are not contiguous: {versions}")
    return tuple(found)


def split_sqlite_script(script: str) -> list[str]:
    """Split a script into statements, so they can run inside our own transaction
    (``sqlite3.Connection.executescript`` would commit it first)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            if _has_code(statement):
                statements.append(statement)
            buffer = ""
    if _has_code(buffer):
        raise ValueError(f"incomplete SQL statement at the end of a migration: {buffer!r}")
    return statements


def _has_code(text: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in text.splitlines())
