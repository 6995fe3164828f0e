"""Per-run state: step numbering, the steps still open, and ending the run span once."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, StatusCode

from .._status import Status, may_replace
from . import _attributes as attr
from ._errors import error_payload, status_for_exception
from ._records import RecordSink, SpanRecord, new_id, span_attributes, span_ids
from ._state import settings
from ._step_state import StepState

__all__ = ["RunState"]


class RunState:
    """Mutable state of one recording run; thread-safe."""

    def __init__(
        self,
        *,
        run_id: uuid.UUID,
        chat_id: str,
        user_id: str | None,
        span: Span,
        tracer: trace.Tracer,
        sink: RecordSink | None = None,
        values: dict[str, Any] | None = None,
        start_ns: int = 0,
    ) -> None:
        self.id = run_id
        self.chat_id = chat_id
        self.user_id = user_id
        self.span = span
        self.tracer = tracer
        self.sink = sink
        """Where this run's records go; None → the spans carry the payloads."""
        self.start_ns = start_ns
        self._values: dict[str, Any] = dict(values or {})
        self.ended = False
        self.last_step: StepState | None = None
        self._lock = threading.Lock()
        self._step_counter = 0
        self._open_steps: dict[uuid.UUID, StepState] = {}
        self._status: Status | None = None
        self._seed: dict[str, Any] = {}
        self._step_updates: dict[uuid.UUID, dict[str, Any]] = {}

    # -- steps --------------------------------------------------------------------------
    def start_step(
        self,
        *,
        operation: str,
        explicit: bool,
        parent: Context | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> StepState | None:
        """Open a new step span under this run (None when the run already ended)."""
        with self._lock:
            if self.ended:
                return None
            self._step_counter += 1
            number = self._step_counter
        step_id = new_id()
        values: dict[str, Any] = {
            attr.RUN_ID: str(self.id),
            attr.CHAT_ID: self.chat_id,
            attr.STEP_ID: str(step_id),
            attr.STEP_NUMBER: number,
            attr.STEP_OPERATION: operation,
            attr.STEP_EXPLICIT: explicit,
            attr.GEN_AI_CONVERSATION_ID: self.chat_id,
        }
        if attributes:
            values.update(attributes)
        context = parent if parent is not None else trace.set_span_in_context(self.span)
        sink = self.sink
        start_ns = time.time_ns()
        span = self.tracer.start_span(
            attr.STEP_SPAN,
            context=context,
            attributes=span_attributes(values, payloads=sink is None),
            start_time=start_ns,
        )
        step = StepState(
            self,
            span,
            step_id=step_id,
            number=number,
            operation=operation,
            explicit=explicit,
            values=values,
            start_ns=start_ns,
        )
        if sink is not None:
            trace_id, span_id = span_ids(span)
            sink.record_started(
                SpanRecord(attr.STEP_SPAN, dict(values), trace_id, span_id, start_ns, owner=step)
            )
        with self._lock:
            if self.ended:
                # The run ended while this step was being created: end it right away.
                late = True
            else:
                late = False
                self._open_steps[step_id] = step
                self.last_step = step
        if late:
            step.end()
            return None
        return step

    def step_ended(self, step: StepState) -> None:
        with self._lock:
            self._open_steps.pop(step.id, None)

    # -- user-set fields ----------------------------------------------------------------
    def set_status(self, status: Status) -> None:
        with self._lock:
            if self._status is None or may_replace(self._status, status):
                self._status = status

    def set_attributes(self, values: dict[str, Any]) -> None:
        with self._lock:
            if self.ended:
                return
            self._values.update(values)
        self.span.set_attributes(values)

    def add_summary(self, values: dict[str, Any]) -> None:
        with self._lock:
            self._seed.update(values)

    def add_step_update(
        self,
        step_id: uuid.UUID,
        assistant_message_id: int | None,
        history_tip_message_id: int | None,
    ) -> None:
        """Message ids for a step that already ended, written when the run ends."""
        with self._lock:
            update = self._step_updates.setdefault(step_id, {"step_id": str(step_id)})
            if assistant_message_id is not None:
                update["assistant_message_id"] = assistant_message_id
            if history_tip_message_id is not None:
                update["history_tip_message_id"] = history_tip_message_id

    # -- ending -------------------------------------------------------------------------
    def end(self, exc: BaseException | None = None) -> None:
        """End every open step, then the run span (idempotent)."""
        with self._lock:
            if self.ended:
                return
            self.ended = True
            open_steps = list(self._open_steps.values())
            chosen = self._status
            seed = dict(self._seed)
            step_updates = list(self._step_updates.values())
        # A step whose last attempt is being finished on the reaper thread is waited
        # for by its end(); one whose attempt is still queued there is settled here.
        for step in open_steps:
            step.end()
        status = chosen or Status.COMPLETED
        error = None
        if exc is not None:
            exc_status = status_for_exception(exc)
            if chosen is None or may_replace(chosen, exc_status):
                status = exc_status
            error = error_payload(exc, settings().redactor)
        values: dict[str, Any] = {attr.RUN_STATUS: status.value}
        if error is not None:
            values[attr.RUN_ERROR] = error
            values[attr.ERROR_TYPE] = str(error["type"])
        if seed:
            values[attr.RUN_SUMMARY_SEED] = seed
        if step_updates:
            values[attr.RUN_STEP_UPDATES] = step_updates
        sink = self.sink
        self.span.set_attributes(span_attributes(values, payloads=sink is None))
        if status is Status.ERROR:
            self.span.set_status(StatusCode.ERROR, str((error or {}).get("message", ""))[:500])
        end_ns = time.time_ns()
        self.span.end(end_time=end_ns)
        if sink is not None:
            final = self._values
            final.update(values)
            trace_id, span_id = span_ids(self.span)
            sink.record_ended(
                SpanRecord(attr.RUN_SPAN, final, trace_id, span_id, self.start_ns, end_ns)
            )
