"""The state of one thread's open batch on the PostgreSQL store (see
:meth:`~chatdebug.store._postgres_conn.PostgresConnections.batch`)."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager

import psycopg
from psycopg.rows import TupleRow

from ._errors import StoreUnavailable

__all__ = ["Batch"]


class Batch:
    """The state of one thread's open batch.

    Its connection is in pipeline mode: commands are sent without waiting for their
    results, which arrive when a statement's rows are fetched. Every operation
    therefore costs one round trip, its savepoint included. ``failed`` is the error
    that made the batch unusable (its transaction is then rolled back at the end).
    """

    __slots__ = ("_pipeline_cm", "conn", "failed", "pid", "pipeline", "savepoint")

    def __init__(self, conn: psycopg.Connection[TupleRow]) -> None:
        self.conn = conn
        self.failed: StoreUnavailable | None = None
        self.pid = os.getpid()
        self.savepoint = False  # whether the savepoint of an operation is open
        self._pipeline_cm: AbstractContextManager[psycopg.Pipeline] | None = None
        self.pipeline: psycopg.Pipeline | None = None

    def enter_pipeline(self) -> None:
        self._pipeline_cm = self.conn.pipeline()
        self.pipeline = self._pipeline_cm.__enter__()

    def exit_pipeline(self, exc: BaseException | None = None) -> None:
        """Leave pipeline mode, collecting every result (raising the first error,
        unless ``exc`` is already on its way)."""
        cm, self._pipeline_cm, self.pipeline = self._pipeline_cm, None, None
        if cm is not None:
            if exc is None:
                cm.__exit__(None, None, None)
            else:
                cm.__exit__(type(exc), exc, exc.__traceback__)

    def sync(self) -> None:
        """Wait for every command sent so far; raises the first error among them."""
        if self.pipeline is not None:
            self.pipeline.sync()
