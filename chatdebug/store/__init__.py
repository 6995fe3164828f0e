"""Persistence of debug runs and steps: SQLite (embedded default) and PostgreSQL."""

from ._base import (
    CLEAR,
    FinalizeResult,
    NewRun,
    NewStep,
    PurgeResult,
    Run,
    RunUpdate,
    Step,
    StepUpdate,
    Store,
)
from ._errors import RunFinalized, RunNotFound, StoreConfigError, StoreError, StoreUnavailable

__all__ = [
    "CLEAR",
    "FinalizeResult",
    "NewRun",
    "NewStep",
    "PurgeResult",
    "Run",
    "RunFinalized",
    "RunNotFound",
    "RunUpdate",
    "Step",
    "StepUpdate",
    "Store",
    "StoreConfigError",
    "StoreError",
    "StoreUnavailable",
]
