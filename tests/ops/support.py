"""Support for the purge and stale finalizer tests: runs written at a chosen time, and
metric values read back from a registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chatdebug.metrics import Metrics
from chatdebug.store import Run, RunUpdate, Store
from tests.store.support import FakeClock, make_run, make_step

NOW = datetime.now(UTC)


def runs_aged(
    store: Store, clock: FakeClock, days: float, count: int, steps: int, finished: bool = False
) -> list[Run]:
    """``count`` runs of ``steps`` steps each, last updated ``days`` ago; in progress
    (abandoned) unless ``finished``."""
    at = clock.set(NOW - timedelta(days=days))
    made = []
    for i in range(count):
        run = make_run(store, chat_id=f"chat-{days}-{i}")
        for _ in range(steps):
            make_step(store, run, status="completed" if finished else "in_progress")
        if finished:
            update = RunUpdate(run.id, run.chat_id, status="completed", finished_at=at)
            run = store.update_run(update)
        made.append(run)
    clock.set(NOW)
    return made


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    assert value is not None, f"{name}{labels} is not exposed"
    return value


def removed(metrics: Metrics, record_type: str) -> float:
    return sample(metrics, "chatdebug_purge_records_removed_total", record_type=record_type)


def iterations(metrics: Metrics, success: str) -> float:
    return sample(metrics, "chatdebug_purge_iteration_duration_seconds_count", success=success)
