"""Shared pieces of the dashboards: datasource uids, query builders, panel layout.

The PromQL and SQL of every panel is plain text here so tests can read it back from the
generated JSON (``targets[].expr`` / ``targets[].rawSql``) and run it on real servers.
"""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.builders import common, prometheus
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model

__all__ = [
    "POSTGRES",
    "POSTGRES_UID",
    "PROMETHEUS",
    "PROMETHEUS_UID",
    "RATE",
    "PanelIds",
    "SQLQuery",
    "legend",
    "prom",
    "sql",
]

PROMETHEUS_UID: Final = "chatdebug-prometheus"
"""uid of the Prometheus datasource that ``provisioning/datasources.yaml`` defines."""
POSTGRES_UID: Final = "chatdebug-postgres"
"""uid of the PostgreSQL datasource (the chatdebug database)."""

PROMETHEUS: Final = model.DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)
POSTGRES: Final = model.DataSourceRef(type_val="grafana-postgresql-datasource", uid=POSTGRES_UID)

RATE: Final = "$__rate_interval"
"""Grafana's rate window: at least four scrape intervals, so rate() always has samples."""


def legend() -> common.VizLegendOptions:
    """The legend of every time series panel: a list below the graph."""
    return (
        common.VizLegendOptions()
        .show_legend(True)
        .display_mode(common_model.LegendDisplayMode.LIST)
        .placement(common_model.LegendPlacement.BOTTOM)
    )


def prom(expr: str, legend: str, ref_id: str = "A") -> prometheus.Dataquery:
    """A range query on the Prometheus datasource."""
    return (
        prometheus.Dataquery()
        .expr(expr)
        .legend_format(legend)
        .ref_id(ref_id)
        .range()
        .datasource(PROMETHEUS)
    )


class SQLQuery(cogvariants.Dataquery):
    """A raw SQL target of Grafana's PostgreSQL datasource (the SDK ships no builder for
    it; this is the JSON shape its query editor saves in code mode)."""

    def __init__(self, raw_sql: str, fmt: str, ref_id: str) -> None:
        self.raw_sql = raw_sql
        self.format = fmt
        self.ref_id = ref_id

    def to_json(self) -> dict[str, object]:
        return {
            "datasource": POSTGRES,
            "editorMode": "code",
            "format": self.format,
            "rawQuery": True,
            "rawSql": self.raw_sql,
            "refId": self.ref_id,
        }


class _SQLBuilder(cogbuilder.Builder[SQLQuery]):
    def __init__(self, query: SQLQuery) -> None:
        self._query = query

    def build(self) -> SQLQuery:
        return self._query


def sql(raw_sql: str, fmt: str = "table", ref_id: str = "A") -> _SQLBuilder:
    """A PostgreSQL target; ``fmt`` is ``table`` or ``time_series``."""
    return _SQLBuilder(SQLQuery(raw_sql.strip(), fmt, ref_id))


class PanelIds:
    """Numbers the panels of one dashboard 1, 2, 3, … (ids must be unique in it)."""

    def __init__(self) -> None:
        self._next = 0

    def __call__(self) -> int:
        self._next += 1
        return self._next
