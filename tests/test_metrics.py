"""chatdebug.metrics: names, labels, registry handling and promtool lint."""

from __future__ import annotations

import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from chatdebug._safety import internal_error_counts, log_internal_error
from chatdebug.metrics import DROP_REASONS, TOKEN_TYPES, Metrics
from tests.support import require_tool


def observe_everything(metrics: Metrics) -> None:
    metrics.purge_iteration_duration.labels(success="true").observe(2.5)
    metrics.purge_iteration_duration.labels(success="false").observe(0.1)
    metrics.purge_records_removed.labels(record_type="chat_debug_runs").inc(3)
    metrics.purge_records_removed.labels(record_type="chat_debug_steps").inc(9)
    metrics.purge_last_success_timestamp.set(1_777_000_000)
    metrics.stale_rows_finalized.labels(record_type="chat_debug_runs").inc()
    metrics.exporter_queue_depth.inc(4)
    metrics.exporter_events_written.labels(kind="run_create").inc()
    metrics.exporter_write_errors.labels(kind="step_update").inc()
    metrics.exporter_events_dropped.labels(reason="queue_full").inc(2)
    metrics.exporter_write_duration.observe(0.003)
    labels = {"provider": "openai", "model": "gpt-4o", "operation": "chat"}
    metrics.gen_ai_operation_duration.labels(**labels, error_type="").observe(1.2)
    for token_type in TOKEN_TYPES:
        metrics.gen_ai_token_usage.labels(**labels, token_type=token_type).observe(100)
    metrics.gen_ai_time_to_first_chunk.labels(**labels).observe(0.3)
    metrics.llm_cost.labels(provider="openai", model="gpt-4o").inc(0.25)


def test_nothing_registered_on_import_and_private_registry_by_default() -> None:
    first, second = Metrics(), Metrics()  # no clash: each has its own registry
    assert first.registry is not second.registry
    assert first.registry.get_sample_value("chatdebug_exporter_queue_depth") == 0


def test_registering_twice_on_one_registry_raises() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    with pytest.raises(ValueError, match="Duplicated"):
        Metrics(registry)


def test_samples() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    observe_everything(metrics)
    get = registry.get_sample_value
    assert get("chatdebug_purge_iteration_duration_seconds_count", {"success": "true"}) == 1
    assert (
        get("chatdebug_purge_iteration_duration_seconds_bucket", {"success": "true", "le": "5.0"})
        == 1
    )
    assert get("chatdebug_purge_iteration_duration_seconds_bucket",
               {"success": "true", "le": "1.0"}) == 0  # fmt: skip
    assert get("chatdebug_purge_records_removed_total", {"record_type": "chat_debug_steps"}) == 9
    assert get("chatdebug_purge_last_success_timestamp_seconds") == 1_777_000_000
    assert get("chatdebug_stale_rows_finalized_total", {"record_type": "chat_debug_runs"}) == 1
    assert get("chatdebug_exporter_queue_depth") == 4
    assert get("chatdebug_exporter_events_written_total", {"kind": "run_create"}) == 1
    assert get("chatdebug_exporter_write_errors_total", {"kind": "step_update"}) == 1
    assert get("chatdebug_exporter_events_dropped_total", {"reason": "queue_full"}) == 2
    assert get("chatdebug_exporter_write_duration_seconds_count") == 1
    labels = {"provider": "openai", "model": "gpt-4o", "operation": "chat"}
    assert get("gen_ai_client_operation_duration_seconds_sum", {**labels, "error_type": ""}) == 1.2
    assert get("gen_ai_client_token_usage_count", {**labels, "token_type": "cache_creation"}) == 1
    assert get("gen_ai_client_time_to_first_chunk_seconds_count", labels) == 1
    assert get("chatdebug_llm_cost_usd_total", {"provider": "openai", "model": "gpt-4o"}) == 0.25


def test_drop_reasons_exist_before_the_first_drop() -> None:
    metrics = Metrics()
    for reason in DROP_REASONS:
        value = metrics.registry.get_sample_value(
            "chatdebug_exporter_events_dropped_total", {"reason": reason}
        )
        assert value == 0


def test_internal_errors_are_read_at_scrape_time() -> None:
    metrics = Metrics()
    before = internal_error_counts().get("metrics_test", 0)
    log_internal_error("metrics_test", RuntimeError("boom"))
    log_internal_error("metrics_test", RuntimeError("boom"))
    value = metrics.registry.get_sample_value(
        "chatdebug_internal_errors_total", {"component": "metrics_test"}
    )
    assert value == before + 2
    assert b"# HELP chatdebug_internal_errors_total" in generate_latest(metrics.registry)


@pytest.mark.slow
def test_promtool_check_metrics() -> None:
    promtool = require_tool("promtool")
    metrics = Metrics()
    observe_everything(metrics)
    log_internal_error("metrics_test", RuntimeError("lint"))
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=generate_latest(metrics.registry),
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
