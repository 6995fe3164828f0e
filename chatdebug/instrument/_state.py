"""The state of a recording run and of its steps, and ending each one's span exactly once.

A run numbers its steps (1-based, unique also under concurrency), keeps the steps still
open, and ends its span once, closing what is still open.

A step collects attempts from the transport. Each attempt reports an
:class:`AttemptOutcome` when its body is done; the step keeps the latest as its tentative
result (a later success clears an earlier error). An automatic step ends by itself when
its attempt is done — unless the attempt failed in a way the SDK retries, in which case it
waits for the retry (or for the run to end). An explicit step ends when its ``with``
block exits. Either way :meth:`StepState.end` runs once; attempts still open then are
abandoned (a stream not read to its final event counts as interrupted).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Span, StatusCode

from .. import _spans as attr
from .._pacing import pause_point
from .._spans import RecordSink, SpanRecord, new_id, span_attributes, span_ids
from .._status import Operation, Status, may_replace
from ._outcome import error_payload, status_for_exception
from ._settings import settings
from .normalize import NormalizedResponse

__all__ = ["AttemptOutcome", "OpenAttempt", "RunState", "StepState", "carried_over"]

_END_WAIT_SECONDS = 5.0
_CARRY_OVER_CANDIDATES = 8


@dataclass(slots=True)
class AttemptOutcome:
    """What one finished attempt means for its step."""

    record: dict[str, Any]
    """The attempt object stored in the step's ``attempts``."""
    ok: bool
    """The model call succeeded (a complete, error-free response)."""
    step_status: Status
    """The status the step has if this attempt is its last."""
    error: dict[str, Any] | None = None
    may_retry: bool = False
    """An SDK may send the same request again (retryable failure)."""
    normalized_request: dict[str, Any] | None = None
    response: NormalizedResponse | None = None
    request_attributes: dict[str, Any] = field(default_factory=dict)
    ttfb_ms: float | None = None
    ttft_ms: float | None = None


class OpenAttempt(Protocol):
    """An attempt whose response body is not done yet."""

    number: int

    def abandon(self, reason: str) -> None:
        """Finish the attempt now with what it has (its outcome is reported)."""
        ...

    def progress(self) -> dict[str, Any] | None:
        """How far its streamed response has come, if anything new arrived."""
        ...


