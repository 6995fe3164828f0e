"""The "chatdebug runs" dashboard: recorded runs read from the chatdebug PostgreSQL
database (tables ``chat_debug_runs`` and ``chat_debug_steps``).

Queries use Grafana's SQL macros (``$__timeFilter``, ``$__timeGroupAlias``) and select
runs and steps by ``started_at`` within the dashboard's time range; both columns are
indexed (migration 0003).

Token columns sum the usage the providers reported and are empty where none was: a step
without usage has unknown tokens, never 0. Steps whose provider sent no usage (their
metadata says why, ``usage_unavailable``) are counted beside the sums.

Cost columns likewise sum the steps' ``metadata.cost.total_usd`` (written by chatdebug's
pricing) and are empty where no step was priced; averages are over priced steps only, so
a step without a cost (``metadata.cost_unavailable``) never counts as $0. Unpriced steps
are counted beside the sums. Runs carry the sum in ``summary.total_cost_usd``.
"""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.builders import dashboard, table, timeseries
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model

from ._common import POSTGRES, PanelIds, legend, sql

__all__ = ["QUERIES", "STALE_VARIABLE", "UID", "build"]

UID: Final = "chatdebug-runs"
STALE_VARIABLE: Final = "stale_threshold_seconds"


def _tokens(key: str) -> str:
    """A token count of a step's usage JSON; NULL when absent or not a number (a
    malformed payload must not fail the whole panel)."""
    return (
        f"CASE WHEN jsonb_typeof(s.usage -> '{key}') = 'number' "
        f"THEN (s.usage ->> '{key}')::numeric END"
    )


_UNREPORTED: Final = "s.metadata -> 'usage_unavailable' IS NOT NULL"
"""A step whose provider sent no usage."""
_STEPS_OF_RUN: Final = "(SELECT count(*) FROM chat_debug_steps AS s WHERE s.run_id = r.id)"
# NULL (an empty cell) when no step of the run reported usage.
_RUN_TOKENS: Final = (
    "(SELECT sum(COALESCE("
    + _tokens("input_tokens")
    + ", 0) + COALESCE("
    + _tokens("output_tokens")
    + ", 0)) FILTER (WHERE jsonb_typeof(s.usage) = 'object') "
    "FROM chat_debug_steps AS s WHERE s.run_id = r.id)"
)
_RUN_UNREPORTED: Final = (
    f"(SELECT count(*) FROM chat_debug_steps AS s WHERE s.run_id = r.id AND {_UNREPORTED})"
)


def _number(expr: str, path: str) -> str:
    """The number at ``path`` (``'a' -> 'b'``) of a JSONB column; NULL when absent or not
    a number."""
    *parents, last = path.split(" -> ")
    parent = " -> ".join([expr, *parents])
    return (
        f"CASE WHEN jsonb_typeof({parent} -> {last}) = 'number' "
        f"THEN ({parent} ->> {last})::numeric END"
    )


_STEP_COST: Final = _number("s.metadata", "'cost' -> 'total_usd'")
"""A step's cost in dollars; NULL when it was not priced."""
_UNPRICED: Final = "s.metadata -> 'cost_unavailable' IS NOT NULL"
"""A step that chatdebug could not price (no usage, or no price for its model)."""
_RUN_COST: Final = _number("r.summary", "'total_cost_usd'")
_RUN_UNPRICED: Final = "COALESCE(" + _number("r.summary", "'unpriced_step_count'") + ", 0)"
_COST_COLUMNS: Final = (
    f'sum({_STEP_COST}) AS "cost",\n'
    f'  count({_STEP_COST}) AS "priced calls",\n'
    f'  avg({_STEP_COST}) AS "average cost per priced call",\n'
    f'  count(*) FILTER (WHERE {_UNPRICED}) AS "unpriced calls"'
)
_BY_COST: Final = f"COALESCE(sum({_STEP_COST}), 0) DESC"

