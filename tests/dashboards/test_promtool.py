"""promtool on the shipped Prometheus files: the scrape config, the alert rules and the
rules' unit tests (each alert fires when it should and stays silent when it should not)."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from dashboards import alerts
from tests.support import require_tool

pytestmark = pytest.mark.slow  # runs promtool

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "dashboards" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_scrape_config_is_valid() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rules_are_valid() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts.ALERTS)} rules found" in result.stdout


def test_rules_unit_tests_pass() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_silent_case_and_documents_its_threshold() -> None:
    document = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())
    outcomes: dict[str, set[bool]] = {}
    for test in document["tests"]:
        for check in test["alert_rule_test"]:
            outcomes.setdefault(check["alertname"], set()).add(bool(check["exp_alerts"]))
    names = [a.name for a in alerts.ALERTS]
    assert outcomes == {name: {True, False} for name in names}
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"][0]["rules"]
    for rule in rules:
        assert rule["annotations"]["threshold"], rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]


def test_a_wrong_threshold_fails_the_unit_tests(tmp_path: Path) -> None:
    # The unit tests can fail: with the queue threshold raised they must.
    rules = (
        (PROMETHEUS_DIR / "alerts.yml")
        .read_text()
        .replace(
            "(chatdebug_exporter_queue_capacity) > 0.8",
            "(chatdebug_exporter_queue_capacity) > 0.95",
        )
    )
    (tmp_path / "alerts.yml").write_text(rules)
    (tmp_path / "alerts_test.yml").write_text((PROMETHEUS_DIR / "alerts_test.yml").read_text())
    result = subprocess.run(
        [require_tool("promtool"), "test", "rules", "alerts_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "ChatdebugExporterQueueNearlyFull" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("threshold", "failing"),
    [("100", "fires"), ("40", "stays silent")],
    ids=["raised", "lowered"],
)
def test_the_spend_alert_tests_catch_a_wrong_threshold(
    tmp_path: Path, threshold: str, failing: str
) -> None:
    # Raised, the firing case fails; lowered, the silent one does.
    budget = f"{alerts.LLM_SPEND_PER_HOUR_USD:g}"
    spend = "sum(increase(chatdebug_llm_cost_usd_total[1h])) > "
    original = (PROMETHEUS_DIR / "alerts.yml").read_text()
    assert spend + budget in original
    wrong = f"{float(threshold) / 50 * alerts.LLM_SPEND_PER_HOUR_USD:g}"
    (tmp_path / "alerts.yml").write_text(original.replace(spend + budget, spend + wrong))
    (tmp_path / "alerts_test.yml").write_text((PROMETHEUS_DIR / "alerts_test.yml").read_text())
    result = subprocess.run(
        [require_tool("promtool"), "test", "rules", "alerts_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0, failing
    assert "ChatdebugLLMSpendHigh" in result.stdout + result.stderr


@pytest.mark.parametrize("budget", ["7.5", "1000"])
def test_the_spend_budget_is_a_template(
    tmp_path: Path, budget: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another budget in dashboards/alerts.py rewrites the rule, its threshold annotation
    # and its unit tests, which still pass.
    source = Path(alerts.__file__).read_text()
    line = f"LLM_SPEND_PER_HOUR_USD: Final = {alerts.LLM_SPEND_PER_HOUR_USD!r}"
    assert line in source
    edited = types.ModuleType("edited_alerts")
    monkeypatch.setitem(sys.modules, edited.__name__, edited)  # dataclasses look it up
    code = source.replace(line, f"LLM_SPEND_PER_HOUR_USD: Final = {budget}")
    exec(compile(code, "edited_alerts.py", "exec"), edited.__dict__)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(edited.rules_document()))
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(edited.tests_document("alerts.yml")))
    rules = (tmp_path / "alerts.yml").read_text()
    assert f"sum(increase(chatdebug_llm_cost_usd_total[1h])) > {float(budget):g}" in rules
    result = subprocess.run(
        [require_tool("promtool"), "test", "rules", "alerts_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
