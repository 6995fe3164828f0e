"""The bulk write path: many creates, updates and heartbeats in a few statements.

A writer that already groups its work into :meth:`Store.batch` blocks can hand the
plain writes of a block to :meth:`write_bulk` of a store class that has one. The
writes go in with one ``executemany`` per kind, without reading any row back, and
with exactly the SQL guards of the single operations (run exists, same chat, not
finalized; terminal status never downgraded; ``finished_at`` written once; ``None``
keeps the stored value). The path is all or nothing: when any write would not apply
cleanly (a row that already exists, a missing or finished run, a taken step number),
everything it did is rolled back and it returns ``False``, so that the caller can
apply the same writes one by one through the ordinary operations, which know how to
classify each case.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ._base import NewRun, NewStep, RunUpdate, Step, StepUpdate
from ._params import new_run_params, new_step_params, run_update_params, step_update_params

__all__ = ["BulkWriter", "BulkWrites", "bulk_parameters", "bulk_writer"]


@dataclass(slots=True)
class BulkWrites:
    """Writes applied by :meth:`BulkWriter.write_bulk`, in this order: runs created,
    steps created, steps updated, heartbeats of steps and runs, then runs updated."""

    new_runs: list[NewRun] = field(default_factory=list)
    new_steps: list[NewStep] = field(default_factory=list)
    step_updates: list[StepUpdate] = field(default_factory=list)
    step_touches: list[tuple[uuid.UUID, uuid.UUID, str]] = field(default_factory=list)
    """``(step_id, run_id, chat_id)``"""
    run_touches: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    """``(run_id, chat_id)``"""
    run_updates: list[RunUpdate] = field(default_factory=list)

    def __len__(self) -> int:
        return (
            len(self.new_runs)
            + len(self.new_steps)
            + len(self.step_updates)
            + len(self.step_touches)
            + len(self.run_touches)
            + len(self.run_updates)
        )


class BulkWriter(Protocol):
    """A store class with the bulk path."""

    def write_bulk(self, writes: BulkWrites, pace: Callable[[], None] | None = None) -> bool:
        """Apply ``writes`` inside the current :meth:`~chatdebug.store.Store.batch`
        (a transaction of its own outside one). ``True`` when every run and step was
        created new and every update found its row; otherwise nothing of ``writes`` is
        left written and the result is ``False``. ``StoreUnavailable`` propagates as
        from any operation. ``pace`` is called between the rows while their
        parameters are built (the caller may pause there to let other threads run)."""
        ...


    def steps_of_runs(self, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Step]]:
        """The steps of each run (as ``list_steps(run_id, payloads=False)``), in one
        query; runs without steps are absent."""
        ...


def bulk_writer(store: object) -> BulkWriter | None:
    """``store`` when its class has the bulk path, else ``None``. Only the class
    counts: a wrapper that forwards unknown attributes to a store (``__getattr__``)
    keeps its own operations in use."""
    if callable(getattr(type(store), "write_bulk", None)):
        return store  # type: ignore[return-value]
    return None


@dataclass(slots=True)
class BulkParameters:
    """Named SQL parameters of each statement of a bulk write."""

    runs: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    updates: list[dict[str, Any]]
    step_touches: list[dict[str, Any]]
    run_touches: list[dict[str, Any]]
    run_updates: list[dict[str, Any]]


def bulk_parameters(
    writes: BulkWrites,
    now: datetime,
    convert: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    pace: Callable[[], None] | None = None,
) -> BulkParameters:
    """The parameters of every statement, built as the single operations build them
    (``convert`` maps them to a backend's stored forms; ``pace`` is called per row)."""

    def build(values: dict[str, Any]) -> dict[str, Any]:
        if pace is not None:
            pace()
        return values if convert is None else convert(values)

    return BulkParameters(
        runs=[build(new_run_params(p, now)) for p in writes.new_runs],
        steps=[build(new_step_params(p, now)) for p in writes.new_steps],
        updates=[build(step_update_params(p, now)) for p in writes.step_updates],
        step_touches=[
            build({"step_id": s, "run_id": r, "chat_id": c, "now": now})
            for s, r, c in writes.step_touches
        ],
        run_touches=[
            build({"run_id": r, "chat_id": c, "now": now}) for r, c in writes.run_touches
        ],
        run_updates=[build(run_update_params(p, now)) for p in writes.run_updates],
    )
