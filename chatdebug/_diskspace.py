"""Whether local files can be written: the file system of a path read-only or (nearly)
full. ``chatdebug serve`` reports it on ``/readyz`` for the SQLite store's file and the
spill journal, which the application writes from another process."""

from __future__ import annotations

import os
from typing import Final

__all__ = ["MIN_FREE_BYTES", "read_only", "storage_problem"]

MIN_FREE_BYTES: Final = 256 * 1024
"""Below this much free space a file system counts as full: SQLite needs whole pages,
and its write-ahead log grows before a checkpoint gives space back."""


def _directory(path: str) -> str:
    return path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))


def read_only(path: str) -> bool:
    """Whether files at ``path`` are on a file system mounted read-only."""
    try:
        return bool(os.statvfs(_directory(path)).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def storage_problem(path: str, what: str) -> str | None:
    """One line saying why files at ``path`` (named ``what``) cannot be written now, or
    ``None``. A path whose directory does not exist says nothing: it is not there yet."""
    try:
        stat = os.statvfs(_directory(path))
    except OSError:
        return None
    if stat.f_flag & os.ST_RDONLY:
        return f"{what} {path} is on a read-only file system"
    free = stat.f_bavail * stat.f_frsize
    if free < MIN_FREE_BYTES:
        return f"{what} {path} is on a full file system ({free} bytes free)"
    return None
