"""Persistence of debug runs and steps: SQLite (embedded default) and PostgreSQL.

Open one with :func:`open_store`; every backend implements the :class:`Store` contract
with identical behaviour.
"""

from ._base import (
    CLEAR,
    DEFAULT_LIST_LIMIT,
    DEFAULT_RETENTION_DAYS,
    MAX_RETENTION_DAYS,
    PURGE_BATCH_SIZE,
    FinalizeResult,
    NewRun,
    NewStep,
    PurgeResult,
    Run,
    RunFilter,
    RunPosition,
    RunUpdate,
    Step,
    StepUpdate,
    Store,
)
from ._codec import EncodedJSON, encode_json
from ._errors import RunFinalized, RunNotFound, StoreConfigError, StoreError, StoreUnavailable
from ._open import open_store
from ._postgres import PostgresStore
from ._sqlite import SQLiteStore
from ._url import database_location, mask_password

__all__ = [
    "CLEAR",
    "DEFAULT_LIST_LIMIT",
    "DEFAULT_RETENTION_DAYS",
    "MAX_RETENTION_DAYS",
    "PURGE_BATCH_SIZE",
    "EncodedJSON",
    "FinalizeResult",
    "NewRun",
    "NewStep",
    "PostgresStore",
    "PurgeResult",
    "Run",
    "RunFilter",
    "RunFinalized",
    "RunNotFound",
    "RunPosition",
    "RunUpdate",
    "SQLiteStore",
    "Step",
    "StepUpdate",
    "Store",
    "StoreConfigError",
    "StoreError",
    "StoreUnavailable",
    "database_location",
    "encode_json",
    "mask_password",
    "open_store",
]
