"""The "LLM traffic" dashboard: calls, errors, latency, time to first chunk and tokens of
the application's model calls, from the ``gen_ai_client_*`` histograms, and their cost
from the ``chatdebug_llm_cost_usd_total`` counter."""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.builders import dashboard, timeseries
from grafana_foundation_sdk.models import dashboard as model

from ._common import PROMETHEUS, RATE, PanelIds, legend, prom

__all__ = ["UID", "build"]

UID: Final = "chatdebug-llm-traffic"

SELECTOR: Final = 'provider=~"$provider", model=~"$model"'
CALLS_METRIC: Final = "gen_ai_client_operation_duration_seconds_count"
CALLS: Final = f"{CALLS_METRIC}{{{SELECTOR}}}"
BY: Final = "provider, model, operation"
COST: Final = f"chatdebug_llm_cost_usd_total{{{SELECTOR}}}"


def _variable(name: str, query: str) -> dashboard.QueryVariable:
    # "All" is the regex .* rather than the list of known values, so series whose label
    # is empty (a provider we could not name) are counted too.
    return (
        dashboard.QueryVariable(name)
        .label(name.capitalize())
        .datasource(PROMETHEUS)
        .query(query)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )


def _series(title: str, description: str, unit: str, ids: PanelIds) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .id(ids())
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(PROMETHEUS)
        .span(12)
        .height(8)
        .legend(legend())
    )


def _quantile(q: float, metric: str, by: str) -> str:
    return (
        f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{SELECTOR}}}[{RATE}])))"
    )


def build() -> dashboard.Dashboard:
    """The dashboard builder (``build().build()`` is the model to serialize)."""
    ids = PanelIds()
    calls = _series(
        "Calls per second",
        "Model calls per second (one call = one step, all its retries) by provider, model "
        "and operation.",
        "reqps",
        ids,
    ).with_target(
        prom(f"sum by ({BY}) (rate({CALLS}[{RATE}]))", "{{provider}} {{model}} {{operation}}")
    )
    errors = (
        _series(
            "Error ratio",
            "Share of calls that failed (error_type set), by provider, model and operation. "
            "Series without errors show 0.",
            "percentunit",
            ids,
        )
        .min(0)
        .with_target(
            prom(
                f"(sum by ({BY}) (rate(gen_ai_client_operation_duration_seconds_count"
                f'{{{SELECTOR}, error_type!=""}}[{RATE}])) or sum by ({BY}) '
                f"(rate({CALLS}[{RATE}])) * 0) / sum by ({BY}) (rate({CALLS}[{RATE}]))",
                "{{provider}} {{model}} {{operation}}",
            )
        )
    )
    latency = _series(
        "Call latency p50 / p95 / p99",
        "Duration of a model call from request to the end of the response (streams "
        "included), by provider and model.",
        "s",
        ids,
    )
    for ref, q in (("A", 0.5), ("B", 0.95), ("C", 0.99)):
        latency.with_target(
            prom(
                _quantile(q, "gen_ai_client_operation_duration_seconds", "provider, model"),
                f"p{round(q * 100)} {{{{provider}}}} {{{{model}}}}",
                ref,
            )
        )
    ttfc = _series(
        "Time to first chunk p50 / p95",
        "For streamed calls: time from sending the request to the first content chunk, by "
        "provider and model.",
        "s",
        ids,
    )
    for ref, q in (("A", 0.5), ("B", 0.95)):
        ttfc.with_target(
            prom(
                _quantile(q, "gen_ai_client_time_to_first_chunk_seconds", "provider, model"),
                f"p{round(q * 100)} {{{{provider}}}} {{{{model}}}}",
                ref,
            )
        )
    tokens = (
        _series(
            "Tokens per second by model and token type",
            "Tokens used per second (input, output, reasoning, cache read, cache creation) "
            "by model.",
            "suffix: tokens/s",
            ids,
        )
        .span(24)
        .with_target(
            prom(
                f"sum by (model, token_type) (rate(gen_ai_client_token_usage_sum"
                f"{{{SELECTOR}}}[{RATE}]))",
                "{{model}} {{token_type}}",
            )
        )
    )
    cost = (
        _series(
            "Cost per hour by model",
            "Dollars per hour spent on model calls, by model, at the rate of the last few "
            "scrapes (priced steps only: calls without usage or without a known price add "
            "nothing, so this is a lower bound when some are unpriced).",
            "currencyUSD",
            ids,
        )
        .span(24)
        .min(0)
        .with_target(prom(f"sum by (model) (rate({COST}[{RATE}])) * 3600", "{{model}}"))
    )
    return (
        dashboard.Dashboard("chatdebug: LLM traffic")
        .uid(UID)
        .description("Model calls of applications instrumented with chatdebug.")
        .tags(["chatdebug", "llm"])
        .time("now-6h", "now")
        .refresh("30s")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .with_variable(_variable("provider", f"label_values({CALLS_METRIC}, provider)"))
        .with_variable(
            _variable(
                "model",
                f'label_values({CALLS_METRIC}{{provider=~"$provider"}}, model)',
            )
        )
        .with_panel(calls)
        .with_panel(errors)
        .with_panel(latency)
        .with_panel(ttfc)
        .with_panel(tokens)
        .with_panel(cost)
    )
