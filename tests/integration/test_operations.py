"""Operator-facing endpoints: health, readiness, OpenAPI, metrics, request ids, logs."""

from __future__ import annotations

import logging
import re

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from app.embedded_redis import free_port
from app.http.app import create_app
from app.settings import load_settings

Client = AsyncTestClient[Litestar]


async def test_healthz_needs_nothing(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_sql_and_redis(client: Client) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"sql": "ok", "redis": "ok"}}


async def test_readyz_is_503_when_redis_is_down(gateway_env: dict[str, str]) -> None:
    env = {**gateway_env, "GATEWAY_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    async with AsyncTestClient(app=create_app(load_settings(env))) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "redis" in response.json()["detail"]


async def test_readyz_is_503_when_sql_is_down(gateway_env: dict[str, str]) -> None:
    dead = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"
    env = {**gateway_env, "GATEWAY_DATABASE_URL": dead}
    async with AsyncTestClient(app=create_app(load_settings(env))) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert "sql" in response.json()["detail"]


async def test_openapi_schema_describes_the_partner_api(client: Client) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.1")
    assert "/v1/subscriptions" in schema["paths"]
    assert "/v1/subscriptions/{subscription_id}/rotate-secret" in schema["paths"]
    assert "bearer" in schema["components"]["securitySchemes"]
    ui = await client.get("/schema")
    assert ui.status_code == 200
    assert "text/html" in ui.headers["content-type"]


async def test_metrics_group_paths_and_carry_no_ids(
    client: Client, auth: dict[str, str], tenant_id: str
) -> None:
    sub_id = await _subscription(client, auth)
    await client.get(f"/v1/subscriptions/{sub_id}", headers=auth)
    response = await client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert "gateway_requests_total" in text
    assert "/v1/subscriptions/{subscription_id}" in text
    assert sub_id not in text
    assert tenant_id not in text
    assert "whsec_" not in text


async def test_request_id_is_echoed_or_generated(client: Client) -> None:
    given = await client.get("/healthz", headers={"x-request-id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    generated = await client.get("/healthz", headers={"x-request-id": "bad id with spaces"})
    assert re.fullmatch(r"[0-9A-Z]{26}", generated.headers["x-request-id"])


async def test_unknown_route_and_wrong_method_are_problem_details(
    client: Client, auth: dict[str, str]
) -> None:
    missing = await client.get("/v1/nothing-here", headers=auth)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["request_id"] == missing.headers["x-request-id"]
    wrong = await client.put("/v1/subscriptions", headers=auth)
    assert wrong.status_code == 405
    assert wrong.json()["status"] == 405


async def test_logs_never_contain_secrets_or_tokens(
    client: Client, auth: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    from app.log_config import JsonFormatter

    caplog.set_level(logging.DEBUG)
    created = await client.post(
        "/v1/subscriptions",
        json={"url": "https://93.184.216.34/hook", "event_types": ["*"]},
        headers=auth,
    )
    secret = created.json()["secret"]
    rotated = await client.post(
        f"/v1/subscriptions/{created.json()['id']}/rotate-secret", headers=auth
    )
    await client.get("/v1/subscriptions", headers={"Authorization": "Bearer not.a.jwt"})
    token = auth["Authorization"].removeprefix("Bearer ")
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert any('"status": 201' in line for line in lines), "access log lines expected"
    for line in lines:
        assert secret not in line
        assert rotated.json()["secret"] not in line
        assert token not in line


async def test_published_events_are_counted_by_type_and_provider(
    client: Client, auth: dict[str, str]
) -> None:
    from contracts.canonical import EXAMPLES

    await client.post("/v1/events", json=EXAMPLES["sale.completed"], headers=auth)
    text = (await client.get("/metrics")).text
    assert 'gateway_events_published_total{provider="api",type="sale.completed"}' in text
    assert "gateway_fanout_size_bucket" in text


async def _subscription(client: Client, auth: dict[str, str]) -> str:
    created = await client.post(
        "/v1/subscriptions",
        json={"url": "https://93.184.216.34/hook", "event_types": ["*"]},
        headers=auth,
    )
    return str(created.json()["id"])


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_request_metrics_count_time_and_track_each_route_and_status(
    client: Client, auth: dict[str, str]
) -> None:
    sub_id = await _subscription(client, auth)
    route = "/v1/subscriptions/{subscription_id}"

    def series(name: str, status: str | None) -> tuple[str, tuple[tuple[str, str], ...]]:
        labels = {"app_name": "pwbi-gateway", "method": "GET", "path": route}
        labels["status_code"] = status or "200"
        return name, tuple(sorted(labels.items()))

    before = _samples((await client.get("/metrics")).text)
    for _ in range(3):
        assert (await client.get(f"/v1/subscriptions/{sub_id}", headers=auth)).status_code == 200
    missing = await client.get("/v1/subscriptions/sub_nothing", headers=auth)
    assert missing.status_code == 404
    after = _samples((await client.get("/metrics")).text)

    def grew(name: str, status: str) -> float:
        key = series(name, status)
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("gateway_requests_total", "200") == 3
    assert grew("gateway_request_duration_seconds_count", "200") == 3
    assert grew("gateway_request_duration_seconds_sum", "200") > 0
    assert grew("gateway_requests_total", "404") == 1
    assert grew("gateway_requests_error_total", "404") == 0  # only 5xx count as errors
    assert after[series("gateway_requests_in_progress", None)] == 0  # none left open
