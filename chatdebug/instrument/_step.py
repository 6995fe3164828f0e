"""``chatdebug.step()``: group model calls explicitly (retries become attempts)."""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from .._safety import suppress_internal_errors
from .._status import Operation
from ._context import current_run, step_var
from ._outcome import status_for_exception
from ._scope import ScopeFactory
from ._state import StepState

__all__ = ["StepHandle", "step"]


class StepHandle:
    """A step of a recording run; ``None`` fields when nothing records."""

    __slots__ = ("_state",)

    def __init__(self, state: StepState | None) -> None:
        self._state = state

    @property
    def id(self) -> Any:
        return self._state.id if self._state is not None else None

    @property
    def number(self) -> int | None:
        return self._state.number if self._state is not None else None

    @property
    def recording(self) -> bool:
        return self._state is not None

    def set_assistant_message_id(self, message_id: int) -> None:
        """The id of the chat message persisted from this step's answer."""
        if self._state is not None:
            self._state.set_message_ids(message_id, None)

    def set_history_tip_message_id(self, message_id: int) -> None:
        """The id of the last message of the history sent to the model."""
        if self._state is not None:
            self._state.set_message_ids(None, message_id)


class _Step(ScopeFactory[StepHandle]):
    def __init__(self, operation: str | None) -> None:
        super().__init__()
        self._operation = operation

    def _open(self) -> tuple[StepHandle, Any]:
        with suppress_internal_errors("step"):
            run = current_run()
            if run is None or run.ended:
                return StepHandle(None), None
            state = run.start_step(
                operation=self._operation or Operation.GENERATE.value,
                explicit=True,
                parent=otel_context.get_current(),
            )
            if state is None:
                return StepHandle(None), None
            tokens = (
                step_var.set(state),
                otel_context.attach(trace.set_span_in_context(state.span)),
            )
            return StepHandle(state), (state, tokens)
        return StepHandle(None), None

    def _close(self, token: Any, exc: BaseException | None) -> None:
        if token is None:
            return
        state, (step_token, otel_token) = token
        with suppress_internal_errors("step"):
            try:
                otel_context.detach(otel_token)
                step_var.reset(step_token)
            except ValueError:
                pass
            if exc is None:
                state.end()
            else:
                state.end(exc, status_for_exception(exc))


def step(operation: str | None = None) -> _Step:
    """An explicit step inside the current run: every model call made in the block
    (SDK retries included) is an attempt of this one step.

    ``operation`` is ``"stream"`` or ``"generate"`` (default ``"generate"``). Works as
    ``with``/``async with`` and as a decorator; outside a recording run it does nothing.
    """
    return _Step(operation)