class StepState:
    """Mutable state of one step; thread-safe.

    A step is *reserved* where the call is made (its number, id, start time and parent
    context: bookkeeping only) and *opened* later, by :meth:`open`: its span started with
    that start time and parent, and its start record handed to the run's sink. An explicit
    step opens at once; an automatic step opens once its first attempt has read the
    request, on the reaper thread while the request is on the network (or on whichever
    thread needs it first), so none of that work delays the request.
    """

    def __init__(
        self,
        run: RunState,
        *,
        step_id: uuid.UUID,
        number: int,
        explicit: bool,
        parent: Context | None,
        start_ns: int,
    ) -> None:
        self.run = run
        self.start_ns = start_ns
        self._values: dict[str, Any] = {}
        self._parent = parent
        self.span: Span = INVALID_SPAN
        """The step's span; :data:`~opentelemetry.trace.INVALID_SPAN` until opened."""
        self.opened = False
        self._open_lock = threading.Lock()
        self.id = step_id
        self.number = number
        self.operation = ""
        self.explicit = explicit
        self.ended = False
        self.pending_retry = False
        self._lock = threading.Lock()
        self._ending = False
        self._ender: int | None = None
        # Held by the thread ending the step until it has ended (a lock, not an Event:
        # one is made per model call, and an Event costs ten times as much to make).
        self._ending_lock = threading.Lock()
        self._next_attempt = 0
        self._open: dict[int, OpenAttempt] = {}
        self._records: dict[int, dict[str, Any]] = {}
        self._last: AttemptOutcome | None = None
        self._error_recorded = False
        self._last_finished_ns: int | None = None
        self._assistant_message_id: int | None = None
        self._history_tip_message_id: int | None = None
        self._previous_messages: list[Any] | None = None
        self._took_history = False

    # -- opening ----------------------------------------------------------------------
    def open(self, operation: str, attributes: dict[str, Any] | None = None) -> None:
        """Start the span (with the reserved start time and parent) and hand the start
        record to the sink; idempotent (the first caller's ``attributes`` win)."""
        if self.opened:
            return
        with self._open_lock:
            if self.opened:
                return
            run = self.run
            values: dict[str, Any] = {
                attr.RUN_ID: str(run.id),
                attr.CHAT_ID: run.chat_id,
                attr.STEP_ID: str(self.id),
                attr.STEP_NUMBER: self.number,
                attr.STEP_OPERATION: operation,
                attr.STEP_EXPLICIT: self.explicit,
                attr.GEN_AI_CONVERSATION_ID: run.chat_id,
            }
            if attributes:
                values.update(attributes)
                request = attributes.get(attr.STEP_NORMALIZED_REQUEST)
                if isinstance(request, dict):
                    values[attr.STEP_REQUEST_HISTORY_SENT] = self._history_sent(request)
            sink = run.sink
            span = run.tracer.start_span(
                attr.STEP_SPAN,
                context=(
                    (self._parent or trace.set_span_in_context(run.span))
                    if self.explicit
                    else run.parent_context(self._parent)
                ),
                attributes=span_attributes(values, payloads=sink is None),
                start_time=self.start_ns,
            )
            self._parent = None
            self.operation = operation
            self._values = values
            self.span = span
            if sink is not None:
                trace_id, span_id = span_ids(span)
                sink.record_started(
                    SpanRecord(
                        attr.STEP_SPAN, dict(values), trace_id, span_id, self.start_ns, owner=self
                    )
                )
            self.opened = True

    def _history_sent(self, request: dict[str, Any]) -> int:
        """How many leading messages of ``request`` the run's previous step sent (see
        :func:`carried_over`); the first request of the step becomes the run's latest."""
        messages = request.get("messages")
        if not isinstance(messages, list):
            return 0
        if not self._took_history:
            self._took_history = True
            self._previous_messages = self.run.swap_messages(messages)
        return carried_over(self._previous_messages, messages)

    # -- attempts ---------------------------------------------------------------------
    def reserve_attempt(self) -> tuple[int, int | None]:
        """Next attempt number, and when the previous attempt finished (ns) if any."""
        with self._lock:
            self._next_attempt += 1
            self.pending_retry = False
            return self._next_attempt, self._last_finished_ns

    def attempt_started(self, attempt: OpenAttempt) -> bool:
        """Register an attempt in flight; False if the step already ended."""
        with self._lock:
            if self.ended or self._ending:
                return False
            self._open[attempt.number] = attempt
            return True

    def attempt_finished(self, number: int, outcome: AttemptOutcome) -> None:
        """Record a finished attempt; an automatic step may end here."""
        end_now = False
        with self._lock:
            self._open.pop(number, None)
            self._records[number] = outcome.record
            if self.ended:
                return
            self._last_finished_ns = time.time_ns()
            self._last = outcome
            if outcome.error is not None:
                self._error_recorded = True
            if not self.explicit and not self._ending and not self._open:
                if outcome.ok or not outcome.may_retry:
                    end_now = True
                else:
                    self.pending_retry = True
        if end_now:
            self.end()

    def stream_progress(self) -> dict[str, Any] | None:
        """The progress of the response streaming into this step now (its latest open
        attempt's); see :class:`~chatdebug._spans.StreamProgressSource`."""
        with self._lock:
            if self.ended or self._ending or not self._open:
                return None
            attempt = self._open[max(self._open)]
        return attempt.progress()

    # -- user-set fields ----------------------------------------------------------------
    def set_message_ids(
        self, assistant_message_id: int | None, history_tip_message_id: int | None
    ) -> None:
        """Message ids of this step; after the step ended they travel on the run span."""
        with self._lock:
            ended = self.ended or self._ending
            if not ended:
                if assistant_message_id is not None:
                    self._assistant_message_id = assistant_message_id
                if history_tip_message_id is not None:
                    self._history_tip_message_id = history_tip_message_id
        if ended:
            self.run.add_step_update(self.id, assistant_message_id, history_tip_message_id)

    # -- ending -------------------------------------------------------------------------
    def end(self, exc: BaseException | None = None, exc_status: Status | None = None) -> None:
        """End the step (idempotent). ``exc`` is the exception that left an explicit
        step's block, with the status it maps to."""
        with self._lock:
            if self.ended or self._ending:
                ender = self._ender
            else:
                ender = None
                self._ending = True
                self._ender = threading.get_ident()
                self._ending_lock.acquire()
                still_open = list(self._open.values())
        if ender is not None:
            if ender != threading.get_ident():
                # Being ended on another thread (the reaper finishing its last attempt):
                # whoever ends the run waits, so a run never ends before its steps.
                if self._ending_lock.acquire(timeout=_END_WAIT_SECONDS):
                    self._ending_lock.release()
            return
        try:
            for attempt in still_open:
                attempt.abandon("the step ended before the response was finished")
            # Abandoning an attempt opens its step; a step ended before any attempt read
            # its request (the run ended meanwhile) opens with what it knows.
            self.open(Operation.GENERATE.value)
            with self._lock:
                self.ended = True
                outcome = self._last
                records = [self._records[n] for n in sorted(self._records)]
            status, error = self._final_status(outcome, exc, exc_status)
            self._finish_span(outcome, records, status, error)
            self.run.step_ended(self)
        finally:
            self._ending_lock.release()

    def _final_status(
        self,
        outcome: AttemptOutcome | None,
        exc: BaseException | None,
        exc_status: Status | None,
    ) -> tuple[Status, dict[str, Any] | None]:
        status = outcome.step_status if outcome is not None else Status.COMPLETED
        error = outcome.error if outcome is not None else None
        if exc is not None and exc_status is not None:
            from ._outcome import error_payload
            from ._settings import settings

            # Without an attempt the block's exception decides. After a completed model
            # call a later exception does not downgrade the step (priority rule).
            if outcome is None or may_replace(status, exc_status):
                status = exc_status
                error = error_payload(exc, settings().redactor)
        return status, error

    def _finish_span(
        self,
        outcome: AttemptOutcome | None,
        records: list[dict[str, Any]],
        status: Status,
        error: dict[str, Any] | None,
    ) -> None:
        span = self.span
        values: dict[str, Any] = {
            attr.STEP_STATUS: status.value,
            attr.STEP_ATTEMPTS: records,
        }
        if outcome is not None:
            values.update(outcome.request_attributes)
            request = outcome.normalized_request
            if request is not None:
                values[attr.STEP_NORMALIZED_REQUEST] = request
                if request is not self._values.get(attr.STEP_NORMALIZED_REQUEST):
                    values[attr.STEP_REQUEST_HISTORY_SENT] = self._history_sent(request)
            values.update(_response_attributes(outcome))
        if error is not None:
            values[attr.STEP_ERROR] = error
            values[attr.ERROR_TYPE] = str(error.get("type") or "error")
        elif self._error_recorded:
            values[attr.STEP_ERROR] = "null"  # a later success clears the earlier error
        if self._assistant_message_id is not None:
            values[attr.STEP_ASSISTANT_MESSAGE_ID] = self._assistant_message_id
        if self._history_tip_message_id is not None:
            values[attr.STEP_HISTORY_TIP_MESSAGE_ID] = self._history_tip_message_id
        sink = self.run.sink
        start = self._values
        if sink is None:
            span.set_attributes(span_attributes(values, payloads=True))
        else:
            # Only what the span does not have yet (an automatic step got its request
            # attributes when it started).
            span.set_attributes(
                {
                    key: value
                    for key, value in values.items()
                    if key not in attr.PAYLOAD_KEYS and start.get(key) != value
                }
            )
        if status is Status.ERROR:
            span.set_status(StatusCode.ERROR, str((error or {}).get("message", ""))[:500])
        self._previous_messages = None  # the previous step's history: not needed any more
        end_ns = time.time_ns()
        span.end(end_time=end_ns)
        if sink is not None:
            pause_point()
            final = {**start, **values}
            if final.get(attr.STEP_NORMALIZED_REQUEST) is start.get(attr.STEP_NORMALIZED_REQUEST):
                # Stored with the row when the step started: not written twice.
                final.pop(attr.STEP_NORMALIZED_REQUEST, None)
            trace_id, span_id = span_ids(span)
            sink.record_ended(
                SpanRecord(attr.STEP_SPAN, final, trace_id, span_id, self.start_ns, end_ns)
            )