_DURATION_MS: Final = "(EXTRACT(EPOCH FROM (r.finished_at - r.started_at)) * 1000)::bigint"
_LAST_ERROR: Final = (
    "(SELECT s.error ->> 'message' FROM chat_debug_steps AS s WHERE s.run_id = r.id "
    "AND jsonb_typeof(s.error) = 'object' ORDER BY s.step_number DESC LIMIT 1)"
)

RECENT_RUNS: Final = f"""
SELECT
  r.started_at AS "started",
  r.status AS "status",
  r.kind AS "kind",
  r.model AS "model",
  {_STEPS_OF_RUN} AS "steps",
  {_RUN_TOKENS} AS "tokens",
  {_RUN_UNREPORTED} AS "steps without usage",
  {_DURATION_MS} AS "duration",
  r.summary ->> 'first_message' AS "first message",
  r.chat_id AS "chat",
  r.id::text AS "run"
FROM chat_debug_runs AS r
WHERE $__timeFilter(r.started_at)
ORDER BY r.started_at DESC, r.id DESC
LIMIT 100
"""

FAILING_RUNS: Final = f"""
SELECT
  r.started_at AS "started",
  r.status AS "status",
  r.kind AS "kind",
  r.model AS "model",
  {_LAST_ERROR} AS "last error",
  r.summary ->> 'first_message' AS "first message",
  r.chat_id AS "chat",
  r.id::text AS "run"
FROM chat_debug_runs AS r
WHERE $__timeFilter(r.started_at)
  AND (r.status IN ('error', 'interrupted') OR r.summary ->> 'has_error' = 'true')
ORDER BY r.started_at DESC, r.id DESC
LIMIT 100
"""

# Shown: NULL when no step reported usage; sorted: as 0.
_INPUT: Final = f"sum({_tokens('input_tokens')})"
_OUTPUT: Final = f"sum({_tokens('output_tokens')})"
_SIZE: Final = f"COALESCE({_INPUT}, 0) + COALESCE({_OUTPUT}, 0)"
_CALLS_UNREPORTED: Final = f"count(*) FILTER (WHERE {_UNREPORTED})"

TOKENS_BY_CHAT: Final = f"""
SELECT
  s.chat_id AS "chat",
  {_INPUT} AS "input tokens",
  {_OUTPUT} AS "output tokens",
  count(DISTINCT s.run_id) AS "runs",
  {_CALLS_UNREPORTED} AS "calls without usage"
FROM chat_debug_steps AS s
WHERE $__timeFilter(s.started_at)
GROUP BY s.chat_id
ORDER BY {_SIZE} DESC, s.chat_id
LIMIT 20
"""

TOKENS_BY_MODEL: Final = f"""
SELECT
  COALESCE(s.model, '(unknown)') AS "model",
  {_INPUT} AS "input tokens",
  {_OUTPUT} AS "output tokens",
  count(*) AS "calls",
  {_CALLS_UNREPORTED} AS "calls without usage"
FROM chat_debug_steps AS s
WHERE $__timeFilter(s.started_at)
GROUP BY 1
ORDER BY {_SIZE} DESC, 1
"""

COST_BY_CHAT: Final = f"""
SELECT
  s.chat_id AS "chat",
  {_COST_COLUMNS},
  count(DISTINCT s.run_id) AS "runs"
FROM chat_debug_steps AS s
WHERE $__timeFilter(s.started_at)
GROUP BY s.chat_id
ORDER BY {_BY_COST}, s.chat_id
LIMIT 20
"""

COST_BY_USER: Final = f"""
SELECT
  COALESCE(r.user_id, '(none)') AS "user",
  {_COST_COLUMNS},
  count(DISTINCT s.run_id) AS "runs"
FROM chat_debug_steps AS s
JOIN chat_debug_runs AS r ON r.id = s.run_id
WHERE $__timeFilter(s.started_at)
GROUP BY 1
ORDER BY {_BY_COST}, 1
LIMIT 20
"""

