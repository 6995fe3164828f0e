"""Fork safety: a forked child writes with the store object it inherited, on connections
of its own, and the parent's connections keep working."""

from __future__ import annotations

import gc
import json
import os
import uuid
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chatdebug.store import NewStep, RunUpdate, StepUpdate, Store, open_store
from tests.store.support import count, make_run, make_step

pytestmark = [
    pytest.mark.slow,  # forks
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    # The PostgreSQL pool runs threads; forking is exactly what is tested here.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]


def in_child(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``work`` in a forked child; return what it reported (or its error)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        report: dict[str, Any]
        try:
            report = work()
        except BaseException as exc:
            report = {"error": repr(exc)}
        finally:
            os.write(write_end, json.dumps(report).encode())
            os._exit(0)  # no finalizers, no pytest teardown in the child
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = json.loads(pipe.read() or "{}")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return report


def test_forked_child_writes_with_the_same_store(store: Store) -> None:
    run = make_run(store)
    make_step(store, run)  # connections are open and pooled at fork time

    def child() -> dict[str, Any]:
        step = store.create_step(NewStep(run_id=run.id, chat_id=run.chat_id, operation="c"))
        store.update_step(StepUpdate(id=step.id, chat_id=run.chat_id, status="completed"))
        with store.batch():
            other = make_run(store, chat_id="chat-child")
            make_step(store, other)
        return {
            "steps": [s.step_number for s in store.list_steps(run.id)],
            "other": str(other.id),
        }

    report = in_child(child)
    assert report["steps"] == [1, 2]
    # The parent's own connections were neither used nor closed by the child.
    make_step(store, run)
    assert [s.step_number for s in store.list_steps(run.id)] == [1, 2, 3]
    assert store.list_steps(uuid.UUID(report["other"]))[0].step_number == 1
    with store.batch():
        store.update_run(RunUpdate(id=run.id, chat_id=run.chat_id, status="completed"))
    finished = store.get_run(run.id)
    assert finished is not None and finished.status == "completed"


def test_fork_inside_a_batch_leaves_the_parent_batch_alone(store: Store, database_url: str) -> None:
    run = make_run(store)
    with store.batch():
        # The batch holds its connection (no write yet: SQLite takes no lock).
        assert store.get_run(run.id) is not None

        def child() -> dict[str, Any]:
            # Not part of the parent's batch: committed by the child at once, on its
            # own connections, from its main thread and from a new one.
            make_step(store, run, operation="child")
            with ThreadPoolExecutor(max_workers=1) as pool:
                pool.submit(make_step, store, run, operation="child").result()
            return {"committed": count(database_url, "chat_debug_steps")}

        report = in_child(child)
        assert report == {"committed": 2}
        make_step(store, run, operation="parent")
    # The parent's batch committed on its own connection after the child was gone.
    assert [s.operation for s in store.list_steps(run.id)] == ["child", "child", "parent"]


def test_a_closed_store_stays_closed_in_a_child(database_url: str) -> None:
    store = open_store(database_url)
    store.close()

    def child() -> dict[str, Any]:
        try:
            store.get_run(uuid.uuid4())
        except Exception as exc:
            return {"error_type": type(exc).__name__, "message": str(exc)}
        return {}

    report = in_child(child)
    assert report["error_type"] == "StoreError" and "closed" in report["message"]


def test_stores_can_be_garbage_collected(database_url: str) -> None:
    store = open_store(database_url)
    ref = weakref.ref(store)
    store.close()
    del store
    gc.collect()
    assert ref() is None
