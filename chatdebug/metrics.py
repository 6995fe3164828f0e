"""Every Prometheus metric of chatdebug, created against a registry you pass in.

Nothing is registered at import time. Create one :class:`Metrics` per process (or per
test) and hand it to the exporter, the purge loop and the stale finalizer::

    from prometheus_client import CollectorRegistry, generate_latest
    from chatdebug.metrics import Metrics

    metrics = Metrics(CollectorRegistry())
    processor = StoreSpanProcessor(store, metrics=metrics)
    print(generate_latest(metrics.registry).decode())
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ._not_recorded import not_recorded_counts
from ._safety import internal_error_counts

__all__ = [
    "DROP_REASONS",
    "EVENT_KINDS",
    "RECORD_TYPES",
    "STORAGE_REASONS",
    "STORAGE_TARGETS",
    "TOKEN_TYPES",
    "InternalErrorsCollector",
    "Metrics",
    "RequestsNotRecordedCollector",
]

# Buckets from 1 s to 10 min for a slow purge, plus sub-second ones: a tick deleting one batch
# usually takes milliseconds, and a histogram whose first bucket is 1 s says nothing then.
PURGE_DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
)  # fmt: skip
RECORD_TYPES: Final = ("chat_debug_runs", "chat_debug_steps")
"""Values of the ``record_type`` label of the purge and stale-finalization counters."""
# Advisory buckets of the OpenTelemetry GenAI semantic conventions, so dashboards built
# for OTel-exported GenAI metrics read ours the same way.
GEN_AI_DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
GEN_AI_TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
WRITE_DURATION_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip

EVENT_KINDS: Final = (
    "run_create", "run_finish", "run_touch", "step_create", "step_update", "step_touch",
)  # fmt: skip
"""Values of the ``kind`` label of the exporter's write counters."""

DROP_REASONS: Final = (
    "queue_full",
    "run_dropped",
    "step_dropped",
    "run_finalized",
    "run_not_found",
    "store_error",
    "shutdown",
    "spill_unreadable",
)
"""Values of the ``reason`` label of ``chatdebug_exporter_events_dropped_total``."""

STORAGE_TARGETS: Final = ("store", "journal")
"""Values of the ``target`` label of the local storage metrics: the SQLite store's file
and the spill journal."""
STORAGE_REASONS: Final = ("disk_full", "read_only", "io_error", "cannot_open")
"""Values of the ``reason`` label of ``chatdebug_storage_failures_total``."""

TOKEN_TYPES: Final = ("input", "output", "reasoning", "cache_read", "cache_creation")
"""Values of the ``token_type`` label of ``gen_ai_client_token_usage``."""


class InternalErrorsCollector(Collector):
    """``chatdebug_internal_errors_total{component}``, read from
    :func:`chatdebug._safety.internal_error_counts` at scrape time."""

    NAME: Final = "chatdebug_internal_errors"
    HELP: Final = (
        "chatdebug's own failures that were logged and swallowed so the application "
        "kept running, by component."
    )

    def describe(self) -> Iterable[Metric]:
        # Describing without samples keeps registration from reading the counts.
        return [CounterMetricFamily(self.NAME, self.HELP, labels=["component"])]

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(self.NAME, self.HELP, labels=["component"])
        for component, count in sorted(internal_error_counts().items()):
            family.add_metric([component], count)
        return [family]


class RequestsNotRecordedCollector(Collector):
    """``chatdebug_requests_not_recorded_total{reason}``, read from
    :func:`chatdebug._not_recorded.not_recorded_counts` at scrape time."""

    NAME: Final = "chatdebug_requests_not_recorded"
    HELP: Final = (
        "Requests made inside a recording run that were passed through without being "
        "recorded, by reason (not_a_model_call: a process-wide instrumented client sent "
        "something other than a model API call)."
    )

    def describe(self) -> Iterable[Metric]:
        return [CounterMetricFamily(self.NAME, self.HELP, labels=["reason"])]

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(self.NAME, self.HELP, labels=["reason"])
        for reason, count in sorted(not_recorded_counts().items()):
            family.add_metric([reason], count)
        return [family]


