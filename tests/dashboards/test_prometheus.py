"""Every PromQL expression of the dashboards and alert rules, evaluated by a real
Prometheus that scraped a real instrumented application and a real ``chatdebug serve``.

The application (``_traffic_app``) makes openai and anthropic SDK calls against a
loopback fake provider (answers, streams, a retried rate limit, a provider error) and a
call chatdebug cannot record (an internal error); ``chatdebug serve`` purges and
finalizes a database seeded with an expired run and an abandoned one. Prometheus scrapes
both every second and loads the alert rules. Each panel expression is evaluated with the
template variables set to real values, to several values and to "All"; each alert rule's
signal must return data and its full expression must evaluate, and Prometheus' own rule
evaluation must report every rule healthy.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from chatdebug.store import NewRun, RunUpdate, open_store
from dashboards import alerts, runs
from tests.dashboards._grafana import expand_promql, expand_sql
from tests.store.support import FakeClock
from tests.support import require_postgres, require_tool, with_search_path

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
RATE_INTERVAL = "10s"  # Grafana's $__rate_interval for a 1 s scrape: at least 4 scrapes
DEADLINE = 45.0


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@dataclass
class Prometheus:
    url: str
    database_url: str
    """Where the application recorded its runs."""

    def query(self, expr: str) -> dict[str, Any]:
        """``/api/v1/query``; a parse or evaluation error is an HTTP 400/422 whose JSON
        body says why."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            return dict(get_json(url))
        except urllib.error.HTTPError as exc:
            return dict(json.loads(exc.read()))

    def result(self, expr: str) -> list[dict[str, Any]]:
        answer = self.query(expr)
        assert answer["status"] == "success", f"{expr}: {answer}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result


def _wait_http(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"{what} not answering at {url}")


def _start(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)


