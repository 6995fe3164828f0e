"""Expansion of Grafana's template variables and PostgreSQL macros, as Grafana does it
before a query reaches the database (grafana-postgresql-datasource: ``$__timeFilter``,
``$__timeFrom()``, ``$__timeTo()``, ``$__timeGroup``/``$__timeGroupAlias``, and the
``$__interval`` family the frontend substitutes first)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(text: str) -> float:
    """A Grafana/Go interval such as ``30s`` or ``1h``, in seconds."""
    match = _DURATION.match(text.strip().strip("'\""))
    if match is None:
        raise ValueError(f"not an interval: {text!r}")
    return int(match[1]) * _UNITS[match[2]]


def _rfc3339(moment: datetime) -> str:
    # Go's time.RFC3339Nano in UTC, as the datasource formats the range.
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


def expand_sql(
    sql: str,
    start: datetime,
    end: datetime,
    interval: str = "1m",
    variables: dict[str, str] | None = None,
) -> str:
    """``sql`` with Grafana's variables and macros replaced; an unknown ``$__`` macro or
    variable left over raises, so a query cannot silently reach the database half
    expanded."""
    seconds = duration_seconds(interval)
    text = sql.replace("$__interval_ms", str(int(seconds * 1000))).replace("$__interval", interval)
    for name, value in (variables or {}).items():
        text = text.replace("${" + name + "}", value)
        text = re.sub(rf"\${name}\b", value, text)

    def group(match: re.Match[str]) -> str:
        column, _, rest = match[2].partition(",")
        step = duration_seconds(rest.split(",")[0])
        expr = f"floor(extract(epoch from {column.strip()})/{step:g})*{step:g}"
        return expr + (' AS "time"' if match[1] == "Alias" else "")

    text = re.sub(r"\$__timeGroup(Alias)?\(([^()]*)\)", group, text)
    text = re.sub(
        r"\$__timeFilter\(([^()]*)\)",
        lambda m: f"{m[1].strip()} BETWEEN '{_rfc3339(start)}' AND '{_rfc3339(end)}'",
        text,
    )
    text = text.replace("$__timeFrom()", f"'{_rfc3339(start)}'")
    text = text.replace("$__timeTo()", f"'{_rfc3339(end)}'")
    leftover = re.findall(r"\$\{?\w+", text)
    if leftover:
        raise ValueError(f"unexpanded Grafana variables or macros: {leftover}")
    return text


def expand_promql(expr: str, variables: dict[str, str], rate_interval: str) -> str:
    """A panel's PromQL with ``$var`` values (already regex-formatted, as Grafana formats
    multi-value and "All" selections for Prometheus) and ``$__rate_interval``."""
    text = expr.replace("$__rate_interval", rate_interval)
    for name, value in variables.items():
        text = re.sub(rf"\${name}\b", value.replace("\\", "\\\\"), text)
    if "$" in text:
        raise ValueError(f"unexpanded variables in {text!r}")
    return text


def interval_delta(text: str) -> timedelta:
    return timedelta(seconds=duration_seconds(text))
