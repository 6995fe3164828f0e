"""Persistence of debug runs and steps: SQLite (embedded default) and PostgreSQL.

Open one with :func:`open_store`; every backend implements the :class:`Store` contract
with identical behaviour, and the bulk write path (:class:`BulkWriter`, found with
:func:`bulk_writer`).
"""

from ._changes import ChangeEvent, ChangeFeed, open_change_feed
from ._codec import EncodedJSON, encode_json
from ._contract import (
    DEFAULT_LIST_LIMIT,
    DEFAULT_RETENTION_DAYS,
    MAX_RETENTION_DAYS,
    PURGE_BATCH_SIZE,
    BulkWriter,
    Store,
    bulk_writer,
)
from ._database_url import database_location, mask_password
from ._errors import RunFinalized, RunNotFound, StoreConfigError, StoreError, StoreUnavailable
from ._open import open_store
from ._postgres import PostgresStore
from ._search import MAX_SEARCH_TERMS, search_terms
from ._sqlite import SQLiteStore
from ._values import (
    CLEAR,
    BulkWrites,
    ChatTotals,
    Clear,
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
)

__all__ = [
    "CLEAR",
    "DEFAULT_LIST_LIMIT",
    "DEFAULT_RETENTION_DAYS",
    "MAX_RETENTION_DAYS",
    "MAX_SEARCH_TERMS",
    "PURGE_BATCH_SIZE",
    "BulkWriter",
    "BulkWrites",
    "ChangeEvent",
    "ChangeFeed",
    "ChatTotals",
    "Clear",
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
    "bulk_writer",
    "database_location",
    "encode_json",
    "mask_password",
    "open_change_feed",
    "open_store",
    "search_terms",
]
