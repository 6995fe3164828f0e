"""Pause points: a no-op on the application's threads, a pause on a paced thread once
its stretch is up, and the reaper thread paces its jobs."""

from __future__ import annotations

import threading
import time

import pytest

from chatdebug import _pacing
from chatdebug._pacing import Pacer, pace_this_thread, pause_point
from chatdebug.instrument.capture import _reaper


def test_a_pause_point_does_nothing_on_a_thread_that_does_not_pace_itself() -> None:
    seen: list[object] = []

    def run() -> None:
        pause_point()
        seen.append(getattr(_pacing._local, "pacer", None))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [None]


def test_a_paced_thread_pauses_once_its_stretch_is_up() -> None:
    pauses: list[int] = []

    def run() -> None:
        pacer = pace_this_thread(0.001)
        pause_point()  # the stretch has just begun
        first = pacer.pauses
        time.sleep(0.002)
        pause_point()
        pauses.extend([first, pacer.pauses])

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert pauses == [0, 1]


def test_pacer_restart_starts_a_new_stretch() -> None:
    pacer = Pacer(0.001)
    time.sleep(0.002)
    pacer.restart()
    pacer.tick()
    assert pacer.pauses == 0
    time.sleep(0.002)
    pacer.tick()
    assert pacer.pauses == 1


def test_reaper_jobs_run_on_a_paced_thread() -> None:
    _reaper.ensure_started()
    found: list[Pacer | None] = []
    _reaper.defer(lambda: found.append(getattr(_pacing._local, "pacer", None)))
    assert _reaper.drain(5.0)
    assert found and isinstance(found[0], Pacer)
    pacer = found[0]
    before = pacer.pauses

    def long_job() -> None:
        deadline = time.perf_counter() + 0.01
        while time.perf_counter() < deadline:
            pause_point()

    _reaper.defer(long_job)
    assert _reaper.drain(5.0)
    assert pacer.pauses > before


@pytest.mark.slow
def test_a_pacer_in_a_hurry_does_not_pause() -> None:
    behind = [True]
    pacer = Pacer(0.001, hurry=lambda: behind[0])
    time.sleep(0.002)
    pacer.tick()
    assert pacer.pauses == 0  # behind: no pause, and a new stretch starts
    pacer.tick()
    assert pacer.pauses == 0
    behind[0] = False
    time.sleep(0.002)
    pacer.tick()
    assert pacer.pauses == 1
