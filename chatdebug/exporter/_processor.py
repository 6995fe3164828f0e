"""``StoreSpanProcessor``: run and step spans become store writes as they happen."""

from __future__ import annotations

import threading
import time
import uuid
import weakref
from datetime import timedelta
from typing import Any, Final

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from .._lifecycle import ForkStage, register_fork_safe
from .._pacing import pause_point
from .._safety import suppress_internal_errors
from .._spans import (
    INSTRUMENTATION_NAME,
    RUN_SPAN,
    STEP_SPAN,
    SpanRecord,
    StreamProgressSource,
)
from ..instrument import settings as instrument_settings
from ..metrics import Metrics
from ..store import Store
from ._convert import Source, run_ended, run_started, step_ended, step_started
from ._events import StepProgress, TouchRun, TouchStep
from ._genai import cost_observer, record_step_metrics
from ._health import ExporterHealth
from ._pricing import Pricer
from ._spill import SpillJournal
from ._writer import DEFAULT_HANDOFF, BackgroundWriter

__all__ = ["StoreSpanProcessor"]

_COMPONENT: Final = "exporter"
_MIN_HEARTBEAT: Final = timedelta(milliseconds=1)

PROGRESS_INTERVAL_SECONDS: Final = 1.0
"""How often a streaming step's progress is written (at most)."""


