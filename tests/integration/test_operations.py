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
from tests.conftest import TokenFactory

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
    in_progress = (
        "gateway_requests_in_progress",
        tuple(sorted({"app_name": "pwbi-gateway", "method": "GET", "path": route}.items())),
    )
    assert after[in_progress] == 0  # none left open


def _requests_total(text: str, path: str, status: str, method: str = "GET") -> float:
    labels = {"app_name": "pwbi-gateway", "method": method, "path": path, "status_code": status}
    return _samples(text).get(("gateway_requests_total", tuple(sorted(labels.items()))), 0.0)


async def test_auth_failures_and_errors_are_counted_with_their_real_status(
    client: Client, app: Litestar, make_token: TokenFactory, tenant_id: str
) -> None:
    route = "/v1/subscriptions"
    before = (await client.get("/metrics")).text
    assert (await client.get(route)).status_code == 401
    assert (await client.get(route, headers={"Authorization": "Bearer x"})).status_code == 401
    weak = {"Authorization": f"Bearer {make_token(tenant_id, ('events:read',))}"}
    assert (await client.get(route, headers=weak)).status_code == 403

    # An error nobody foresaw, raised while authenticating: a 500, and counted as one.
    resources = app.state.resources

    async def broken(token: str) -> None:
        raise RuntimeError("verifier broke")

    original = resources.verifier.verify
    resources.verifier.verify = broken
    try:
        assert (await client.get(route, headers=weak)).status_code == 500
    finally:
        resources.verifier.verify = original
    after = (await client.get("/metrics")).text

    def grew(status: str) -> float:
        return _requests_total(after, route, status) - _requests_total(before, route, status)

    assert grew("401") == 2
    assert grew("403") == 1
    assert grew("500") == 1
    assert grew("200") == 0
    errors = {
        "app_name": "pwbi-gateway",
        "method": "GET",
        "path": route,
        "status_code": "500",
    }
    key = ("gateway_requests_error_total", tuple(sorted(errors.items())))
    assert _samples(after)[key] - _samples(before).get(key, 0.0) == 1


async def test_unknown_routes_are_counted_under_one_label(client: Client) -> None:
    for n in range(3):
        assert (await client.get(f"/no/such/route/{n}")).status_code == 404
    text = (await client.get("/metrics")).text
    assert _requests_total(text, "<unmatched>", "404") >= 3
    assert "/no/such/route" not in text


async def test_requests_in_progress_has_no_status_label(
    client: Client, auth: dict[str, str]
) -> None:
    await client.get("/v1/subscriptions", headers=auth)
    families = {
        f.name: f for f in text_string_to_metric_families((await client.get("/metrics")).text)
    }
    samples = families["gateway_requests_in_progress"].samples
    assert samples, "the gauge has a series per route once requests were made"
    assert all("status_code" not in s.labels for s in samples)


# Only what the delivery workers measure; the API process must not export them as zeros.
WORKER_ONLY = (
    "gateway_delivery_attempts_total",
    "gateway_delivery_attempt_duration_seconds",
    "gateway_delivery_retries_scheduled_total",
    "gateway_delivery_give_ups_total",
    "gateway_subscriptions_disabled_total",
    "gateway_delivery_throttled_total",
    "gateway_queue_depth",
    "gateway_delivery_oldest_due_lag_seconds",
    "gateway_sweeper_enqueued_total",
)


async def test_gateway_exports_none_of_the_worker_families(client: Client) -> None:
    # Both are imported in this process (the test run holds everything), still not exported.
    import app.delivery.attempts  # noqa: F401
    import workers.sweeper  # noqa: F401

    text = (await client.get("/metrics")).text
    names = {family.name for family in text_string_to_metric_families(text)}
    assert not {n.removesuffix("_total") for n in WORKER_ONLY} & names
    assert "process_resident_memory_bytes" in names


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (None, "text/plain; version=0.0.4; charset=utf-8"),
        ("text/plain", "text/plain; version=0.0.4; charset=utf-8"),
        ("application/openmetrics-text; version=1.0.0", "application/openmetrics-text"),
        (
            # What Prometheus 2.x/3.x sends when scraping.
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,"
            "*/*;q=0.2",
            "application/openmetrics-text",
        ),
    ],
)
async def test_metrics_negotiate_openmetrics_when_asked(
    client: Client, accept: str | None, content_type: str
) -> None:
    headers = {"accept": accept} if accept else {}
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(content_type)
    if content_type.startswith("application/openmetrics-text"):
        assert response.text.rstrip().endswith("# EOF")
