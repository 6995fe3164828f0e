"""The committed dashboards and rules are exactly what ``dashboards/build.py`` writes,
and every panel is complete: a datasource that provisioning defines, a title, a unit and
a query."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from dashboards import build

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DASHBOARDS / name).read_text(encoding="utf-8"))
    return document


def panels(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in document["panels"] if p["type"] != "row"]


def provisioned_uids() -> dict[str, str]:
    config = yaml.safe_load((DASHBOARDS / "provisioning" / "datasources.yaml").read_text())
    return {ds["uid"]: ds["type"] for ds in config["datasources"]}


@pytest.mark.parametrize("path", sorted(build.generated_files()), ids=lambda p: p.name)
def test_committed_file_is_the_generator_output(path: Path) -> None:
    expected = build.generated_files()[path]
    assert path.exists(), f"{path} missing: run .venv/bin/python dashboards/build.py"
    assert path.read_text(encoding="utf-8") == expected, (
        f"{path.name} differs from the generator's output: run .venv/bin/python dashboards/build.py"
    )


@pytest.mark.slow
def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, str(DASHBOARDS / "build.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout == ""


@pytest.mark.parametrize("name", sorted(build.DASHBOARDS))
def test_every_panel_is_complete(name: str) -> None:
    uids = provisioned_uids()
    document = load(name)
    found = panels(document)
    assert found, name
    assert len({p["id"] for p in document["panels"]}) == len(document["panels"])
    for panel in found:
        title = panel.get("title")
        assert isinstance(title, str) and title.strip(), panel
        assert panel.get("description"), title
        assert panel["datasource"]["uid"] in uids, title
        assert panel["datasource"]["type"] == uids[panel["datasource"]["uid"]], title
        assert panel["fieldConfig"]["defaults"].get("unit"), title
        assert isinstance(panel["options"], dict) and panel["options"], title
        assert panel["targets"], title
        for target in panel["targets"]:
            query = target.get("expr") or target.get("rawSql")
            assert isinstance(query, str) and query.strip(), title
            assert target["datasource"]["uid"] == panel["datasource"]["uid"], title
            assert target["refId"], title
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), title


def test_llm_traffic_variables_are_multi_select_with_all() -> None:
    document = load("llm-traffic.json")
    variables = {v["name"]: v for v in document["templating"]["list"]}
    assert set(variables) == {"provider", "model"}
    for variable in variables.values():
        assert variable["multi"] is True and variable["includeAll"] is True
        assert variable["allValue"] == ".*"
        assert variable["datasource"]["uid"] == "chatdebug-prometheus"
    for panel in panels(document):
        for target in panel["targets"]:
            assert 'provider=~"$provider"' in target["expr"], panel["title"]
            assert 'model=~"$model"' in target["expr"], panel["title"]


def test_panel_titles_are_the_documented_ones() -> None:
    titles = {name: [p["title"] for p in panels(load(name))] for name in build.DASHBOARDS}
    assert titles["llm-traffic.json"] == [
        "Calls per second",
        "Error ratio",
        "Call latency p50 / p95 / p99",
        "Time to first chunk p50 / p95",
        "Tokens per second by model and token type",
        "Cost per hour by model",
    ]
    assert titles["chatdebug-operations.json"] == [
        "Exporter queue depth vs capacity",
        "Events written per second by kind",
        "Store write latency p95",
        "Events dropped per second by reason",
        "Store write errors per second",
        "Internal errors per second by component",
        "Events spilled and replayed per second",
        "Spill journal size vs capacity",
        "Replay lag",
        "Local storage writable",
        "Local storage failures",
        "Time since last successful purge",
        "Retention in force",
        "Store reachable",
        "Oldest queued event",
        "Purge iterations by outcome",
        "Runs and steps removed per purge iteration",
        "Stale rows finalized",
    ]
    assert titles["chatdebug-runs.json"] == [
        "Recent runs",
        "Failing runs",
        "Runs by status",
        "Tokens by chat",
        "Tokens by model",
        "Longest runs",
        "Open runs past the stale threshold",
        "Cost by chat",
        "Cost by user",
        "Cost by model",
        "Most expensive runs",
    ]


def test_provisioning_points_at_the_dashboards() -> None:
    providers = yaml.safe_load((DASHBOARDS / "provisioning" / "dashboards.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
    assert set(provisioned_uids()) == {"chatdebug-prometheus", "chatdebug-postgres"}
    uids = [load(name)["uid"] for name in build.DASHBOARDS]
    assert len(set(uids)) == 3


def test_every_metric_queried_exists() -> None:
    # A renamed metric would leave a panel or an alert silently empty.
    from prometheus_client import CollectorRegistry

    from chatdebug.metrics import Metrics
    from dashboards import alerts

    registry = CollectorRegistry()
    Metrics(registry)
    exposed = {m.name for m in registry.collect()}
    suffixes = ("_bucket", "_count", "_sum", "_total")
    expressions = [a.expr for a in alerts.ALERTS]
    for name in build.DASHBOARDS:
        for panel in panels(load(name)):
            expressions += [t["expr"] for t in panel["targets"] if "expr" in t]
    used = set()
    for expr in expressions:
        used |= set(re.findall(r"\b((?:chatdebug|gen_ai)_[a-z_]+)", expr))
    assert used
    for metric in used:
        base = next((metric.removesuffix(s) for s in suffixes if metric.endswith(s)), metric)
        assert metric in exposed or base in exposed, metric
