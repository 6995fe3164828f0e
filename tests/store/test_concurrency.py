"""Many writers at once: step numbers stay unique and contiguous."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from chatdebug.store import Store
from tests.store.support import make_run, make_step

THREADS = 8
STEPS_PER_THREAD = 50


def test_concurrent_auto_numbered_steps_are_unique_and_contiguous(store: Store) -> None:
    run = make_run(store)
    start = threading.Barrier(THREADS)

    def writer(_: int) -> list[int]:
        start.wait()
        return [make_step(store, run).step_number for _ in range(STEPS_PER_THREAD)]

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(writer, range(THREADS)))

    numbers = sorted(n for per_thread in results for n in per_thread)
    assert numbers == list(range(1, THREADS * STEPS_PER_THREAD + 1))
    stored = [s.step_number for s in store.list_steps(run.id)]
    assert stored == numbers
    for per_thread in results:
        assert per_thread == sorted(per_thread)  # each writer sees its numbers grow


def test_concurrent_writers_on_separate_runs(store: Store) -> None:
    runs = [make_run(store, chat_id=f"chat-{i}") for i in range(THREADS)]

    def writer(i: int) -> None:
        for _ in range(10):
            make_step(store, runs[i])

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(writer, range(THREADS)))
    for run in runs:
        assert [s.step_number for s in store.list_steps(run.id)] == list(range(1, 11))
