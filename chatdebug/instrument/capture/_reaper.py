"""Runs clean-up work handed over by garbage-collection finalizers, the preparation of
attempts whose request is on the network, and the end of attempts whose body was read to
its end (off the caller's thread).

A finalizer can fire on any thread at any allocation, possibly while that thread holds
one of our locks; doing the clean-up right there could deadlock. Finalizers therefore
only enqueue (``SimpleQueue.put`` is reentrant) and a daemon thread does the work. Jobs
run one at a time, in order; the queue is drained at interpreter exit.

A job (parsing a stream, normalizing, ending a step) can take a millisecond of Python
work while the application wants the interpreter lock back: the thread paces itself
(:mod:`chatdebug._pacing`), so the pause points along a job hand the lock and the CPU
to a waiting caller every :data:`STRETCH_SECONDS`.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Final

from ..._lifecycle import ExitStage, at_exit
from ..._pacing import pace_this_thread
from ..._safety import suppress_internal_errors

__all__ = ["STRETCH_SECONDS", "defer", "defer_urgent", "drain", "ensure_started"]

STRETCH_SECONDS: Final = 0.0002
"""Longest stretch of a job's Python work between two pause points' pauses."""

_queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
# Jobs a caller is about to wait for (preparing an attempt whose request is on the
# network): run before the queued ones, and at the pause points of a job under way.
_urgent: deque[Callable[[], None]] = deque()
_in_urgent = False
_thread: threading.Thread | None = None
_pid = 0
_start_lock = threading.Lock()


def _nothing() -> None:
    """Wakes the worker for urgent jobs."""


def _run_urgent() -> None:
    global _in_urgent
    if _in_urgent or not _urgent:
        return
    _in_urgent = True  # only ever touched on the reaper thread
    try:
        while True:
            try:
                job = _urgent.popleft()
            except IndexError:
                return
            with suppress_internal_errors("finalizer"):
                job()
    finally:
        _in_urgent = False


def _work() -> None:
    pacer = pace_this_thread(STRETCH_SECONDS, interject=_run_urgent)
    while True:
        job = _queue.get()
        pacer.restart()  # the thread was waiting for work, not running
        _run_urgent()
        with suppress_internal_errors("finalizer"):
            job()


def ensure_started() -> None:
    """Start the worker (in this process) if needed. Called from ordinary code paths,
    never from a finalizer, where starting a thread is not safe."""
    global _thread, _pid, _queue
    if _thread is not None and _pid == os.getpid():
        return
    with _start_lock:
        if _thread is None or _pid != os.getpid():
            if _thread is not None:
                # A forked child: the jobs queued in the parent are the parent's (its
                # steps and runs), never to be finished a second time here.
                _queue = queue.SimpleQueue()
                _urgent.clear()
            _pid = os.getpid()
            first = _thread is None
            _thread = threading.Thread(target=_work, name="chatdebug-reaper", daemon=True)
            _thread.start()
            if first:
                # Before the writers' exit flush: these jobs produce steps' last events.
                at_exit(ExitStage.FINISH_ATTEMPTS, lambda: drain(2.0))


def defer(job: Callable[[], None]) -> None:
    """Run ``job`` soon on the reaper thread. Safe to call from a finalizer."""
    _queue.put(job)


def defer_urgent(job: Callable[[], None]) -> None:
    """Run ``job`` on the reaper thread before the jobs already queued, at the next
    pause point of the one under way. ``job`` must not depend on any of them."""
    _urgent.append(job)
    _queue.put(_nothing)


def drain(timeout: float = 5.0) -> bool:
    """Wait until the jobs queued so far have run (tests, flush, end of a run). True when
    done; immediately True on the reaper thread itself, whose own job is the one running."""
    if threading.current_thread() is _thread:
        return True
    ensure_started()
    done = threading.Event()
    defer(done.set)
    return done.wait(timeout)
