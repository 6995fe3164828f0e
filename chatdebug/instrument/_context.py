"""The current run and step, kept in our own context variables.

OpenTelemetry's current span is not enough to find them: SDKs (anthropic) open spans of
their own in between, and those must never be mistaken for steps. Context variables
follow threads and asyncio tasks, so concurrent runs never mix. A thread pool does not
inherit them by itself: submit ``contextvars.copy_context().run`` (or use
``chatdebug.bind_context``); ``asyncio.to_thread`` copies the context already.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._state import RunState, StepState

__all__ = ["current_run", "current_step", "retry_candidate", "set_retry_candidate"]

_run: ContextVar[RunState | None] = ContextVar("chatdebug_run", default=None)
_step: ContextVar[StepState | None] = ContextVar("chatdebug_step", default=None)
# The automatic step of the last SDK call made in this context: an SDK retries from the
# same context, so a request carrying a retry count joins this step.
_retry: ContextVar[StepState | None] = ContextVar("chatdebug_retry_candidate", default=None)

run_var = _run
step_var = _step
retry_var = _retry


def current_run() -> RunState | None:
    return _run.get()


def current_step() -> StepState | None:
    return _step.get()


def retry_candidate() -> StepState | None:
    return _retry.get()


def set_retry_candidate(step: StepState | None) -> None:
    _retry.set(step)
