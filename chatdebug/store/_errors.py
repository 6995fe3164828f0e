"""Errors raised by stores. Messages never contain a password."""

from __future__ import annotations

__all__ = [
    "RunFinalized",
    "RunNotFound",
    "StoreConfigError",
    "StoreError",
    "StoreUnavailable",
]


class StoreError(Exception):
    """Base class of every store error."""


class StoreConfigError(StoreError, ValueError):
    """The database URL or a store option is invalid (not worth retrying)."""


class StoreUnavailable(StoreError):
    """The database cannot be reached right now (worth retrying with backoff)."""


class RunNotFound(StoreError):
    """The parent run does not exist, or belongs to another chat."""

    def __init__(self, message: str = "parent run not found") -> None:
        super().__init__(message)


class RunFinalized(StoreError):
    """The parent run already has ``finished_at`` set; no step can be added to it."""

    def __init__(self, message: str = "parent run is already finalized") -> None:
        super().__init__(message)