def _seed(url: str) -> None:
    """A run not updated for 40 days (the purge removes it) and one left in progress an
    hour ago (the stale finalizer interrupts it)."""
    old = datetime.now(UTC) - timedelta(days=40)
    clock = FakeClock(old)
    store = open_store(url, clock=clock)
    try:
        expired = store.create_run(NewRun(chat_id="chat-old", started_at=old))
        store.update_run(RunUpdate(id=expired.id, chat_id="chat-old", status="completed"))
        clock.set(datetime.now(UTC) - timedelta(hours=1))
        store.create_run(NewRun(chat_id="chat-abandoned", started_at=clock.now))
    finally:
        store.close()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    binary = require_tool("prometheus")
    dsn = require_postgres()
    import psycopg

    schema = f"t_dash_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = with_search_path(dsn, schema)
    tmp = tmp_path_factory.mktemp("prometheus")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        _seed(url)
        app_port, serve_port, prom_port = free_port(), free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if k != "CHATDEBUG_RAISE_INTERNAL_ERRORS"}
        app = _start(
            [
                sys.executable,
                "-m",
                "tests.dashboards._traffic_app",
                url,
                str(app_port),
                str(tmp / "spill.db"),
            ],
            tmp / "app.log",
            env,
        )
        processes.append(app)
        serve = _start(
            [
                sys.executable, "-m", "chatdebug", "serve", "--database-url", url,
                "--listen", f"127.0.0.1:{serve_port}", "--purge-interval", "1s",
                "--stale-interval", "1s",
            ],
            tmp / "serve.log",
        )  # fmt: skip
        processes.append(serve)
        _wait_http(f"http://127.0.0.1:{app_port}/metrics", app, "the application")
        _wait_http(f"http://127.0.0.1:{serve_port}/metrics", serve, "chatdebug serve")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(DASHBOARDS / "prometheus" / "alerts.yml")],
            "scrape_configs": [
                {
                    "job_name": "chat-app",
                    "static_configs": [{"targets": [f"127.0.0.1:{app_port}"]}],
                },
                {
                    "job_name": "chatdebug-serve",
                    "static_configs": [{"targets": [f"127.0.0.1:{serve_port}"]}],
                },
            ],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        server = _start(
            [
                binary,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            tmp / "prometheus.log",
        )
        processes.append(server)
        base = f"http://127.0.0.1:{prom_port}"
        _wait_http(f"{base}/-/ready", server, "prometheus")
        prom = Prometheus(base, url)
        _wait_for_traffic(prom)
        yield prom
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _wait_for_traffic(prom: Prometheus) -> None:
    """Until both targets were scraped a few times after the first calls, the purge
    removed the expired run and the finalizer interrupted the abandoned one."""
    checks = (
        "sum(up) == 2",
        "count_over_time(gen_ai_client_time_to_first_chunk_seconds_count[1m]) >= 4",
        'chatdebug_purge_records_removed_total{record_type="chat_debug_runs"} >= 1',
        'chatdebug_stale_rows_finalized_total{record_type="chat_debug_runs"} >= 1',
    )
    deadline = time.monotonic() + DEADLINE
    while not all(prom.result(check) for check in checks):
        if time.monotonic() > deadline:
            return  # the tests report what is missing
        time.sleep(0.5)


def panel_expressions() -> list[tuple[str, str]]:
    """(dashboard/panel/refId, expression) of every Prometheus target."""
    found = []
    for name in ("llm-traffic.json", "chatdebug-operations.json"):
        document = json.loads((DASHBOARDS / name).read_text())
        for panel in document["panels"]:
            for target in panel.get("targets", []):
                found.append((f"{name}: {panel['title']} [{target['refId']}]", target["expr"]))
    return found


def _regex_escape(value: str) -> str:
    # Grafana escapes regex metacharacters of selected values for Prometheus.
    return re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", value)


def _variable_choices(prom: Prometheus) -> dict[str, dict[str, str]]:
    """Selections to substitute: one real provider and one of its models, every known
    value (a multi-select), and "All"."""
    series = prom.result(
        "group by (provider, model) (gen_ai_client_operation_duration_seconds_count)"
    )
    pairs = sorted({(s["metric"]["provider"], s["metric"]["model"]) for s in series})
    streamed = prom.result(
        "group by (provider, model) (gen_ai_client_time_to_first_chunk_seconds_count)"
    )
    # A model that streamed, so the time-to-first-chunk panels have data for it too.
    provider, model = next(
        (m["provider"], m["model"])
        for m in (s["metric"] for s in streamed)
        if m["provider"] == "openai"
    )
    providers = sorted({p for p, _ in pairs})
    models = sorted({m for _, m in pairs})
    return {
        "single": {"provider": _regex_escape(provider), "model": _regex_escape(model)},
        "multi": {
            "provider": "(" + "|".join(map(_regex_escape, providers)) + ")",
            "model": "(" + "|".join(map(_regex_escape, models)) + ")",
        },
        "all": {"provider": ".*", "model": ".*"},
    }


def _every_series_has_data(prom: Prometheus, queries: dict[str, str]) -> dict[str, str]:
    """The queries that do not (yet) return data, with what Prometheus answered."""
    missing = {}
    for label, expr in queries.items():
        answer = prom.query(expr)
        if answer.get("status") != "success":
            missing[label] = f"{expr}: {answer}"
        elif not answer["data"]["result"]:
            missing[label] = f"{expr}: no data"
    return missing


@pytest.mark.slow
def test_every_panel_and_alert_expression_returns_data(prometheus: Prometheus) -> None:
    deadline = time.monotonic() + 20
    choices = _variable_choices(prometheus)
    queries = {}
    templated = 0
    for label, expr in panel_expressions():
        if "$provider" not in expr:
            queries[label] = expand_promql(expr, {}, RATE_INTERVAL)
            continue
        templated += 1
        for choice, variables in choices.items():
            queries[f"{label} ({choice})"] = expand_promql(expr, variables, RATE_INTERVAL)
    for alert in alerts.ALERTS:
        queries[f"alert {alert.name}: signal"] = alert.signal
    # Rates need a few scrapes of the traffic, the purge several ticks: poll, then report
    # whatever still returns nothing.
    missing = _every_series_has_data(prometheus, queries)
    while missing and time.monotonic() < deadline:
        time.sleep(1.0)
        missing = _every_series_has_data(prometheus, {k: queries[k] for k in missing})
    assert not missing, "\n".join(f"{k}: {v}" for k, v in missing.items())
    assert templated >= 8  # every LLM traffic target, three selections each
    assert len(queries) == len(panel_expressions()) + 2 * templated + len(alerts.ALERTS)

    # Full rule expressions evaluate (data only when the alert condition holds).
    for alert in alerts.ALERTS:
        prometheus.result(alert.expr)
    # And Prometheus itself evaluated every loaded rule without error.
    groups = get_json(f"{prometheus.url}/api/v1/rules")["data"]["groups"]
    rules = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(rules) == {a.name for a in alerts.ALERTS}
    for name, rule in rules.items():
        assert rule["health"] == "ok", (name, rule.get("lastError"))


@pytest.mark.slow
def test_variable_queries_list_the_recorded_labels(prometheus: Prometheus) -> None:
    # Grafana's label_values(metric, label) is a /api/v1/label/<label>/values lookup.
    document = json.loads((DASHBOARDS / "llm-traffic.json").read_text())
    for variable in document["templating"]["list"]:
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"])
        assert match is not None, variable["query"]
        selector = expand_promql(match[1], {"provider": ".*"}, RATE_INTERVAL)
        url = f"{prometheus.url}/api/v1/label/{match[2]}/values?" + urllib.parse.urlencode(
            {"match[]": selector}
        )
        values = get_json(url)["data"]
        assert "openai" in values or "gpt-4o-2024-08-06" in values, (variable["name"], values)
        assert "anthropic" in values or "claude-opus-4-6" in values, (variable["name"], values)


@pytest.mark.slow
def test_the_scraped_numbers_are_the_recorded_traffic(prometheus: Prometheus) -> None:
    # Not just "some data": the series say what the application did.
    errors = prometheus.result(
        "sum by (provider, model, error_type) "
        '(gen_ai_client_operation_duration_seconds_count{error_type!=""})'
    )
    assert {(e["metric"]["provider"], e["metric"]["error_type"]) for e in errors} == {
        ("openai", "invalid_request_error")
    }
    internal = prometheus.result("chatdebug_internal_errors_total")
    assert {s["metric"]["component"] for s in internal} == {"traced_run"}
    removed = prometheus.result(
        'chatdebug_purge_records_removed_total{record_type="chat_debug_runs"}'
    )
    assert sum(float(s["value"][1]) for s in removed) >= 1
    finalized = prometheus.result(
        'chatdebug_stale_rows_finalized_total{record_type="chat_debug_runs"}'
    )
    assert sum(float(s["value"][1]) for s in finalized) >= 1
    # The run an earlier process left in the spill journal was replayed; the journal's
    # capacity is the default spill_max_bytes, and its file system is writable.
    replayed = prometheus.result('chatdebug_spill_replayed_events_total{job="chat-app"}')
    assert len(replayed) == 1 and float(replayed[0]["value"][1]) >= 2  # and its own spills
    import psycopg

    with psycopg.connect(prometheus.database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT status FROM chat_debug_runs WHERE chat_id = 'chat-replayed'"
        ).fetchall()
    assert rows == [("completed",)]
    capacity = prometheus.result('chatdebug_spill_journal_capacity_bytes{job="chat-app"}')
    assert [float(s["value"][1]) for s in capacity] == [float(1 << 30)]
    writable = prometheus.result('chatdebug_storage_writable{job="chat-app"}')
    assert {s["metric"]["target"]: float(s["value"][1]) for s in writable} == {
        "store": 1.0, "journal": 1.0,
    }  # fmt: skip
    # Every answered call was priced; the rejected one (no usage) added nothing.
    cost = prometheus.result("sum by (provider, model) (chatdebug_llm_cost_usd_total)")
    assert {(s["metric"]["provider"], s["metric"]["model"]) for s in cost} == {
        ("openai", "gpt-4o-2024-08-06"), ("anthropic", "claude-opus-4-6"),
    }  # fmt: skip
    assert all(float(s["value"][1]) > 0 for s in cost)


@pytest.mark.slow
def test_runs_dashboard_on_the_recorded_traffic(prometheus: Prometheus) -> None:
    # The SQL panels on runs recorded through the SDKs: labelled from their steps.
    import psycopg

    now = datetime.now(UTC)
    results = {}
    with psycopg.connect(prometheus.database_url, autocommit=True) as conn:
        for title, sql in runs.QUERIES.items():
            expanded = expand_sql(
                sql, now - timedelta(hours=1), now + timedelta(minutes=1), interval="1m",
                variables={runs.STALE_VARIABLE: "300"},
            )  # fmt: skip
            results[title] = conn.execute(expanded.encode()).fetchall()
    finished = [r for r in results["Recent runs"] if r[1] != "in_progress"]
    assert finished
    # Chat turns start with an answered OpenAI call; title runs with a rejected one.
    assert {r[3] for r in finished} == {"gpt-4o-2024-08-06", "gpt-4o"}
    assert all(r[4] >= 2 and r[5] > 0 for r in finished)
    assert {r[0] for r in results["Tokens by model"]} == {
        "gpt-4o-2024-08-06", "gpt-4o", "claude-opus-4-6",
    }  # fmt: skip
    assert {r[4] for r in results["Failing runs"]} >= {"bad request"}
    assert {r[1] for r in results["Runs by status"]} >= {"completed"}
    assert results["Longest runs"]
    # Cost: the answered calls of both providers are priced; the rejected call (no usage)
    # is counted as unpriced, never as a $0 call.
    by_model = {r[0]: r[1:] for r in results["Cost by model"]}
    assert set(by_model) == {"gpt-4o-2024-08-06", "gpt-4o", "claude-opus-4-6"}
    for name in ("gpt-4o-2024-08-06", "claude-opus-4-6"):
        cost, priced, average, unpriced = by_model[name]
        assert cost > 0 and priced > 0 and unpriced == 0, (name, by_model[name])
        assert average == pytest.approx(cost / priced), name
    cost, priced, average, unpriced = by_model["gpt-4o"]
    assert (cost, priced, average) == (None, 0, None) and unpriced > 0
    assert {r[0] for r in results["Cost by user"]} == {"u-1", "(none)"}
    assert all(r[1] > 0 for r in results["Cost by chat"])
    expensive = results["Most expensive runs"]
    assert expensive and all(r[0] > 0 for r in expensive)
    assert [r[0] for r in expensive] == sorted((r[0] for r in expensive), reverse=True)
    # Title runs: the rejected call is their unpriced step.
    assert {(r[3], r[6]) for r in expensive} <= {("chat_turn", 0), ("title_generation", 1)}
