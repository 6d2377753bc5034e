"""Dashboard and alert queries name only metrics a real gateway and worker export.

Starts `pwbi-gateway serve` and `pwbi-gateway worker` (tests/e2e/stack.py), reads both
/metrics endpoints and checks every PromQL expression of the Grafana dashboard and of the
alert rules against the union. The container health check runs against the same processes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from app.embedded_redis import free_port
from tests import backends
from tests.conftest import HS_KID, HS_SECRET
from tests.e2e.stack import Stack
from tests.ops.common import (
    OPS,
    alert_rules,
    dashboard_exprs,
    load_dashboard,
)
from tests.ops.promql import exported_names, metric_names

# Series that Prometheus or the blackbox exporter create, not our processes; each is named
# with where it comes from, so nothing slips through as "built in".
EXTERNAL_METRICS = {
    "up": "Prometheus: 1 when a target's scrape succeeded (WorkersAbsent, GatewayDown)",
    "probe_success": "blackbox exporter, job gateway-readyz: GET /readyz answered 2xx",
}

# What the issue asks the dashboard to show, as the metric families behind it.
DASHBOARD_MUST_SHOW = {
    "gateway_events_published_total",  # publish rate by provider
    "gateway_inbound_requests_total",  # inbound rate by provider
    "gateway_delivery_attempts_total",  # delivery outcomes
    "gateway_delivery_attempt_duration_seconds_bucket",  # attempt latency p50/p99
    "gateway_queue_depth",
    "gateway_delivery_oldest_due_lag_seconds",  # queue lag
    "gateway_delivery_retries_scheduled_total",
    "gateway_delivery_give_ups_total",
    "gateway_subscriptions_disabled_total",
    "gateway_request_duration_seconds_bucket",  # API latency
    "gateway_requests_total",  # API errors (status_code=~"5..")
}


@dataclass
class Exported:
    gateway: set[str]
    worker: set[str]
    stack: Stack
    worker_metrics_port: int

    @property
    def union(self) -> set[str]:
        return self.gateway | self.worker


@pytest.fixture(scope="module")
def exported(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Exported]:
    if database_url.startswith("sqlite") and backends.postgres_available() is None:
        pytest.skip("metric names do not depend on the store: checked once, on PostgreSQL")
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    stack = Stack(
        env={
            "GATEWAY_DATABASE_URL": database_url,
            "GATEWAY_REDIS_URL": redis_url,
            "GATEWAY_JWT_SECRETS": f"{HS_KID}={HS_SECRET}",
            "GATEWAY_LOG_LEVEL": "WARNING",
        }
    )
    log_dir = tmp_path_factory.mktemp("ops-stack")
    try:
        stack.start(log_dir, workers=0)
        # Stack.start turns worker metrics off; this worker serves them on a free port.
        port = free_port()
        stack.env["GATEWAY_WORKER_METRICS_PORT"] = str(port)
        worker = stack.start_worker()
        worker_text = _wait_for_metrics(f"http://127.0.0.1:{port}/metrics", worker, log_dir)
        # Litestar creates its HTTP metrics on the first request it counts.
        httpx.get(f"{stack.base_url}/healthz", timeout=5)
        httpx.get(f"{stack.base_url}/v1/subscriptions", timeout=5)  # 401, no token
        gateway = httpx.get(f"{stack.base_url}/metrics", timeout=5)
        assert gateway.status_code == 200
        yield Exported(
            gateway=exported_names(gateway.text),
            worker=exported_names(worker_text),
            stack=stack,
            worker_metrics_port=port,
        )
    finally:
        stack.stop()


def _wait_for_metrics(url: str, worker: subprocess.Popen[bytes], log_dir: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert worker.poll() is None, f"worker exited; see {log_dir}/worker0.log"
        try:
            response = httpx.get(url, timeout=1)
            if response.status_code == 200:
                return response.text
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"worker metrics never answered at {url}; see {log_dir}/worker0.log")


def test_both_processes_export_their_own_metrics(exported: Exported) -> None:
    assert {"gateway_requests_total", "gateway_request_duration_seconds_bucket"} <= (
        exported.gateway
    )
    assert "gateway_events_published_total" in exported.gateway
    assert {
        "gateway_delivery_attempts_total",
        "gateway_delivery_attempt_duration_seconds_bucket",
        "gateway_queue_depth",
        "gateway_delivery_oldest_due_lag_seconds",
    } <= exported.worker


def test_dashboard_queries_use_only_exported_metrics(exported: Exported) -> None:
    exprs = dashboard_exprs(load_dashboard())
    assert len(exprs) >= 20
    used: set[str] = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"a dashboard query selects no metric: {expr!r}"
        unknown = names - exported.union - set(EXTERNAL_METRICS)
        assert not unknown, f"dashboard query names metrics nobody exports: {unknown} in {expr!r}"
        used |= names
    missing = DASHBOARD_MUST_SHOW - used
    assert not missing, f"the dashboard shows nothing of {sorted(missing)}"


def test_alert_rules_use_only_exported_metrics(exported: Exported) -> None:
    for rule in alert_rules():
        names = metric_names(rule["expr"])
        unknown = names - exported.union - set(EXTERNAL_METRICS)
        assert not unknown, f"alert {rule['alert']} names metrics nobody exports: {unknown}"


def test_container_healthcheck_probes_both_roles(exported: Exported) -> None:
    script = OPS / "docker" / "healthcheck.py"
    # As in the image: listening on all interfaces, so the check probes loopback.
    base_env = {"PATH": "/usr/bin:/bin", "GATEWAY_HOST": "0.0.0.0"}  # noqa: S104

    def run(role: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), role],
            env={**base_env, **env},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    gateway_port = str(exported.stack.port)
    worker_port = str(exported.worker_metrics_port)
    healthy = run("serve", GATEWAY_PORT=gateway_port)
    assert healthy.returncode == 0, healthy.stdout
    assert "/healthz answered 200" in healthy.stdout
    assert run("worker", GATEWAY_WORKER_METRICS_PORT=worker_port).returncode == 0
    assert run("worker", GATEWAY_WORKER_METRICS_PORT="0").returncode == 0
    assert run("migrate").returncode == 0
    down = run("serve", GATEWAY_PORT=str(free_port()))
    assert down.returncode == 1
    assert "UNHEALTHY" in down.stdout


def test_each_process_exports_only_its_own_families(exported: Exported) -> None:
    worker_only = {
        "gateway_delivery_attempts_total",
        "gateway_queue_depth",
        "gateway_delivery_oldest_due_lag_seconds",
        "gateway_sweeper_enqueued_total",
        "gateway_delivery_give_ups_total",
    }
    api_only = {"gateway_requests_total", "gateway_request_duration_seconds_bucket"}
    assert not worker_only & exported.gateway, "the API process exports worker families"
    assert not api_only & exported.worker, "the worker exports the API's request families"


# Prometheus's own scrape header, then the other forms a client may send.
SCRAPE_ACCEPTS = [
    "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
    "application/openmetrics-text",
    "text/plain",
    "*/*",
    "",
]


@pytest.mark.parametrize("accept", SCRAPE_ACCEPTS)
def test_both_metrics_endpoints_negotiate_the_same_way(exported: Exported, accept: str) -> None:
    headers = {"accept": accept} if accept else {}
    gateway = httpx.get(f"{exported.stack.base_url}/metrics", headers=headers, timeout=5)
    worker = httpx.get(
        f"http://127.0.0.1:{exported.worker_metrics_port}/metrics", headers=headers, timeout=5
    )
    assert gateway.status_code == worker.status_code == 200
    assert gateway.headers["content-type"] == worker.headers["content-type"]
    if "openmetrics" in accept:
        assert gateway.headers["content-type"].startswith("application/openmetrics-text")
        assert gateway.text.rstrip().endswith("# EOF")
