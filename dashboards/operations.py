"""The "chatdebug operations" dashboard: the exporter inside the application (queue,
writes, drops, errors, its spill journal and local storage) and the scheduled work of
``chatdebug serve`` (retention purge, stale finalization, store reachability)."""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.builders import common, dashboard, stat, timeseries
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model

from ._common import PROMETHEUS, RATE, PanelIds, legend, prom

__all__ = ["RETENTION", "UID", "build"]

UID: Final = "chatdebug-operations"
RETENTION: Final = "chatdebug_purge_retention_seconds"
"""Gauge of the retention in force (seconds; 0 disables the purge), from ``chatdebug serve``."""


def _series(title: str, description: str, unit: str, ids: PanelIds) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .id(ids())
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(PROMETHEUS)
        .span(8)
        .height(8)
        .legend(legend())
    )


def _stat(title: str, description: str, unit: str, expr: str, ids: PanelIds) -> stat.Panel:
    return (
        stat.Panel()
        .id(ids())
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(PROMETHEUS)
        .span(6)
        .height(5)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .graph_mode(common_model.BigValueGraphMode.AREA)
        .color_mode(common_model.BigValueColorMode.VALUE)
        .with_target(prom(expr, "{{instance}}"))
    )


def _exporter(ids: PanelIds) -> list[timeseries.Panel]:
    return [
        _series(
            "Exporter queue depth vs capacity",
            "Events waiting to be written, against the queue's capacity; at capacity new "
            "events are dropped (reason queue_full).",
            "short",
            ids,
        )
        .with_target(
            prom("max by (instance) (chatdebug_exporter_queue_depth)", "depth {{instance}}")
        )
        .with_target(
            prom(
                "max by (instance) (chatdebug_exporter_queue_capacity)",
                "capacity {{instance}}",
                "B",
            )
        ),
        _series(
            "Events written per second by kind",
            "Store writes of the exporter: run and step creations, updates, heartbeats.",
            "ops",
            ids,
        ).with_target(
            prom(
                f"sum by (kind) (rate(chatdebug_exporter_events_written_total[{RATE}]))", "{{kind}}"
            )
        ),
        _series(
            "Store write latency p95",
            "95th percentile of the time one event takes to reach the store.",
            "s",
            ids,
        ).with_target(
            prom(
                "histogram_quantile(0.95, sum by (le, instance) "
                f"(rate(chatdebug_exporter_write_duration_seconds_bucket[{RATE}])))",
                "p95 {{instance}}",
            )
        ),
        _series(
            "Events dropped per second by reason",
            "Events not written: queue full, store error, shutdown, run finalized or "
            "missing, … Anything above zero is recorded data lost.",
            "ops",
            ids,
        ).with_target(
            prom(
                f"sum by (reason) (rate(chatdebug_exporter_events_dropped_total[{RATE}]))",
                "{{reason}}",
            )
        ),
        _series(
            "Store write errors per second",
            "Failed store writes by event kind (an unavailable store counts each retry).",
            "ops",
            ids,
        ).with_target(
            prom(f"sum by (kind) (rate(chatdebug_exporter_write_errors_total[{RATE}]))", "{{kind}}")
        ),
        _series(
            "Internal errors per second by component",
            "chatdebug's own failures, logged and swallowed so the application kept running.",
            "ops",
            ids,
        ).with_target(
            prom(
                f"sum by (component) (rate(chatdebug_internal_errors_total[{RATE}]))",
                "{{component}}",
            )
        ),
    ]