def carried_over(previous: list[Any] | None, messages: list[Any]) -> int:
    """How many leading messages of ``messages`` are the last ones of ``previous``: a
    history carried over from one call to the next (grown, or kept to a sliding window);
    0 when it was not (a new conversation, a history rewritten or summarized)."""
    if not previous or not messages:
        return 0
    last = previous[-1]
    # Each candidate end is checked in full; a history of many identical messages would
    # make that quadratic, so only the first few candidates are (the usual one is the
    # first: a history that grew).
    candidates = _CARRY_OVER_CANDIDATES
    for end in range(min(len(previous), len(messages)), 0, -1):
        if messages[end - 1] == last:
            if messages[:end] == previous[len(previous) - end :]:
                return end
            candidates -= 1
            if not candidates:
                break
    return 0


def _response_attributes(outcome: AttemptOutcome) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if outcome.ttfb_ms is not None:
        values[attr.STEP_TTFB_MS] = outcome.ttfb_ms
    if outcome.ttft_ms is not None:
        values[attr.STEP_TTFT_MS] = outcome.ttft_ms
        values[attr.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = outcome.ttft_ms / 1000.0
    response = outcome.response
    if response is None:
        return values
    if response.response is not None:
        values[attr.STEP_NORMALIZED_RESPONSE] = response.response
    if response.metadata:
        values[attr.STEP_METADATA] = response.metadata
        tier = response.metadata.get("service_tier")
        if isinstance(tier, str):
            # The semantic-convention key, so OTel backends see the tier that served it.
            values[attr.OPENAI_RESPONSE_SERVICE_TIER] = tier
    if response.response_model:
        values[attr.GEN_AI_RESPONSE_MODEL] = response.response_model
    if response.finish_reasons:
        values[attr.GEN_AI_RESPONSE_FINISH_REASONS] = list(response.finish_reasons)
    usage = response.usage
    if usage is not None:
        values[attr.STEP_USAGE] = usage
        values[attr.GEN_AI_USAGE_INPUT_TOKENS] = int(usage.get("input_tokens", 0))
        values[attr.GEN_AI_USAGE_OUTPUT_TOKENS] = int(usage.get("output_tokens", 0))
        for key, name in (
            ("cache_read_tokens", attr.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
            ("cache_creation_tokens", attr.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS),
            ("reasoning_tokens", attr.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
        ):
            if usage.get(key):
                values[name] = int(usage[key])
    return values


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
        self._last_messages: list[Any] | None = None

    # -- steps --------------------------------------------------------------------------
    def reserve_step(self, *, explicit: bool, parent: Context | None) -> StepState | None:
        """A new step of this run, numbered and registered but not opened yet (see
        :class:`StepState`); None when the run already ended. ``parent``: the context
        the call was made in (the run's span is the parent unless it holds a span of the
        run's trace)."""
        start_ns = time.time_ns()
        with self._lock:
            if self.ended:
                return None
            self._step_counter += 1
            step = StepState(
                self,
                step_id=new_id(),
                number=self._step_counter,
                explicit=explicit,
                parent=parent,
                start_ns=start_ns,
            )
            self._open_steps[step.id] = step
            self.last_step = step
        return step

    def start_step(
        self,
        *,
        operation: str,
        explicit: bool,
        parent: Context | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> StepState | None:
        """Reserve and open a new step span under this run (None when the run already
        ended, also while the step was being opened)."""
        step = self.reserve_step(explicit=explicit, parent=parent)
        if step is None:
            return None
        step.open(operation, attributes)
        return None if step.ended else step

    def swap_messages(self, messages: list[Any]) -> list[Any] | None:
        """The request messages of the step this run opened last, replaced by
        ``messages`` (those of the step opening now)."""
        with self._lock:
            previous, self._last_messages = self._last_messages, messages
        return previous

    def parent_context(self, context: Context | None) -> Context:
        """The context a step span starts in: ``context`` when its current span belongs
        to this run's trace (a span the user opened inside the run), else the run's."""
        if context is not None:
            current = trace.get_current_span(context).get_span_context()
            if current.is_valid and current.trace_id == self.span.get_span_context().trace_id:
                return context
        return trace.set_span_in_context(self.span)

    def release_last_step(self) -> StepState | None:
        """Let go of :attr:`last_step` once the run has ended, and return it for the
        run's handle to keep: a step refers to its run, so a run that kept its last step
        would form a cycle, and the run, its steps and their spans would stay in memory
        until the cyclic garbage collector's next run instead of going with the handle."""
        with self._lock:
            step, self.last_step = self.last_step, None
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
