"""deploy/prometheus/alerts.yml: valid rules, each one unit-tested with promtool, on series the services expose."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from tests.metrics_catalogue import sample_names
from tests.promtool import run

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
SERIES = re.compile(r"\bdetectbot_[a-z_]+\b")


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
            for rule in group["rules"]]  # fmt: skip


def test_the_rules_are_valid() -> None:
    proc = run("check", "rules", PROMETHEUS / "alerts.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_pass() -> None:
    proc = run("test", "rules", PROMETHEUS / "alerts_test.yml")
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout + proc.stderr


def test_the_unit_tests_catch_a_changed_rule(tmp_path: Path) -> None:
    """Waiting 20 minutes instead of 2 before calling the database unreachable fails the tests."""
    shutil.copy(PROMETHEUS / "alerts_test.yml", tmp_path)
    text = (PROMETHEUS / "alerts.yml").read_text()
    changed = text.replace(
        "expr: detectbot_database_up == 0\n        for: 2m", "expr: detectbot_database_up == 0\n        for: 20m"
    )
    assert changed != text
    (tmp_path / "alerts.yml").write_text(changed)
    proc = run("test", "rules", tmp_path / "alerts_test.yml")
    assert proc.returncode != 0 and "DetectbotDatabaseUnreachable" in proc.stdout + proc.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for rule in rules():
        name = rule["alert"]
        assert any(c["alertname"] == name and c["exp_alerts"] for c in cases), f"{name} is never seen firing"
        assert any(c["alertname"] == name and not c["exp_alerts"] for c in cases), f"{name} is never seen quiet"


def test_the_issue_asks_for_these_alerts() -> None:
    names = {rule["alert"] for rule in rules()}
    assert {"DetectbotNoWorkerOnline", "DetectbotBacklogGrowing", "DetectbotDeliveriesFailing", "DetectbotDeadLetters",
            "DetectbotDatabaseUnreachable", "DetectbotBrokerUnreachable"} <= names  # fmt: skip
    for rule in rules():
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_alerts_name_only_series_that_exist() -> None:
    known = sample_names()
    for rule in rules():
        used = set(SERIES.findall(rule["expr"]))
        assert used, rule["alert"]
        assert used <= known, f"{rule['alert']}: {used - known} is not exposed by any service"
