"""Prometheus alert rules for chatdebug, with their thresholds, and the ``promtool test
rules`` cases that prove each fires when it should and stays silent when it should not.

Every rule is ``<signal> <op> <threshold>`` (optionally ``unless`` a condition): the
signal alone is what a dashboard would chart, and what the tests evaluate on a real
Prometheus to prove it returns data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["ALERTS", "Alert", "Case", "rules_document", "tests_document"]

APP: Final = {"instance": "chat-app:9465", "job": "chat-app"}
SERVE: Final = {"instance": "chatdebug-serve:9464", "job": "chatdebug-serve"}
CALL: Final = {"provider": "openai", "model": "gpt-4o", "operation": "chat", **APP}
# Label sets of the alerts that aggregate by instance.
AT_APP: Final = {"instance": APP["instance"]}
AT_SERVE: Final = {"instance": SERVE["instance"]}


@dataclass(frozen=True)
class Case:
    """One ``promtool test rules`` case: input series, the time to evaluate at, and the
    label sets of the alerts expected to fire then (none: the alert stays silent)."""

    series: dict[str, str]
    eval_time: str
    fires: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True)
class Alert:
    name: str
    signal: str
    op: str
    threshold: float
    threshold_text: str
    summary: str
    description: str
    for_: str = "0m"
    severity: str = "warning"
    guard: str = ""
    """``and …`` / ``unless …`` appended to the comparison: when the alert applies."""
    cases: tuple[Case, ...] = field(default_factory=tuple)

    @property
    def expr(self) -> str:
        expr = f"{self.signal} {self.op} {self.threshold:g}"
        return f"{expr} {self.guard}" if self.guard else expr

    def annotations(self) -> dict[str, str]:
        return {
            "summary": self.summary,
            "description": self.description,
            "threshold": self.threshold_text,
        }


def _s(metric: str, labels: dict[str, str]) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{metric}{{{inner}}}"


_PURGE_COUNT: Final = "chatdebug_purge_iteration_duration_seconds_count"
_LAST_SUCCESS: Final = "chatdebug_purge_last_success_timestamp_seconds"
_RETENTION: Final = "chatdebug_purge_retention_seconds"
_CALLS: Final = "gen_ai_client_operation_duration_seconds_count"
# By provider: a failed call carries the model it asked for (it got no answer naming one),
# an answered call the model that answered, so per-model ratios would mix the two.
_ERRORS_BY: Final = "provider"


_COST: Final = "chatdebug_llm_cost_usd_total"
LLM_SPEND_PER_HOUR_USD: Final = 50.0
"""The hourly LLM budget of ``ChatdebugLLMSpendHigh``, in US dollars: a template value,
set it to your own budget (then run ``dashboards/build.py``)."""
# Counter samples a minute apart for the rule's unit tests: spending 1.5 × and 0.45 × the
# hourly budget.
_SPEND_FAST: Final = f"0+{LLM_SPEND_PER_HOUR_USD * 1.5 / 60:g}x70"
_SPEND_SLOW: Final = f"0+{LLM_SPEND_PER_HOUR_USD * 0.45 / 60:g}x70"


def _quantile(metric: str, q: float) -> str:
    return f"histogram_quantile({q}, sum by (le, provider, model) (rate({metric}_bucket[5m])))"


def _buckets(metric: str, counts: dict[str, str]) -> dict[str, str]:
    return {_s(f"{metric}_bucket", {**CALL, "le": le}): values for le, values in counts.items()}


ALERTS: Final = (
    Alert(
        name="ChatdebugPurgeFailing",
        signal=f'sum by (instance) (increase({_PURGE_COUNT}{{success="false"}}[30m]))',
        op=">",
        threshold=0,
        threshold_text="any failed purge iteration within 30 minutes (3 default intervals)",
        summary="chatdebug retention purge is failing on {{ $labels.instance }}",
        description="A retention purge iteration failed in the last 30 minutes; old runs "
        "are not being deleted. See the logs of chatdebug serve.",
        cases=(
            Case(
                {_s(_PURGE_COUNT, {**SERVE, "success": "false"}): "0 0 1 1 1 1"}, "5m", (AT_SERVE,)
            ),
            # A failure 44 minutes ago is outside the window.
            Case({_s(_PURGE_COUNT, {**SERVE, "success": "false"}): "0 1x45"}, "45m"),
        ),
    ),
    Alert(
        name="ChatdebugPurgeStalled",
        signal=f"time() - max by (instance) ({_LAST_SUCCESS})",
        op=">",
        threshold=1800,
        threshold_text="no successful purge for 1800 s (3 intervals of 10 minutes) for 5 minutes",
        summary="No successful chatdebug purge on {{ $labels.instance }} for 3 intervals",
        description="The retention purge has not succeeded for more than 30 minutes (3 "
        "default purge intervals). Is chatdebug serve running its purge loop?",
        for_="5m",
        severity="critical",
        guard=f"unless on(instance) ({_RETENTION} == 0)",
        cases=(
            Case(
                {_s(_LAST_SUCCESS, SERVE): "60x45", _s(_RETENTION, SERVE): "2592000x45"},
                "40m",
                (AT_SERVE,),
            ),
            # A success every 10 minutes.
            Case(
                {
                    _s(_LAST_SUCCESS, SERVE): "0x9 600x10 1200x10 1800x10 2400x5",
                    _s(_RETENTION, SERVE): "2592000x45",
                },
                "40m",
            ),
            # Retention 0 disables the purge: nothing to alert about.
            Case({_s(_LAST_SUCCESS, SERVE): "60x45", _s(_RETENTION, SERVE): "0x45"}, "40m"),
        ),
    ),
    Alert(
        name="ChatdebugExporterDroppingEvents",
        signal="sum by (instance, reason) (increase(chatdebug_exporter_events_dropped_total[5m]))",
        op=">",
        threshold=0,
        threshold_text="any dropped event within 5 minutes, for 1 minute",
        summary="chatdebug is dropping events on {{ $labels.instance }} ({{ $labels.reason }})",
        description="The exporter did not write some recorded events (reason "
        "{{ $labels.reason }}): debug data is being lost.",
        for_="1m",
        cases=(
            Case(
                {
                    _s(
                        "chatdebug_exporter_events_dropped_total", {**APP, "reason": "queue_full"}
                    ): "0 0 5 10 10"
                },
                "4m",
                ({**AT_APP, "reason": "queue_full"},),
            ),
            Case(
                {
                    _s(
                        "chatdebug_exporter_events_dropped_total", {**APP, "reason": "queue_full"}
                    ): "0x10"
                },
                "10m",
            ),
        ),
    ),
    Alert(
        name="ChatdebugExporterQueueNearlyFull",
        signal="max by (instance) (chatdebug_exporter_queue_depth) "
        "/ max by (instance) (chatdebug_exporter_queue_capacity)",
        op=">",
        threshold=0.8,
        threshold_text="queue above 80 % of its capacity for 5 minutes",
        summary="chatdebug exporter queue above 80 % on {{ $labels.instance }}",
        description="The exporter's queue has been more than 80 % full for 5 minutes; when "
        "it is full, events are dropped. Is the store slow or unreachable?",
        for_="5m",
        cases=(
            Case(
                {
                    _s("chatdebug_exporter_queue_depth", APP): "9000x10",
                    _s("chatdebug_exporter_queue_capacity", APP): "10000x10",
                },
                "8m",
                (AT_APP,),
            ),
            # A short burst above 80 % does not page.
            Case(
                {
                    _s("chatdebug_exporter_queue_depth", APP): "7000 9500 9500 7000x7",
                    _s("chatdebug_exporter_queue_capacity", APP): "10000x10",
                },
                "8m",
            ),
        ),
    ),
    Alert(
        name="ChatdebugStoreWriteErrors",
        signal="sum by (instance) (increase(chatdebug_exporter_write_errors_total[5m]))",
        op=">",
        threshold=0,
        threshold_text="store write errors in every 5-minute window for 2 minutes",
        summary="chatdebug cannot write to its store from {{ $labels.instance }}",
        description="The exporter's store writes are failing; events are retried and "
        "queued, then dropped when the queue fills.",
        for_="2m",
        cases=(
            Case(
                {
                    _s(
                        "chatdebug_exporter_write_errors_total", {**APP, "kind": "run_create"}
                    ): "0 1 2 3 4 5 6"
                },
                "5m",
                (AT_APP,),
            ),
            Case(
                {
                    _s(
                        "chatdebug_exporter_write_errors_total", {**APP, "kind": "run_create"}
                    ): "0x10"
                },
                "10m",
            ),
        ),
    ),
    Alert(
        name="ChatdebugStoreUnreachable",
        signal="min by (instance) (chatdebug_store_reachable)",
        op="<",
        threshold=1,
        threshold_text="the exporter's store unreachable for 2 minutes",
        summary="chatdebug on {{ $labels.instance }} cannot reach its store",
        description="The exporter's store operations have failed for 2 minutes: recorded "
        "events wait in its queue and are dropped once it is full.",
        for_="2m",
        severity="critical",
        # Only processes that run an exporter (a queue with a capacity) report it.
        guard="and on(instance) (max by (instance) (chatdebug_exporter_queue_capacity) > 0)",
        cases=(
            Case(
                {
                    _s("chatdebug_store_reachable", APP): "1 1 0 0 0 0 0",
                    _s("chatdebug_exporter_queue_capacity", APP): "10000x6",
                },
                "6m",
                (AT_APP,),
            ),
            # One failed write between good ones does not page.
            Case(
                {
                    _s("chatdebug_store_reachable", APP): "1 0 1 1 1 1",
                    _s("chatdebug_exporter_queue_capacity", APP): "10000x5",
                },
                "5m",
            ),
            # A process without an exporter (chatdebug serve) exposes the gauge at 0.
            Case(
                {
                    _s("chatdebug_store_reachable", SERVE): "0x6",
                    _s("chatdebug_exporter_queue_capacity", SERVE): "0x6",
                },
                "6m",
            ),
        ),
    ),
    Alert(
        name="ChatdebugExporterEventsDelayed",
        signal="max by (instance) (chatdebug_exporter_oldest_event_age_seconds)",
        op=">",
        threshold=60,
        threshold_text="oldest queued event older than 60 s for 5 minutes",
        summary="chatdebug events wait more than a minute on {{ $labels.instance }}",
        description="Events have been waiting more than 60 s in the exporter's queue for 5 "
        "minutes: the store is slow or unreachable, debug data is late.",
        for_="5m",
        cases=(
            Case(
                {
                    _s(
                        "chatdebug_exporter_oldest_event_age_seconds", APP
                    ): "0 30 90 150 210 270 330 390 450"
                },
                "8m",
                (AT_APP,),
            ),
            Case({_s("chatdebug_exporter_oldest_event_age_seconds", APP): "0 1 0 2 0x5"}, "8m"),
        ),
    ),
    Alert(
        name="ChatdebugLLMErrorRatioHigh",
        signal=(
            f'(sum by ({_ERRORS_BY}) (rate({_CALLS}{{error_type!=""}}[5m])) '
            f"or sum by ({_ERRORS_BY}) (rate({_CALLS}[5m])) * 0) "
            f"/ sum by ({_ERRORS_BY}) (rate({_CALLS}[5m]))"
        ),
        op=">",
        threshold=0.05,
        threshold_text="more than 5 % of a provider's calls failing for 10 minutes",
        summary="{{ $labels.provider }}: more than 5 % of model calls fail",
        description="More than 5 % of the model calls to {{ $labels.provider }} have failed "
        "for 10 minutes; the LLM traffic dashboard's error ratio shows which models.",
        for_="10m",
        cases=(
            Case(
                {
                    _s(_CALLS, {**CALL, "error_type": ""}): "0+90x30",
                    _s(_CALLS, {**CALL, "error_type": "RateLimitError"}): "0+10x30",
                },
                "20m",
                ({"provider": "openai"},),
            ),
            Case(
                {
                    _s(_CALLS, {**CALL, "error_type": ""}): "0+98x30",
                    _s(_CALLS, {**CALL, "error_type": "RateLimitError"}): "0+2x30",
                },
                "20m",
            ),
        ),
    ),
    Alert(
        name="ChatdebugLLMLatencyHigh",
        signal=_quantile("gen_ai_client_operation_duration_seconds", 0.95),
        op=">",
        threshold=30,
        threshold_text="p95 call latency above 30 s for 10 minutes",
        summary="{{ $labels.provider }} {{ $labels.model }}: p95 latency above 30 s",
        description="The 95th percentile duration of calls to {{ $labels.model }} has been "
        "above 30 s for 10 minutes.",
        for_="10m",
        cases=(
            Case(
                _buckets(
                    "gen_ai_client_operation_duration_seconds",
                    {"10.24": "0x30", "20.48": "0x30", "40.96": "0+10x30", "+Inf": "0+10x30"},
                ),
                "20m",
                ({"provider": "openai", "model": "gpt-4o"},),
            ),
            Case(
                _buckets(
                    "gen_ai_client_operation_duration_seconds",
                    {"10.24": "0+10x30", "20.48": "0+10x30", "40.96": "0+10x30", "+Inf": "0+10x30"},
                ),
                "20m",
            ),
        ),
    ),
    Alert(
        name="ChatdebugTimeToFirstChunkHigh",
        signal=_quantile("gen_ai_client_time_to_first_chunk_seconds", 0.95),
        op=">",
        threshold=5,
        threshold_text="p95 time to first chunk above 5 s for 10 minutes",
        summary="{{ $labels.provider }} {{ $labels.model }}: p95 time to first chunk above 5 s",
        description="Streams from {{ $labels.model }} have taken more than 5 s to send "
        "their first chunk (95th percentile) for 10 minutes.",
        for_="10m",
        cases=(
            Case(
                _buckets(
                    "gen_ai_client_time_to_first_chunk_seconds",
                    {"2.56": "0x30", "5.12": "0x30", "10.24": "0+10x30", "+Inf": "0+10x30"},
                ),
                "20m",
                ({"provider": "openai", "model": "gpt-4o"},),
            ),
            Case(
                _buckets(
                    "gen_ai_client_time_to_first_chunk_seconds",
                    {"2.56": "0+10x30", "5.12": "0+10x30", "10.24": "0+10x30", "+Inf": "0+10x30"},
                ),
                "20m",
            ),
        ),
    ),
    Alert(
        name="ChatdebugLLMSpendHigh",
        signal=f"sum(increase({_COST}[1h]))",
        op=">",
        threshold=LLM_SPEND_PER_HOUR_USD,
        threshold_text=f"more than ${LLM_SPEND_PER_HOUR_USD:g} spent on model calls within "
        "an hour (a template: set LLM_SPEND_PER_HOUR_USD in dashboards/alerts.py to your "
        "budget and run dashboards/build.py)",
        summary=f"LLM spend above ${LLM_SPEND_PER_HOUR_USD:g} in the last hour",
        description="The priced model calls of the last hour cost more than "
        f"${LLM_SPEND_PER_HOUR_USD:g} (steps without a price add nothing, so the real spend "
        "may be higher); the LLM traffic dashboard's cost panel shows which models.",
        cases=(
            # Relative to the budget, so the tests hold for any value of it: 1.5 × the
            # budget an hour from one model fires.
            Case(
                {_s(_COST, {**APP, "provider": "openai", "model": "gpt-4o"}): _SPEND_FAST},
                "65m",
                ({},),
            ),
            # Two models at 0.45 × the budget an hour each (0.9 × together) stay silent.
            Case(
                {
                    _s(_COST, {**APP, "provider": "openai", "model": "gpt-4o"}): _SPEND_SLOW,
                    _s(_COST, {**APP, "provider": "anthropic", "model": "claude-opus-4-6"}): (
                        _SPEND_SLOW
                    ),
                },
                "65m",
            ),
        ),
    ),
    Alert(
        name="ChatdebugSpillJournalNearlyFull",
        signal="max by (instance) (chatdebug_spill_journal_bytes) "
        "/ max by (instance) (chatdebug_spill_journal_capacity_bytes > 0)",
        op=">",
        threshold=0.8,
        threshold_text="spill journal above 80 % of spill_max_bytes for 5 minutes",
        summary="chatdebug spill journal above 80 % on {{ $labels.instance }}",
        description="Events the store could not take are filling the local spill journal; "
        "once it is full, events wait in memory and are then dropped. Is the store down?",
        for_="5m",
        cases=(
            Case(
                {
                    _s("chatdebug_spill_journal_bytes", APP): "0 9e8x10",
                    _s("chatdebug_spill_journal_capacity_bytes", APP): "1e9x10",
                },
                "8m",
                (AT_APP,),
            ),
            # Filling, then draining again within 5 minutes.
            Case(
                {
                    _s("chatdebug_spill_journal_bytes", APP): "0 9e8 9e8 1e6x7",
                    _s("chatdebug_spill_journal_capacity_bytes", APP): "1e9x10",
                },
                "8m",
            ),
        ),
    ),
    Alert(
        name="ChatdebugSpillReplayLagging",
        signal="max by (instance) (chatdebug_spill_replay_lag_seconds)",
        op=">",
        threshold=600,
        threshold_text="the oldest event in the spill journal older than 600 s for 5 minutes",
        summary="chatdebug events wait in the spill journal on {{ $labels.instance }}",
        description="The oldest event of the spill journal has waited more than 10 minutes: "
        "the store has not taken it back (down, or slower than the traffic). Nothing is "
        "lost while the journal has room; viewers do not see these runs yet.",
        for_="5m",
        cases=(
            Case({_s("chatdebug_spill_replay_lag_seconds", APP): "0 300+60x12"}, "12m", (AT_APP,)),
            # A replay that catches up within minutes.
            Case({_s("chatdebug_spill_replay_lag_seconds", APP): "0 60 120 180 0x8"}, "12m"),
        ),
    ),
    Alert(
        name="ChatdebugLocalStorageUnwritable",
        signal="min by (instance, target) (chatdebug_storage_writable)",
        op="<",
        threshold=1,
        threshold_text="the SQLite store's or the spill journal's file system refuses writes "
        "for 1 minute",
        summary="chatdebug cannot write its {{ $labels.target }} on {{ $labels.instance }}",
        description="The file system of chatdebug's {{ $labels.target }} is full or "
        "read-only; the application goes on, and writing resumes by itself once space is "
        "freed, but events wait in memory meanwhile.",
        for_="1m",
        severity="critical",
        cases=(
            Case(
                {_s("chatdebug_storage_writable", {**APP, "target": "store"}): "1 0 0 0 0"},
                "4m",
                ({**AT_APP, "target": "store"},),
            ),
            Case({_s("chatdebug_storage_writable", {**APP, "target": "journal"}): "1x5"}, "4m"),
        ),
    ),
)
"""Every alert rule, in the order of the rules file."""


def rules_document() -> dict[str, Any]:
    """The Prometheus rules file (``alerts.yml``)."""
    return {
        "groups": [
            {
                "name": "chatdebug",
                "rules": [
                    {
                        "alert": a.name,
                        "expr": a.expr,
                        "for": a.for_,
                        "labels": {"severity": a.severity},
                        "annotations": a.annotations(),
                    }
                    for a in ALERTS
                ],
            }
        ]
    }


_LABEL_REF = re.compile(r"\{\{ \$labels\.(\w+) \}\}")


def _render(text: str, labels: dict[str, str]) -> str:
    return _LABEL_REF.sub(lambda m: labels.get(m[1], ""), text)


def tests_document(rules_file: str) -> dict[str, Any]:
    """The ``promtool test rules`` file: every case of every alert."""
    tests = []
    for a in ALERTS:
        for case in a.cases:
            tests.append(
                {
                    "interval": "1m",
                    "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
                    "alert_rule_test": [
                        {
                            "eval_time": case.eval_time,
                            "alertname": a.name,
                            "exp_alerts": [
                                {
                                    "exp_labels": {**labels, "severity": a.severity},
                                    "exp_annotations": {
                                        k: _render(v, labels) for k, v in a.annotations().items()
                                    },
                                }
                                for labels in case.fires
                            ],
                        }
                    ],
                }
            )
    return {"rule_files": [rules_file], "evaluation_interval": "1m", "tests": tests}