COST_BY_MODEL: Final = f"""
SELECT
  COALESCE(s.model, '(unknown)') AS "model",
  {_COST_COLUMNS}
FROM chat_debug_steps AS s
WHERE $__timeFilter(s.started_at)
GROUP BY 1
ORDER BY {_BY_COST}, 1
"""

MOST_EXPENSIVE_RUNS: Final = f"""
SELECT
  {_RUN_COST} AS "cost",
  r.started_at AS "started",
  r.status AS "status",
  r.kind AS "kind",
  r.model AS "model",
  {_STEPS_OF_RUN} AS "steps",
  {_RUN_UNPRICED} AS "unpriced steps",
  r.summary ->> 'first_message' AS "first message",
  r.chat_id AS "chat",
  r.user_id AS "user",
  r.id::text AS "run"
FROM chat_debug_runs AS r
WHERE $__timeFilter(r.started_at) AND jsonb_typeof(r.summary -> 'total_cost_usd') = 'number'
ORDER BY 1 DESC, r.id
LIMIT 20
"""

RUNS_BY_STATUS: Final = """
SELECT
  $__timeGroupAlias(r.started_at, $__interval),
  r.status AS "metric",
  count(*) AS "runs"
FROM chat_debug_runs AS r
WHERE $__timeFilter(r.started_at)
GROUP BY 1, 2
ORDER BY 1, 2
"""

LONGEST_RUNS: Final = f"""
SELECT
  {_DURATION_MS} AS "duration",
  r.started_at AS "started",
  r.status AS "status",
  r.kind AS "kind",
  r.model AS "model",
  {_STEPS_OF_RUN} AS "steps",
  r.summary ->> 'first_message' AS "first message",
  r.chat_id AS "chat",
  r.id::text AS "run"
FROM chat_debug_runs AS r
WHERE $__timeFilter(r.started_at) AND r.finished_at IS NOT NULL
ORDER BY 1 DESC, r.id
LIMIT 20
"""

STALE_OPEN_RUNS: Final = f"""
SELECT
  r.started_at AS "started",
  r.updated_at AS "last heartbeat",
  EXTRACT(EPOCH FROM (now() - r.updated_at))::bigint AS "silent for",
  r.kind AS "kind",
  r.model AS "model",
  {_STEPS_OF_RUN} AS "steps",
  r.chat_id AS "chat",
  r.id::text AS "run"
FROM chat_debug_runs AS r
WHERE r.finished_at IS NULL AND r.status = 'in_progress'
  AND r.updated_at < now() - make_interval(secs => ${STALE_VARIABLE})
ORDER BY r.updated_at, r.id
LIMIT 100
"""

QUERIES: Final = {
    "Recent runs": RECENT_RUNS,
    "Failing runs": FAILING_RUNS,
    "Tokens by chat": TOKENS_BY_CHAT,
    "Tokens by model": TOKENS_BY_MODEL,
    "Runs by status": RUNS_BY_STATUS,
    "Longest runs": LONGEST_RUNS,
    "Open runs past the stale threshold": STALE_OPEN_RUNS,
    "Cost by chat": COST_BY_CHAT,
    "Cost by user": COST_BY_USER,
    "Cost by model": COST_BY_MODEL,
    "Most expensive runs": MOST_EXPENSIVE_RUNS,
}
"""Panel title → SQL, in dashboard order."""

