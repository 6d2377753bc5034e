"""Compose file, Kubernetes manifests, Grafana provisioning and the Dockerfile: they parse
and hold the properties ops/README.md promises."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from app.settings import load_settings
from tests.ops.common import (
    DASHBOARD,
    OPS,
    ROOT,
    load_dashboard,
    load_yaml,
    load_yaml_documents,
    require_tool,
)
from workers.main import JOB_TIMEOUT_S

COMPOSE = OPS / "compose.yaml"
K8S = OPS / "k8s"
SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "KEY")
# GATEWAY_DELIVERY_TIMEOUT_S accepts at most 30 s (app/settings.py).
MAX_DELIVERY_TIMEOUT_S = 30.0
LONG_RUNNING = ("gateway", "worker", "postgres", "redis", "blackbox", "prometheus", "grafana")


# --- compose -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    parsed: dict[str, Any] = load_yaml(COMPOSE)
    return parsed


def test_compose_has_every_service_with_health_checks_and_ordering(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) == {"migrate", *LONG_RUNNING}
    for name in LONG_RUNNING:
        assert services[name].get("healthcheck", {}).get("test"), f"{name}: no healthcheck"
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert rule["condition"] in ("service_healthy", "service_completed_successfully")
    for name in ("gateway", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["command"] == ["migrate"]
    assert services["gateway"]["command"] == ["serve"]
    assert services["worker"]["command"] == ["worker"]
    assert services["worker"]["deploy"]["replicas"] == 2
    # One image, the command picks the role.
    images = {services[n]["image"] for n in ("migrate", "gateway", "worker")}
    assert len(images) == 1
    assert services["gateway"]["build"]["context"] == ".."


def test_compose_redis_persists_with_aof(compose: dict[str, Any]) -> None:
    command = " ".join(compose["services"]["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert any(v.endswith(":/data") for v in compose["services"]["redis"]["volumes"])


def test_compose_takes_secrets_from_the_environment_or_stops() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    references = re.findall(r"\$\{([A-Z0-9_]+)([^}]*)\}", text)
    secret_refs = [(n, rest) for n, rest in references if any(w in n for w in SECRET_WORDS)]
    names = {name for name, _ in secret_refs}
    assert names >= {
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "GATEWAY_JWT_SECRETS",
        "GATEWAY_SECRET_KEY",
        "GRAFANA_ADMIN_PASSWORD",
    }
    for name, rest in secret_refs:
        assert rest.startswith(":?"), f"${{{name}}} must be ${{{name}:?message}}"
    # No literal secret values: every secret-looking key gets its value by interpolation.
    for line in text.splitlines():
        match = re.match(r"\s*([A-Z0-9_]+):\s*(\S.*)$", line)
        if match and any(w in match.group(1) for w in SECRET_WORDS):
            assert "${" in match.group(2), f"literal secret in compose: {match.group(1)}"


def test_compose_mounts_exist_and_ports_stay_on_loopback(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (OPS / source).exists(), f"{name} mounts missing {source}"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    assert (OPS / compose["services"]["gateway"]["build"]["context"] / "Dockerfile").exists()


def test_compose_settings_are_valid_gateway_settings(compose: dict[str, Any]) -> None:
    def interpolate(match: re.Match[str]) -> str:
        # ${VAR:-default} -> its default; a required ${VAR:?...} -> a long hex stand-in.
        default = re.match(r"[A-Z0-9_]+:-(.*)", match.group(1))
        return default.group(1) if default else "ab" * 20

    environment = {
        key: re.sub(r"\$\{([^}]*)\}", interpolate, str(value))
        for key, value in compose["services"]["gateway"]["environment"].items()
    }
    environment["GATEWAY_JWT_SECRETS"] = "k=" + "ab" * 20
    settings = load_settings(environment)
    assert settings.host == "0.0.0.0"  # noqa: S104 - inside a container
    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.redis_url is not None


# --- grafana -----------------------------------------------------------------------------


def test_grafana_provisioning_points_at_the_dashboard_and_datasource(
    compose: dict[str, Any],
) -> None:
    datasources = load_yaml(OPS / "grafana/provisioning/datasources/prometheus.yaml")
    uids = {d["uid"] for d in datasources["datasources"]}
    dashboard = load_dashboard()
    used = set()
    for panel in _panels(dashboard["panels"]):
        if panel["type"] == "row":
            continue
        used.add(panel["datasource"]["uid"])
        for target in panel["targets"]:
            used.add(target["datasource"]["uid"])
    assert used <= uids
    providers = load_yaml(OPS / "grafana/provisioning/dashboards/pwbi-gateway.yaml")
    path = providers["providers"][0]["options"]["path"]
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{path}:ro" in mounts
    assert DASHBOARD.parent.name == "dashboards"
    ids = [p["id"] for p in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in panels:
        found.append(panel)
        found.extend(_panels(panel.get("panels", [])))
    return found


# --- kubernetes --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def k8s() -> dict[tuple[str, str], dict[str, Any]]:
    resources: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_yaml_documents(path):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in resources, f"{key} defined twice"
            resources[key] = doc
    return resources


def test_kustomization_lists_existing_files() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    assert "migrate-job.yaml" not in kustomization["resources"]


def _deployment(k8s: dict[tuple[str, str], dict[str, Any]], name: str) -> dict[str, Any]:
    return k8s[("Deployment", name)]["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def test_deployments_are_non_root_bounded_and_outlive_the_delivery_timeout(
    k8s: dict[tuple[str, str], dict[str, Any]],
) -> None:
    config = k8s[("ConfigMap", "pwbi-gateway-config")]["data"]
    timeout = float(config["GATEWAY_DELIVERY_TIMEOUT_S"])
    assert timeout <= MAX_DELIVERY_TIMEOUT_S
    images = set()
    for name in ("pwbi-gateway", "pwbi-gateway-worker"):
        pod = _deployment(k8s, name)
        assert pod["terminationGracePeriodSeconds"] > MAX_DELIVERY_TIMEOUT_S, name
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        (container,) = pod["containers"]
        images.add(container["image"])
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), (name, kind)
        refs = {
            ref.get("configMapRef", ref.get("secretRef", {})).get("name")
            for ref in container["envFrom"]
        }
        assert refs == {"pwbi-gateway-config", "pwbi-gateway-secrets"}
    worker = _deployment(k8s, "pwbi-gateway-worker")
    assert worker["terminationGracePeriodSeconds"] > JOB_TIMEOUT_S
    job = k8s[("Job", "pwbi-gateway-migrate")]["spec"]["template"]["spec"]
    images.add(job["containers"][0]["image"])
    assert len(images) == 1, f"one image for every role: {images}"


def test_gateway_probes_healthz_and_readyz(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    (container,) = _deployment(k8s, "pwbi-gateway")["containers"]
    assert container["args"] == ["serve"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {p["containerPort"] for p in container["ports"]} == {8080}
    (worker,) = _deployment(k8s, "pwbi-gateway-worker")["containers"]
    assert worker["args"] == ["worker"]
    assert worker["livenessProbe"]["httpGet"]["port"] == "metrics"
    assert {p["containerPort"] for p in worker["ports"]} == {9108}


def test_every_deployment_has_a_disruption_budget(
    k8s: dict[tuple[str, str], dict[str, Any]],
) -> None:
    budgets = [doc for (kind, _), doc in k8s.items() if kind == "PodDisruptionBudget"]
    for (kind, name), doc in k8s.items():
        if kind != "Deployment":
            continue
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items()
        covering = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(covering) == 1, f"{name}: {len(covering)} PodDisruptionBudgets"
        assert covering[0]["spec"]["minAvailable"] < doc["spec"]["replicas"]


# --- Dockerfile --------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM\s+\S+(?:\s+AS\s+(\S+))?", text, re.MULTILINE)
    assert len(stages) >= 2
    assert "slim" in re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)[-1]
    user = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert user, "no USER"
    assert user[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK\s", text, re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["pwbi-gateway"\]', text, re.MULTILINE)
    # Every build argument is documented in the header.
    header = text.split("\nFROM", 1)[0]
    for arg in set(re.findall(r"^ARG\s+(\w+)", text, re.MULTILINE)):
        assert arg in header, f"ARG {arg} is not documented at the top of the Dockerfile"
    # What the image copies is in the build context.
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    for source in re.findall(r"^COPY\s+(?!--from)(.+)\s+\S+$", text, re.MULTILINE):
        for item in source.split():
            assert f"!{item.rstrip('/')}" in ignore or f"!{item.rstrip('/')}/" in ignore, item
            assert (ROOT / item).exists(), item


def test_dockerfile_passes_hadolint() -> None:
    hadolint = require_tool("hadolint")
    result = subprocess.run(
        [hadolint, str(Path("Dockerfile"))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
