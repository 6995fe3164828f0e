"""Stale finalization: abandoned in-progress runs and steps become ``interrupted``."""

from __future__ import annotations

from datetime import timedelta

from chatdebug.store import FinalizeResult, RunUpdate, StepUpdate, Store
from tests.store.support import T0, FakeClock, make_run, make_step

STALE = timedelta(minutes=5)


def test_finalize_stale_interrupts_runs_and_their_open_steps(
    store: Store, clock: FakeClock
) -> None:
    clock.set(T0 - timedelta(minutes=10))
    stale = make_run(store)
    open_step = make_step(store, stale)
    done_step = make_step(store, stale)
    store.update_step(StepUpdate(id=done_step.id, chat_id=stale.chat_id, status="completed"))
    clock.set(T0 - timedelta(minutes=1))
    # This step is recent, but its run is finalized, so the step goes with it.
    fresh_step_of_stale_run = make_step(store, stale)
    clock.set(T0 - timedelta(minutes=10))
    store.update_run(RunUpdate(id=stale.id, chat_id=stale.chat_id))  # run stale again

    finished = make_run(store, status="completed")
    clock.set(T0 - timedelta(minutes=1))
    alive = make_run(store)
    alive_step = make_step(store, alive)

    now = clock.set(T0)
    result = store.finalize_stale(updated_before=now - STALE)

    assert result == FinalizeResult(runs_finalized=1, steps_finalized=2)
    run = store.get_run(stale.id)
    assert run is not None
    assert (run.status, run.finished_at, run.updated_at) == ("interrupted", now, now)
    steps = {s.id: s for s in store.list_steps(stale.id)}
    for step_id in (open_step.id, fresh_step_of_stale_run.id):
        assert steps[step_id].status == "interrupted"
        assert steps[step_id].finished_at == now and steps[step_id].updated_at == now
    assert steps[done_step.id].status == "completed"
    assert steps[done_step.id].finished_at == T0 - timedelta(minutes=10)
    assert store.get_run(finished.id) == finished
    assert store.get_run(alive.id) == alive
    assert store.list_steps(alive.id) == [alive_step]

    assert store.finalize_stale(updated_before=now - STALE) == FinalizeResult(0, 0)


def test_finalize_stale_interrupts_a_stale_step_of_a_live_run(
    store: Store, clock: FakeClock
) -> None:
    clock.set(T0 - timedelta(minutes=10))
    run = make_run(store)
    step = make_step(store, run)
    clock.set(T0 - timedelta(minutes=1))
    store.touch_run(run.id, run.chat_id)  # run heartbeat only

    result = store.finalize_stale(updated_before=clock.set(T0) - STALE)

    assert result == FinalizeResult(runs_finalized=0, steps_finalized=1)
    live = store.get_run(run.id)
    assert live is not None and live.status == "in_progress" and live.finished_at is None
    (finalized,) = store.list_steps(step.run_id)
    assert (finalized.status, finalized.finished_at) == ("interrupted", T0)


def test_finalize_stale_honours_the_cutoff(store: Store, clock: FakeClock) -> None:
    cutoff = T0 - timedelta(minutes=2)
    clock.set(cutoff)
    at_cutoff = make_run(store)
    clock.set(cutoff - timedelta(microseconds=1))
    just_before = make_run(store)
    clock.set(T0)

    # A shorter threshold (2 minutes instead of the default 5) catches more rows.
    assert store.finalize_stale(updated_before=T0 - STALE) == FinalizeResult(0, 0)
    assert store.finalize_stale(updated_before=cutoff) == FinalizeResult(1, 0)

    finalized = store.get_run(just_before.id)
    untouched = store.get_run(at_cutoff.id)
    assert finalized is not None and finalized.status == "interrupted"
    assert untouched is not None and untouched.status == "in_progress"


def test_a_late_completion_upgrades_an_interrupted_run(store: Store, clock: FakeClock) -> None:
    clock.set(T0 - timedelta(minutes=10))
    run = make_run(store)
    clock.set(T0)
    store.finalize_stale(updated_before=T0 - STALE)
    clock.advance(seconds=1)
    late = store.update_run(RunUpdate(id=run.id, chat_id=run.chat_id, status="completed"))
    assert late.status == "completed"
    assert late.finished_at == T0  # write-once: the finalizer's time stays