class StoreSpanProcessor(SpanProcessor):
    """An OpenTelemetry ``SpanProcessor`` that records chatdebug runs and steps in a store.

    The run row is written (``in_progress``) when the run span starts, a step row when a
    step span starts, and their final state when they end; when a run ends its summary
    is aggregated from its steps. Open runs and steps get a heartbeat (``touch``) every
    ``stale_threshold / 2`` so the stale finalizer leaves them alone. Every other span is
    ignored.

    It is also a record sink (:class:`~chatdebug._spans.RecordSink`):
    installed as ``sink`` in the instrumentation settings (``chatdebug.configure`` does
    it), it gets our runs and steps as records straight from the instrumentation, so the
    rows do not depend on the tracer provider's sampler or span limits, and it ignores
    the spans of those runs.

    Writes go through a bounded queue drained by a background thread: ``on_start`` and
    ``on_end`` never block and never raise. When the store is unavailable, events stay
    queued and are retried with backoff; when the queue is full, new events are dropped
    and counted in ``chatdebug_exporter_events_dropped_total{reason}``.

    Args:
        store: where runs and steps are written.
        metrics: records exporter health and GenAI traffic metrics when given.
        max_queue_size: capacity of the write queue, in events.
        max_batch_size: events taken from the queue per wake-up of the writer.
        schedule_delay: seconds the writer waits for a batch to fill.
        stale_threshold: the stale finalizer's threshold; heartbeats run at half of it.
        pricer: prices each ended step on the writer's thread (its metadata gets
            ``cost`` or ``cost_unavailable``); ``None`` prices from genai-prices'
            bundled data without overrides.
        spill: a spill journal for what cannot be written in time (see
            :class:`~chatdebug.exporter.SpillJournal`); closed at shutdown.
        spill_handoff: seconds an event may wait in memory before it goes to ``spill``.

    Attributes:
        health: drop counts by reason (``health.dropped``), kept even without metrics.

    Example::

        provider = TracerProvider()
        provider.add_span_processor(StoreSpanProcessor(open_store("sqlite:///debug.db")))
    """

    def __init__(
        self,
        store: Store,
        *,
        metrics: Metrics | None = None,
        max_queue_size: int = 10_000,
        max_batch_size: int = 512,
        schedule_delay: float = 0.2,
        stale_threshold: timedelta = timedelta(minutes=5),
        pricer: Pricer | None = None,
        spill: SpillJournal | None = None,
        spill_handoff: float = DEFAULT_HANDOFF,
    ) -> None:
        if stale_threshold <= timedelta(0):
            raise ValueError(f"stale_threshold must be positive, got {stale_threshold}")
        self._metrics = metrics
        self.health = ExporterHealth(metrics)
        self._writer = BackgroundWriter(
            store,
            health=self.health,
            max_queue_size=max_queue_size,
            max_batch_size=max_batch_size,
            schedule_delay=schedule_delay,
            pricer=pricer if pricer is not None else Pricer(),
            observe_cost=cost_observer(metrics) if metrics is not None else None,
            spill=spill,
            handoff=spill_handoff,
        )
        self._heartbeat_interval = max(stale_threshold / 2, _MIN_HEARTBEAT).total_seconds()
        self._shut_down = False
        self._init_state()
        register_fork_safe(self, ForkStage.PROCESSORS)

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        # Spans are held weakly: one that is dropped without ever ending stops getting
        # heartbeats, so the stale finalizer can still close its row.
        self._open_runs: dict[uuid.UUID, tuple[str, weakref.ref[Any]]] = {}
        self._open_steps: dict[uuid.UUID, tuple[uuid.UUID, str, weakref.ref[Any]]] = {}
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def _after_fork_in_child(self) -> None:
        # Runs open in the parent are the parent's to heartbeat.
        self._init_state()

    # -- SpanProcessor -----------------------------------------------------------------
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        name = span.name
        if (name != RUN_SPAN and name != STEP_SPAN) or self._has_record(span):
            return
        self._started(span, span)

    def on_end(self, span: ReadableSpan) -> None:
        name = span.name
        if (name != RUN_SPAN and name != STEP_SPAN) or self._has_record(span):
            return
        self._ended(span)

    def _has_record(self, span: ReadableSpan) -> bool:
        # Our instrumentation hands its runs and steps to this processor as records
        # when it is the installed sink; their spans are for other backends.
        scope = span.instrumentation_scope
        return (
            scope is not None
            and scope.name == INSTRUMENTATION_NAME
            and instrument_settings().sink is self
        )

    # -- RecordSink ----------------------------------------------------------------------
    def record_started(self, record: SpanRecord) -> None:
        """A run or step of our instrumentation started (see :class:`RecordSink`)."""
        self._started(record, record.owner)

    def record_ended(self, record: SpanRecord) -> None:
        """A run or step of our instrumentation ended (see :class:`RecordSink`)."""
        self._ended(record)

    def _started(self, source: Source, owner: object) -> None:
        with suppress_internal_errors(_COMPONENT):
            if source.name == RUN_SPAN:
                run = run_started(source)
                if run is None:
                    return
                # Queued under the lock, so no heartbeat of the run can precede it.
                with self._lock:
                    self._open_runs[run.run_id] = (run.params.chat_id, weakref.ref(owner))
                    self._writer.put(run)
                    self._ensure_heartbeat()
            else:
                step = step_started(source)
                if step is None:
                    return
                with self._lock:
                    self._open_steps[step.step_id] = (
                        step.run_id,
                        step.params.chat_id,
                        weakref.ref(owner),
                    )
                    self._writer.put(step)
                    self._ensure_heartbeat()

    def _ended(self, source: Source) -> None:
        with suppress_internal_errors(_COMPONENT):
            if source.name == RUN_SPAN:
                finish = run_ended(source)
                if finish is None:
                    return
                with self._lock:
                    self._open_runs.pop(finish.run_id, None)
                self._writer.put(finish)
            else:
                update = step_ended(source)
                if update is None:
                    return
                with self._lock:
                    self._open_steps.pop(update.step_id, None)
                self._writer.put(update)
                pause_point()
                if self._metrics is not None:
                    record_step_metrics(self._metrics, source)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until everything queued so far is written; ``False`` on timeout."""
        with suppress_internal_errors(_COMPONENT):
            return self._writer.flush(timeout_millis / 1000)
        return False

    def shutdown(self) -> None:
        """Stop heartbeats, flush for up to the exit flush timeout (10 seconds unless
        ``configure(exit_flush_timeout=…)`` says otherwise) and stop the writer; what
        could not be written is counted and logged once. Idempotent."""
        with suppress_internal_errors(_COMPONENT):
            self._stop.set()
            if self._shut_down:
                return
            self._shut_down = True
            self._writer.shutdown()

    # -- heartbeat ---------------------------------------------------------------------
    def _ensure_heartbeat(self) -> None:
        # caller holds self._lock
        if self._shut_down or self._heartbeat is not None:
            return
        self._heartbeat = threading.Thread(
            target=self._beat_forever,
            args=(self._stop,),
            name="chatdebug-heartbeat",
            daemon=True,
        )
        self._heartbeat.start()

    def _beat_forever(self, stop: threading.Event) -> None:
        # Streaming steps report their progress every second; every row open gets a
        # heartbeat every heartbeat interval.
        tick = min(PROGRESS_INTERVAL_SECONDS, self._heartbeat_interval)
        next_beat = time.monotonic() + self._heartbeat_interval
        alive = True
        while alive and not stop.wait(tick):
            with suppress_internal_errors(_COMPONENT):
                self._report_progress()
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self._heartbeat_interval
                    alive = self._beat()

    def _report_progress(self) -> None:
        """Queue the progress of every step whose response streams now."""
        with self._lock:
            open_steps = [(step_id, *entry) for step_id, entry in self._open_steps.items()]
        for step_id, run_id, chat_id, owner_ref in open_steps:
            owner = owner_ref()
            if not isinstance(owner, StreamProgressSource):
                continue
            progress = owner.stream_progress()
            if progress is None:
                continue
            with self._lock:
                # Queued under the lock, and only while the step is open: its final
                # update (queued once it is no longer open) always comes after.
                if step_id in self._open_steps:
                    self._writer.put(StepProgress(step_id, run_id, chat_id, progress))

    def _beat(self) -> bool:
        with self._lock:
            for open_ in (self._open_steps, self._open_runs):
                for key in [k for k, entry in open_.items() if entry[-1]() is None]:
                    del open_[key]
            if not self._open_steps and not self._open_runs:
                # Idle: stop; the next run or step that opens starts a new thread.
                self._heartbeat = None
                return False
            steps = [(step_id, run_id, chat_id) for step_id, (run_id, chat_id, _) in
                     self._open_steps.items()]  # fmt: skip
            runs = {run_id: chat_id for run_id, (chat_id, _) in self._open_runs.items()}
        # Touching a step bumps its run too, so runs with an open step need no touch
        # of their own.
        for step_id, run_id, chat_id in steps:
            runs.pop(run_id, None)
            self._writer.put(TouchStep(step_id, run_id, chat_id))
        for run_id, chat_id in runs.items():
            self._writer.put(TouchRun(run_id, chat_id))
        return True
