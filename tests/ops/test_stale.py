"""The stale finalizer tick on both backends: abandoned runs and steps become
``interrupted``, both record types are counted, live rows are left alone."""

from __future__ import annotations

from datetime import timedelta

from chatdebug.metrics import Metrics
from chatdebug.ops import StaleFinalizer
from chatdebug.store import Store, open_store
from tests.ops.support import NOW, sample
from tests.store.support import FakeClock, make_run, make_step


def finalized(metrics: Metrics, record_type: str) -> float:
    return sample(metrics, "chatdebug_stale_rows_finalized_total", record_type=record_type)


def test_abandoned_rows_are_interrupted_and_counted(
    store: Store, clock: FakeClock, metrics: Metrics
) -> None:
    assert finalized(metrics, "chat_debug_runs") == 0  # exposed before the first tick
    clock.set(NOW - timedelta(minutes=10))
    abandoned = make_run(store, chat_id="abandoned")
    open_steps = [make_step(store, abandoned) for _ in range(2)]
    clock.set(NOW - timedelta(seconds=30))
    alive = make_run(store, chat_id="alive")
    make_step(store, alive)
    clock.set(NOW)

    # The finalizer reads the same clock as the store: NOW is fixed when the tests are
    # collected, and this test may run many minutes later.
    result = StaleFinalizer(store, metrics, threshold=timedelta(minutes=5), now=clock).tick()

    assert result is not None
    assert (result.runs_finalized, result.steps_finalized) == (1, 2)
    run = store.get_run(abandoned.id)
    assert run is not None and run.status == "interrupted" and run.finished_at is not None
    assert {s.status for s in store.list_steps(abandoned.id)} == {"interrupted"}
    assert len(open_steps) == 2
    still = store.get_run(alive.id)
    assert still is not None and still.status == "in_progress"
    assert finalized(metrics, "chat_debug_runs") == 1
    assert finalized(metrics, "chat_debug_steps") == 2
    # Nothing left: a second finalizer (another replica) finds nothing.
    again = StaleFinalizer(store, metrics, threshold=timedelta(minutes=5), now=clock).tick()
    assert again is not None and again.runs_finalized == again.steps_finalized == 0


def test_a_failed_tick_returns_none_and_reports_the_store(
    sqlite_url: str, metrics: Metrics
) -> None:
    store = open_store(sqlite_url)
    store.close()
    reasons: list[str | None] = []
    assert StaleFinalizer(store, metrics, on_store_status=reasons.append).tick() is None
    assert finalized(metrics, "chat_debug_runs") == 0
