"""The alert rules of deploy/monitoring, checked and unit-tested by promtool (Debian's prometheus).

`promtool check rules` validates rules.yaml and the groups inside the PrometheusRule manifest;
`promtool test rules` runs rules_test.yaml, where every alert has a firing and a non-firing
case. A copy of the test file with one expectation changed must fail, so a pass here means the
expectations are really compared.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.prometheus

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
ALERTS = {"ModelRolledBack", "ModelNotReady", "ModelErrorRateHigh", "ModelMetricsUnavailable"}


def promtool(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed (apt-get install -y prometheus)")
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_rules_file_is_valid():
    result = promtool("check", "rules", "rules.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_the_prometheus_rule_manifest_is_valid(tmp_path):
    manifest = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": manifest["spec"]["groups"]}))
    result = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_pass():
    result = promtool("test", "rules", "rules_test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_wrong_expectation_fails(tmp_path):
    shutil.copy(MONITORING / "rules.yaml", tmp_path / "rules.yaml")
    tests = yaml.safe_load((MONITORING / "rules_test.yaml").read_text())
    firing = next(case for t in tests["tests"] for case in t["alert_rule_test"]
                  if case["exp_alerts"])
    firing["exp_alerts"][0]["exp_labels"]["severity"] = "page"
    (tmp_path / "rules_test.yaml").write_text(yaml.safe_dump(tests))
    result = promtool("test", "rules", "rules_test.yaml", cwd=tmp_path)
    assert result.returncode != 0 and "FAILED" in result.stdout + result.stderr