_DESCRIPTIONS: Final = {
    "Recent runs": "The newest runs started in the time range, with their step count, "
    "tokens (input + output, of the usage reported: empty when none was), the steps "
    "whose provider sent no usage, and duration.",
    "Failing runs": "Runs in the time range that ended in error or were interrupted, or "
    "had a failed step, with the last step error.",
    "Tokens by chat": "Input and output tokens per chat for steps started in the time "
    "range (the 20 largest), of the usage reported (empty when none was), and the calls "
    "whose provider sent no usage.",
    "Tokens by model": "Input and output tokens and calls per model for steps started in "
    "the time range, of the usage reported (empty when none was), and the calls whose "
    "provider sent no usage.",
    "Runs by status": "Runs started per interval, by status.",
    "Longest runs": "The 20 finished runs of the time range that took longest.",
    "Open runs past the stale threshold": "Runs still in progress whose last heartbeat is "
    "older than the threshold; chatdebug serve marks them interrupted.",
    "Cost by chat": "Dollars spent per chat on steps started in the time range (the 20 "
    "costliest): the sum of the priced steps (empty when none was priced), the average "
    "over priced calls only, and the calls chatdebug could not price.",
    "Cost by user": "Dollars spent per user (of the run) on steps started in the time "
    "range (the 20 costliest): the sum of the priced steps (empty when none was priced), "
    "the average over priced calls only, and the calls chatdebug could not price.",
    "Cost by model": "Dollars spent per model on steps started in the time range: the "
    "sum of the priced steps (empty when none was priced), the average over priced calls "
    "only, and the calls chatdebug could not price.",
    "Most expensive runs": "The 20 runs of the time range with the highest total cost "
    "(summary.total_cost_usd: their priced steps), with the steps left unpriced.",
}


def _unit(unit: str) -> list[model.DynamicConfigValue]:
    return [model.DynamicConfigValue(id_val="unit", value=unit)]


def _table(title: str, ids: PanelIds, width: int = 24) -> table.Panel:
    panel = (
        table.Panel()
        .id(ids())
        .title(title)
        .description(_DESCRIPTIONS[title])
        .datasource(POSTGRES)
        .unit("short")
        .span(width)
        .height(9)
        .show_header(True)
        .cell_height(common_model.TableCellHeight.SM)
        .with_target(sql(QUERIES[title]))
    )
    for column, unit in (
        ("duration", "ms"),
        ("silent for", "s"),
        ("started", "dateTimeAsIso"),
        ("cost", "currencyUSD"),
        ("average cost per priced call", "currencyUSD"),
    ):
        if f'AS "{column}"' in QUERIES[title]:
            panel.override_by_name(column, _unit(unit))
    return panel


def build() -> dashboard.Dashboard:
    """The dashboard builder (``build().build()`` is the model to serialize)."""
    ids = PanelIds()
    by_status = (
        timeseries.Panel()
        .id(ids())
        .title("Runs by status")
        .description(_DESCRIPTIONS["Runs by status"])
        .datasource(POSTGRES)
        .unit("short")
        .span(24)
        .height(8)
        .legend(legend())
        .with_target(sql(RUNS_BY_STATUS, fmt="time_series"))
    )
    stale = (
        dashboard.CustomVariable(STALE_VARIABLE)
        .label("Stale threshold (s)")
        .description(
            "Heartbeat age after which an open run counts as stale (serve's default: 300)."
        )
        .values("300,600,900,1800,3600")
        .current(model.VariableOption(selected=True, text="300", value="300"))
    )
    return (
        dashboard.Dashboard("chatdebug: runs")
        .uid(UID)
        .description("Recorded runs from the chatdebug database.")
        .tags(["chatdebug", "runs"])
        .time("now-24h", "now")
        .refresh("1m")
        .with_variable(stale)
        .with_panel(_table("Recent runs", ids))
        .with_panel(_table("Failing runs", ids))
        .with_panel(by_status)
        .with_panel(_table("Tokens by chat", ids, 12))
        .with_panel(_table("Tokens by model", ids, 12))
        .with_panel(_table("Longest runs", ids))
        .with_panel(_table("Open runs past the stale threshold", ids))
        .with_panel(_table("Cost by chat", ids, 12))
        .with_panel(_table("Cost by user", ids, 12))
        .with_panel(_table("Cost by model", ids, 12))
        .with_panel(_table("Most expensive runs", ids, 12))
    )
