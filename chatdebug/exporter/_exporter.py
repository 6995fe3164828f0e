"""``StoreSpanExporter``: end-only persistence, for use behind an OTel span processor."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .._safety import log_internal_error, suppress_internal_errors
from .._spans import RUN_SPAN, STEP_SPAN
from ..metrics import Metrics
from ..store import RunFinalized, RunNotFound, Store, StoreError, StoreUnavailable
from ._convert import placeholder_run, run_ended, run_started, step_ended, step_started
from ._events import CreateStep, Event, UpdateStep, apply_event
from ._genai import cost_observer, record_step_metrics
from ._health import ExporterHealth
from ._pricing import Pricer, price_step

__all__ = ["StoreSpanExporter"]

logger = logging.getLogger("chatdebug.exporter")

_COMPONENT: Final = "exporter"
_KNOWN_RUNS: Final = 10_000  # runs remembered as created, so their late steps go straight in

_StepPair = tuple[CreateStep, UpdateStep]


class _Health(Protocol):
    def written(self, kind: str, seconds: float) -> None: ...
    def write_error(self, kind: str) -> None: ...
    def write_failed(self, kind: str, exc: BaseException) -> None: ...
    def drop(self, reason: str, count: int = 1) -> None: ...


class _HeldHealth:
    """Health calls held back until the batch they describe has committed."""

    def __init__(self) -> None:
        self.calls: list[Callable[[ExporterHealth], None]] = []

    def written(self, kind: str, seconds: float) -> None:
        self.calls.append(lambda health: health.written(kind, seconds))

    def write_error(self, kind: str) -> None:
        self.calls.append(lambda health: health.write_error(kind))

    def write_failed(self, kind: str, exc: BaseException) -> None:
        self.calls.append(lambda health: health.write_failed(kind, exc))

    def drop(self, reason: str, count: int = 1) -> None:
        self.calls.append(lambda health: health.drop(reason, count))


class StoreSpanExporter(SpanExporter):
    """An OpenTelemetry ``SpanExporter`` that writes ended run and step spans to a store.

    Use it with ``BatchSpanProcessor`` (or ``SimpleSpanProcessor``) when rows should be
    written only once spans end; :class:`StoreSpanProcessor` also shows runs while they
    are in progress. ``export`` writes synchronously on the processor's thread. A step
    usually ends before its run: steps are held per run id until the run span arrives.
    At most ``max_buffered_steps`` steps are held; beyond that, the oldest run's steps
    are written under a run created from their ids with kind ``unknown``, and the same
    happens at shutdown, so no step is lost for lack of its run span.

    Each ``export`` call is written in one store transaction
    (:meth:`~chatdebug.store.Store.batch`). If that transaction cannot be committed
    (the store is unavailable or closed), the call is written again one write at a time,
    so that what got written and what was dropped is known and counted exactly.

    ``export`` never raises: a store failure returns ``SpanExportResult.FAILURE`` and is
    logged and counted. After :meth:`shutdown`, ``export`` returns ``FAILURE``.
    ``health.dropped`` counts what was not written, by reason, even without metrics.
    Each step is priced before it is written (``pricer``; ``None`` prices from
    genai-prices' bundled data without overrides).
    """

    def __init__(
        self,
        store: Store,
        metrics: Metrics | None = None,
        *,
        max_buffered_steps: int = 10_000,
        pricer: Pricer | None = None,
    ) -> None:
        if max_buffered_steps < 0:
            raise ValueError(f"max_buffered_steps must not be negative, got {max_buffered_steps}")
        self._store = store
        self._metrics = metrics
        self._pricer = pricer if pricer is not None else Pricer()
        self._observe_cost = cost_observer(metrics) if metrics is not None else None
        self.health = ExporterHealth(metrics)
        self._max_buffered = max_buffered_steps
        self._lock = threading.Lock()
        self._known_runs: OrderedDict[uuid.UUID, None] = OrderedDict()
        self._orphans: OrderedDict[uuid.UUID, list[_StepPair]] = OrderedDict()
        self._orphan_count = 0
        self._shut_down = False
        # While an export is written in a batch: where health calls go, and the runs
        # created so far (remembered for good once the batch has committed).
        self._sink: _Health = self.health
        self._batched = False
        self._created: dict[uuid.UUID, None] = {}
        self._metric_spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write the run and step spans among ``spans``; other spans are ignored."""
        if self._shut_down:
            logger.warning("chatdebug exporter already shut down, ignoring %d spans", len(spans))
            return SpanExportResult.FAILURE
        result = SpanExportResult.FAILURE  # stays so if our own code fails
        with suppress_internal_errors(_COMPONENT), self._lock:
            ok = self._export_batched(spans)
            result = SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE
        return result

    def _export_spans(self, spans: Sequence[ReadableSpan]) -> bool:
        self._metric_spans = []
        ok = True
        for span in spans:
            if span.name == RUN_SPAN:
                ok = self._export_run(span) and ok
            elif span.name == STEP_SPAN:
                ok = self._export_step(span) and ok
        return ok

    def _export_batched(self, spans: Sequence[ReadableSpan]) -> bool:
        """Export ``spans`` in one store transaction. Health is counted and created runs
        remembered only once it has committed; when it cannot commit, the buffered
        steps are put back as they were and the spans exported one write at a time."""
        orphans = OrderedDict((run_id, list(pairs)) for run_id, pairs in self._orphans.items())
        orphan_count = self._orphan_count
        held = _HeldHealth()
        self._sink, self._batched, self._created = held, True, {}
        try:
            with self._store.batch():
                ok = self._export_spans(spans)
        except StoreError:
            committed = False
        else:
            committed = True
        finally:
            created, self._created = self._created, {}
            self._sink, self._batched = self.health, False
        if committed:
            for run_id in created:
                self._remember(run_id)
            for call in held.calls:
                call(self.health)
        else:
            self._orphans, self._orphan_count = orphans, orphan_count
            ok = self._export_spans(spans)
        if self._metrics is not None:
            for span in self._metric_spans:
                record_step_metrics(self._metrics, span)
        self._metric_spans = []
        return ok

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing to flush: ``export`` writes synchronously."""
        return True

    def shutdown(self) -> None:
        """Write held steps under placeholder runs, then refuse further exports."""
        if self._shut_down:
            logger.warning("chatdebug exporter shutdown called more than once")
            return
        with suppress_internal_errors(_COMPONENT), self._lock:
            while self._orphans:
                self._adopt_oldest()
        self._shut_down = True
        self.health.log_pending()

    # -- internals (self._lock held) ---------------------------------------------------
    def _export_run(self, span: ReadableSpan) -> bool:
        create, finish = run_started(span), run_ended(span)
        if create is None or finish is None:
            return True
        if not self._apply_group([create], "run_dropped"):
            self._sink.drop("run_dropped")  # its end
            self._drop_orphans(create.run_id, "run_dropped")
            return False
        self._note_created(create.run_id)
        ok = self._write_orphans(create.run_id)
        return self._apply_group([finish], "run_dropped") and ok

    def _export_step(self, span: ReadableSpan) -> bool:
        create, update = step_started(span), step_ended(span)
        if create is None or update is None:
            return True
        update = price_step(update, self._pricer, self._observe_cost)
        self._metric_spans.append(span)
        if create.run_id in self._known_runs or create.run_id in self._created:
            return self._apply_group([create, update], "step_dropped")
        self._orphans.setdefault(create.run_id, []).append((create, update))
        self._orphan_count += 1
        ok = True
        while self._orphan_count > self._max_buffered and self._orphans:
            ok = self._adopt_oldest() and ok
        return ok

    def _note_created(self, run_id: uuid.UUID) -> None:
        if self._batched:
            self._created[run_id] = None  # remembered once the batch has committed
        else:
            self._remember(run_id)

    def _remember(self, run_id: uuid.UUID) -> None:
        self._known_runs[run_id] = None
        self._known_runs.move_to_end(run_id)
        while len(self._known_runs) > _KNOWN_RUNS:
            self._known_runs.popitem(last=False)

    def _adopt_oldest(self) -> bool:
        """Create a placeholder run for the longest-waiting orphan steps and write them."""
        run_id, pairs = next(iter(self._orphans.items()))
        if not self._apply_group([placeholder_run(pairs[0][0])], "run_dropped"):
            self._drop_orphans(run_id, "run_dropped")
            return False
        self._note_created(run_id)
        return self._write_orphans(run_id)

    def _write_orphans(self, run_id: uuid.UUID) -> bool:
        pairs = self._orphans.pop(run_id, [])
        self._orphan_count -= len(pairs)
        ok = True
        for create, update in pairs:
            ok = self._apply_group([create, update], "step_dropped") and ok
        return ok

    def _drop_orphans(self, run_id: uuid.UUID, reason: str) -> None:
        pairs = self._orphans.pop(run_id, [])
        self._orphan_count -= len(pairs)
        self._sink.drop(reason, 2 * len(pairs))

    def _apply_group(self, events: Sequence[Event], dependent_reason: str) -> bool:
        """Apply events that depend on each other in order; once one fails, the rest are
        dropped. Returns ``False`` only for failures worth reporting as export failure.
        In a batch, ``StoreUnavailable`` propagates: the whole batch is lost."""
        for index, event in enumerate(events):
            started = time.perf_counter()
            try:
                apply_event(self._store, event)
            except (RunFinalized, RunNotFound) as exc:
                reason = "run_finalized" if isinstance(exc, RunFinalized) else "run_not_found"
                self._sink.drop(reason, len(events) - index)
                return True
            except Exception as exc:
                if self._batched and isinstance(exc, StoreUnavailable):
                    raise
                if not isinstance(exc, StoreError):  # the store broke its contract
                    log_internal_error(_COMPONENT, exc)
                self._sink.write_error(event.kind)
                self._sink.drop("store_error")
                self._sink.drop(dependent_reason, len(events) - index - 1)
                self._sink.write_failed(event.kind, exc)
                return False
            self._sink.written(event.kind, time.perf_counter() - started)
        return True
