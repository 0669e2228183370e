"""The Prometheus alerting rules: valid, unit-tested with promtool, and about metrics that exist."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from streams import PROJECT_ROOT, metrics

RULES = PROJECT_ROOT / "deploy" / "prometheus"
pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus) is missing")


def promtool(*args: str, cwd: Path) -> str:
    out = subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_rules_are_valid_and_their_unit_tests_pass() -> None:
    assert "SUCCESS" in promtool("check", "rules", "alerts.yml", cwd=RULES)
    assert "SUCCESS" in promtool("test", "rules", "alerts_test.yml", cwd=RULES)


def test_the_compose_prometheus_config_loads_the_rules(tmp_path: Path) -> None:
    # As mounted in the container: prometheus.yml with alerts.yml beside it.
    shutil.copy(PROJECT_ROOT / "deploy" / "compose" / "prometheus.yml", tmp_path)
    shutil.copy(RULES / "alerts.yml", tmp_path)
    output = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert "1 rules files found" in output or "SUCCESS: 6 rules found" in output, output


def test_every_alert_is_about_metrics_the_worker_exports_and_is_unit_tested() -> None:
    exported = {"up"}
    for family in metrics.REGISTRY.collect():
        suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}
        exported |= {family.name + s for s in suffixes.get(family.type, [""])}
    groups = yaml.safe_load((RULES / "alerts.yml").read_text())["groups"]
    rules = [r for g in groups for r in g["rules"]]
    for rule in rules:
        names = set(re.findall(r"\b(streams_[a-z_]+|up)\b", rule["expr"]))
        assert names and names <= exported, (rule["alert"], names - exported)
    tested = yaml.safe_load((RULES / "alerts_test.yml").read_text())["tests"]
    fired = {t["alertname"] for test in tested for t in test["alert_rule_test"] if t["exp_alerts"]}
    untested = {r["alert"] for r in rules} - fired
    assert not untested, untested
