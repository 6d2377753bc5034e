"""Paths and loaders shared by the ops tests."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests import backends

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
PROMETHEUS_DIR = OPS / "prometheus"
DASHBOARD = OPS / "grafana" / "dashboards" / "pwbi-gateway.json"
RUNBOOK = OPS / "README.md"


def load_yaml(path: Path) -> Any:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_yaml_documents(path: Path) -> list[Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return dashboard


def dashboard_exprs(node: Any) -> list[str]:
    """Every `expr` of every target of every panel, rows' nested panels included."""
    found: list[str] = []
    if isinstance(node, dict):
        for target in node.get("targets", []):
            if isinstance(target, dict) and "expr" in target:
                found.append(str(target["expr"]))
        for key, value in node.items():
            if key != "targets":
                found.extend(dashboard_exprs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(dashboard_exprs(item))
    return found


def alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for group in load_yaml(PROMETHEUS_DIR / "alerts.yml")["groups"]:
        rules.extend(group["rules"])
    return rules


def require_tool(name: str) -> str:
    """The tool's path; skip (or fail, when GATEWAY_TEST_REQUIRE names it) without it."""
    path = shutil.which(name) or _venv_tool(name)
    if path is None:
        reason = f"{name} not on PATH (Debian: apt-get install prometheus)"
        if name == "hadolint":
            reason = f"{name} not on PATH (`make lint-docker` installs it into .venv)"
        backends.report.skipped[name] = reason
        if name in backends.REQUIRED:
            pytest.fail(f"{name} required (GATEWAY_TEST_REQUIRE) but missing: {reason}")
        pytest.skip(reason)
    backends.report.used[name] = path
    return path


def _venv_tool(name: str) -> str | None:
    candidate = ROOT / ".venv" / "bin" / name
    return str(candidate) if os.access(candidate, os.X_OK) else None