def _purge(ids: PanelIds) -> list[stat.Panel | timeseries.Panel]:
    return [
        _stat(
            "Time since last successful purge",
            "Seconds since the retention purge last succeeded; expect less than the purge "
            "interval (10 minutes by default).",
            "s",
            "time() - (max by (instance) (chatdebug_purge_last_success_timestamp_seconds) > 0)",
            ids,
        ),
        _stat(
            "Retention in force",
            "How long runs are kept since their last update, as the last purge iteration "
            "read it (0: the purge is disabled).",
            "s",
            f"max by (instance) ({RETENTION})",
            ids,
        ),
        _stat(
            "Store reachable",
            "1 when the exporter's last store operation reached the database, 0 while it "
            "cannot (only processes that record: the application).",
            "bool",
            "min by (instance) (chatdebug_store_reachable) and on(instance) "
            "(max by (instance) (chatdebug_exporter_queue_capacity) > 0)",
            ids,
        ),
        _stat(
            "Oldest queued event",
            "Age of the oldest event waiting in the exporter's queue (0 when empty).",
            "s",
            "max by (instance) (chatdebug_exporter_oldest_event_age_seconds)",
            ids,
        ),
        _series(
            "Purge iterations by outcome",
            "Purge iterations per second that succeeded (true) or failed (false); a tick "
            "that found another replica purging records nothing.",
            "ops",
            ids,
        ).with_target(
            prom(
                "sum by (success) "
                f"(rate(chatdebug_purge_iteration_duration_seconds_count[{RATE}]))",
                "success={{success}}",
            )
        ),
        _series(
            "Runs and steps removed per purge iteration",
            "Records the purge removed, per successful iteration (at most 1,000 runs each; "
            "steps go with their runs).",
            "short",
            ids,
        ).with_target(
            prom(
                f"sum by (record_type) (rate(chatdebug_purge_records_removed_total[{RATE}])) "
                "/ on() group_left() sum(rate(chatdebug_purge_iteration_duration_seconds_count"
                f'{{success="true"}}[{RATE}]))',
                "{{record_type}}",
            )
        ),
        _series(
            "Stale rows finalized",
            "Runs and steps left in progress without a heartbeat for the stale threshold "
            "and marked interrupted, per second.",
            "ops",
            ids,
        ).with_target(
            prom(
                f"sum by (record_type) (rate(chatdebug_stale_rows_finalized_total[{RATE}]))",
                "{{record_type}}",
            )
        ),
    ]


def _spill(ids: PanelIds) -> list[stat.Panel | timeseries.Panel]:
    return [
        _series(
            "Events spilled and replayed per second",
            "Events handed to the local spill journal instead of waiting in memory (store "
            "unavailable, queue above half, or waiting past the hand-off delay), and events "
            "written from it back into the store.",
            "ops",
            ids,
        )
        .with_target(
            prom(
                f"sum by (instance) (rate(chatdebug_spill_events_total[{RATE}]))",
                "spilled {{instance}}",
            )
        )
        .with_target(
            prom(
                f"sum by (instance) (rate(chatdebug_spill_replayed_events_total[{RATE}]))",
                "replayed {{instance}}",
                "B",
            )
        ),
        _series(
            "Spill journal size vs capacity",
            "Bytes of events waiting in the journal, against spill_max_bytes; when it is "
            "full, events wait in the queue and are dropped once that is full too.",
            "bytes",
            ids,
        )
        .with_target(prom("max by (instance) (chatdebug_spill_journal_bytes)", "size {{instance}}"))
        .with_target(
            prom(
                "max by (instance) (chatdebug_spill_journal_capacity_bytes)",
                "capacity {{instance}}",
                "B",
            )
        ),
        _series(
            "Replay lag",
            "Age of the oldest event waiting in the spill journal (0 when empty): how long "
            "a run may be missing from the viewer.",
            "s",
            ids,
        ).with_target(
            prom("max by (instance) (chatdebug_spill_replay_lag_seconds)", "{{instance}}")
        ),
        _stat(
            "Local storage writable",
            "0 while the file system of the SQLite store or of the spill journal refuses "
            "writes (full, read-only); writing resumes by itself.",
            "bool",
            "min by (instance, target) (chatdebug_storage_writable)",
            ids,
        ),
        _series(
            "Local storage failures",
            "Episodes of the SQLite store's or the journal's file system refusing writes, "
            "by target and reason, per second.",
            "ops",
            ids,
        ).with_target(
            prom(
                f"sum by (target, reason) (rate(chatdebug_storage_failures_total[{RATE}]))",
                "{{target}} {{reason}}",
            )
        ),
    ]


def build() -> dashboard.Dashboard:
    """The dashboard builder (``build().build()`` is the model to serialize)."""
    ids = PanelIds()
    board = (
        dashboard.Dashboard("chatdebug: operations")
        .uid(UID)
        .description("Health of chatdebug's exporter, retention purge and stale finalization.")
        .tags(["chatdebug", "operations"])
        .time("now-6h", "now")
        .refresh("30s")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .with_row(dashboard.Row("Exporter (inside the application)").id(ids()))
    )
    for panel in _exporter(ids):
        board.with_panel(panel)
    board.with_row(
        dashboard.Row("Spill journal and local storage (inside the application)").id(ids())
    )
    for entry in _spill(ids):
        board.with_panel(entry)
    board.with_row(
        dashboard.Row("Retention purge and stale finalization (chatdebug serve)").id(ids())
    )
    for item in _purge(ids):
        board.with_panel(item)
    return board
