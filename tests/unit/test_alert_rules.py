"""The monitoring centre's rules (switch/monitoring/rules.yml), checked by Prometheus's own
promtool (Debian's `prometheus` package): each alert fires on the series that mean trouble and
not on a normal day's (tests/unit/monitoring/rules_test.yml), each is tested there, and each
has its runbook entry in docs/operations.md (issue #26)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from switch.monitoring import RULES

PROMTOOL = shutil.which("promtool")
HERE = Path(__file__).resolve().parent
RULES_TEST = HERE / "monitoring" / "rules_test.yml"
OPERATIONS = HERE.parents[1] / "docs" / "operations.md"
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian's prometheus package; "
    ".ci/run installs it)")


def alert_names() -> list[str]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


@needs_promtool
def test_issue_26_the_rules_are_valid_and_each_alert_fires_as_its_test_says() -> None:
    assert PROMTOOL is not None
    checked = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([PROMTOOL, "test", "rules", RULES_TEST.name], cwd=RULES_TEST.parent,
                            capture_output=True, text=True, timeout=60)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_issue_26_every_alert_is_tested_and_has_its_runbook_entry() -> None:
    tests = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))["tests"]
    firing = {case["alertname"] for test in tests for case in test["alert_rule_test"]
              if case["exp_alerts"]}
    runbook = set(re.findall(r"^### `(Switchlab\w+)`", OPERATIONS.read_text(encoding="utf-8"),
                             re.MULTILINE))
    assert len(alert_names()) >= 10
    for name in alert_names():
        assert name in firing, f"{name} is never seen firing in {RULES_TEST.name}"
        assert name in runbook, f"{name} has no entry in docs/operations.md"
