"""Prometheus config and alert rules: promtool's checks and unit tests, runbooks, job names."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest

from tests.ops.common import PROMETHEUS_DIR, RUNBOOK, alert_rules, load_yaml, require_tool

JOBS = {"gateway", "worker", "gateway-readyz"}


def _promtool(*args: str) -> str:
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, *args],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def test_prometheus_config_and_rules_are_valid() -> None:
    # `check config` also checks every rule file the config names.
    assert "SUCCESS" in _promtool("check", "config", "prometheus.yml")
    assert "SUCCESS" in _promtool("check", "rules", "alerts.yml")
    assert "SUCCESS" in _promtool("test", "rules", "alerts.test.yml")


def test_every_alert_has_a_summary_a_runbook_section_and_a_firing_unit_test() -> None:
    headings = {
        _anchor(line.lstrip("#").strip())
        for line in RUNBOOK.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    fired = _alerts_fired_in_unit_tests(load_yaml(PROMETHEUS_DIR / "alerts.test.yml"))
    names = [rule["alert"] for rule in alert_rules() if "alert" in rule]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in alert_rules():
        name = rule["alert"]
        annotations = rule.get("annotations", {})
        assert annotations.get("summary"), f"{name}: no summary"
        assert rule.get("labels", {}).get("severity") in ("warning", "critical"), name
        anchor = name.lower()
        assert annotations.get("runbook_url") == f"ops/README.md#{anchor}", name
        assert anchor in headings, f"{name}: no '### {name}' section in ops/README.md"
        assert name in fired, f"{name}: no promtool unit test where it fires"


def test_alerts_select_only_scrape_jobs_prometheus_has() -> None:
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs >= JOBS
    for rule in alert_rules():
        for job in re.findall(r'job\s*=~?\s*"([^"]+)"', rule["expr"]):
            assert set(job.split("|")) <= jobs, f"{rule['alert']}: unknown job {job}"
    assert config["rule_files"] == ["alerts.yml"]


def _alerts_fired_in_unit_tests(tests: dict[str, Any]) -> set[str]:
    fired: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            if check.get("exp_alerts"):
                fired.add(check["alertname"])
    return fired


def _anchor(heading: str) -> str:
    # GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens.
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


@pytest.mark.parametrize(
    ("heading", "anchor"), [("WorkersAbsent", "workersabsent"), ("Queue lag", "queue-lag")]
)
def test_anchor(heading: str, anchor: str) -> None:
    assert _anchor(heading) == anchor