class Metrics:
    """Owner of every chatdebug metric, all registered on :attr:`registry`.

    Args:
        registry: where to register; ``None`` creates a fresh private
            :class:`~prometheus_client.CollectorRegistry`. Pass
            ``prometheus_client.REGISTRY`` to expose the metrics with the process's
            default ones. Registering twice on one registry raises, as in
            prometheus_client.

    Attributes (metric objects, named after what they expose):
        purge_iteration_duration, purge_records_removed, purge_last_success_timestamp,
        purge_retention, stale_rows_finalized: retention purge and stale
        finalization.
        exporter_queue_depth, exporter_queue_capacity, exporter_oldest_event_age,
        store_reachable, exporter_events_written, exporter_write_errors,
        exporter_events_dropped, exporter_write_duration: exporter health.

    Every gauge declares how prometheus_client's multiprocess mode
    (``PROMETHEUS_MULTIPROC_DIR``) aggregates it across worker processes: queue depth
    and capacity add up over live workers, the oldest event age is the live maximum,
    reachability the live minimum (0 when any worker cannot write), the last purge
    success the maximum and the retention the most recently set value.
        gen_ai_operation_duration, gen_ai_token_usage, gen_ai_time_to_first_chunk: LLM
        traffic, labelled by provider, model and operation.
        llm_cost: dollars spent on LLM calls, by provider and model (a counter, so
        multiprocess mode sums it over workers like the other counters).
        spill_events, spill_replayed_events, spill_journal_events, spill_journal_bytes,
        spill_journal_capacity, spill_replay_lag: the exporter's spill journal (sizes
        add up over live workers, the lag is the live maximum).
        storage_writable, storage_failures: whether the SQLite store's and the journal's
        file systems take writes (the live minimum), and episodes when they did not.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry: CollectorRegistry = registry if registry is not None else CollectorRegistry()
        reg = self.registry

        # -- retention purge and stale finalization ----------------------------------
        self.purge_iteration_duration = Histogram(
            "chatdebug_purge_iteration_duration_seconds",
            "Duration of each retention purge iteration in seconds; success is false when "
            "the iteration failed. An iteration that did not get the purge lock records "
            "nothing.",
            ["success"],
            buckets=PURGE_DURATION_BUCKETS,
            registry=reg,
        )
        self.purge_records_removed = Counter(
            "chatdebug_purge_records_removed_total",
            "Records removed by the retention purge, by table.",
            ["record_type"],
            registry=reg,
        )
        self.purge_last_success_timestamp = Gauge(
            "chatdebug_purge_last_success_timestamp_seconds",
            "Unix time of the last successful retention purge iteration.",
            registry=reg,
            multiprocess_mode="max",
        )
        # In seconds (days × 86400): Prometheus base units, and promtool rejects "days".
        self.purge_retention = Gauge(
            "chatdebug_purge_retention_seconds",
            "Retention read from the store by the last purge iteration, in seconds (the "
            "retention days setting times 86400): runs not updated for longer are purged; "
            "0 means the purge is disabled.",
            registry=reg,
            multiprocess_mode="mostrecent",
        )
        self.stale_rows_finalized = Counter(
            "chatdebug_stale_rows_finalized_total",
            "In-progress rows without a heartbeat for the stale threshold that were "
            "finalized as interrupted, by table.",
            ["record_type"],
            registry=reg,
        )

        # -- exporter health -----------------------------------------------------------
        self.exporter_queue_depth = Gauge(
            "chatdebug_exporter_queue_depth",
            "Events waiting in the exporter's write queue.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.exporter_queue_capacity = Gauge(
            "chatdebug_exporter_queue_capacity",
            "Events the exporter's write queue holds at most; beyond it events are dropped "
            "with reason queue_full.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.exporter_oldest_event_age = Gauge(
            "chatdebug_exporter_oldest_event_age_seconds",
            "Age in seconds of the oldest event waiting in the exporter's write queue; 0 "
            "when the queue is empty.",
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.store_reachable = Gauge(
            "chatdebug_store_reachable",
            "1 when the exporter's last store operation reached the database, 0 while it "
            "cannot (events then wait in the queue).",
            registry=reg,
            multiprocess_mode="livemin",
        )
        self.exporter_events_written = Counter(
            "chatdebug_exporter_events_written_total",
            "Events the exporter wrote to the store, by kind.",
            ["kind"],
            registry=reg,
        )
        self.exporter_write_errors = Counter(
            "chatdebug_exporter_write_errors_total",
            "Failed store writes of the exporter, by event kind; retries of an "
            "unavailable store count once per failed attempt.",
            ["kind"],
            registry=reg,
        )
        self.exporter_events_dropped = Counter(
            "chatdebug_exporter_events_dropped_total",
            "Events the exporter did not write, by reason (queue_full, run_dropped, "
            "step_dropped, run_finalized, run_not_found, store_error, shutdown, "
            "spill_unreadable).",
            ["reason"],
            registry=reg,
        )
        self.exporter_write_duration = Histogram(
            "chatdebug_exporter_write_duration_seconds",
            "Time to apply one event to the store in seconds, successful writes only.",
            buckets=WRITE_DURATION_BUCKETS,
            registry=reg,
        )
        # -- spill journal and local storage -----------------------------------------
        self.spill_events = Counter(
            "chatdebug_spill_events",
            "Events the exporter handed to its spill journal instead of keeping them in "
            "memory (store unavailable, queue above half its capacity, or waiting longer "
            "than the hand-off delay).",
            registry=reg,
        )
        self.spill_replayed_events = Counter(
            "chatdebug_spill_replayed_events",
            "Events of the spill journal written to the store, those of journals left by "
            "ended processes included.",
            registry=reg,
        )
        self.spill_journal_events = Gauge(
            "chatdebug_spill_journal_events",
            "Events waiting in the spill journal.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.spill_journal_bytes = Gauge(
            "chatdebug_spill_journal_bytes",
            "Bytes of the events waiting in the spill journal.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.spill_journal_capacity = Gauge(
            "chatdebug_spill_journal_capacity_bytes",
            "Bytes the spill journal holds at most (spill_max_bytes); 0 without a journal.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.spill_replay_lag = Gauge(
            "chatdebug_spill_replay_lag_seconds",
            "Age in seconds of the oldest event waiting in the spill journal; 0 when it is empty.",
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.storage_writable = Gauge(
            "chatdebug_storage_writable",
            "0 while the local storage of target (store: the SQLite database file; "
            "journal: the spill journal) refuses writes (full, read-only, I/O errors), "
            "else 1.",
            ["target"],
            registry=reg,
            multiprocess_mode="livemin",
        )
        self.storage_failures = Counter(
            "chatdebug_storage_failures",
            "Episodes of local storage refusing writes, by target (store, journal) and "
            "reason (disk_full, read_only, io_error, cannot_open).",
            ["target", "reason"],
            registry=reg,
        )
        for target in STORAGE_TARGETS:
            self.storage_writable.labels(target=target).set(1)
            for reason in STORAGE_REASONS:
                self.storage_failures.labels(target=target, reason=reason)

        # Pre-create the label values so a fresh process exposes zeros, not missing
        # series, and rate() works before the first occurrence.
        for success in ("true", "false"):
            self.purge_iteration_duration.labels(success=success)
        for record_type in RECORD_TYPES:
            self.purge_records_removed.labels(record_type=record_type)
            self.stale_rows_finalized.labels(record_type=record_type)
        for kind in EVENT_KINDS:
            self.exporter_events_written.labels(kind=kind)
            self.exporter_write_errors.labels(kind=kind)
        for reason in DROP_REASONS:
            self.exporter_events_dropped.labels(reason=reason)

        # -- LLM traffic (OpenTelemetry GenAI metric names) ---------------------------
        self.gen_ai_operation_duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Duration of GenAI client operations (one model call, all its attempts) in "
            "seconds; error_type is empty when the call succeeded.",
            ["provider", "model", "operation", "error_type"],
            buckets=GEN_AI_DURATION_BUCKETS,
            registry=reg,
        )
        self.gen_ai_token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Tokens used per GenAI client operation, by token type (input, output, "
            "reasoning, cache_read, cache_creation).",
            ["provider", "model", "operation", "token_type"],
            buckets=GEN_AI_TOKEN_BUCKETS,
            registry=reg,
        )
        self.llm_cost = Counter(
            "chatdebug_llm_cost_usd",
            "Cost in US dollars of the priced GenAI client operations (steps without a "
            "price add nothing), from genai-prices and the configured overrides.",
            ["provider", "model"],
            registry=reg,
        )
        self.gen_ai_time_to_first_chunk = Histogram(
            "gen_ai_client_time_to_first_chunk_seconds",
            "Time from sending a streamed GenAI request to receiving its first content "
            "chunk in seconds.",
            ["provider", "model", "operation"],
            buckets=GEN_AI_DURATION_BUCKETS,
            registry=reg,
        )

        self.internal_errors = InternalErrorsCollector()
        reg.register(self.internal_errors)
        self.requests_not_recorded = RequestsNotRecordedCollector()
        reg.register(self.requests_not_recorded)
