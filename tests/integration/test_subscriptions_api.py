"""The subscriptions API as a partner uses it, on SQLite and PostgreSQL, with real Redis."""

from __future__ import annotations

import ipaddress
import re
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.clock import utcnow
from app.ids import new_id
from app.store.tables import audit_log, deliveries, events, subscriptions
from app.store.unfinished import sync_unfinished
from tests.conftest import TokenFactory

Client = AsyncTestClient[Litestar]
PUBLIC_URL = "https://93.184.216.34/webhooks/pwbi"
SECRET_SHAPE = re.compile(r"^whsec_[A-Za-z0-9+/]{43}=$")


async def create(client: Client, auth: dict[str, str], **overrides: Any) -> dict[str, Any]:
    body = {"url": PUBLIC_URL, "event_types": ["order.*"], **overrides}
    response = await client.post("/v1/subscriptions", json=body, headers=auth)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def count_rows(engine: AsyncEngine, table: sa.Table) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def test_create_returns_the_secret_once(client: Client, auth: dict[str, str]) -> None:
    created = await create(client, auth, description="analytics", max_in_flight=4, timeout_s=9)
    assert created["id"].startswith("sub_")
    assert SECRET_SHAPE.match(created["secret"])
    assert created["status"] == "enabled"
    assert created["max_in_flight"] == 4
    assert created["timeout_s"] == 9
    fetched = (await client.get(f"/v1/subscriptions/{created['id']}", headers=auth)).json()
    assert "secret" not in fetched
    assert fetched["description"] == "analytics"
    listed = (await client.get("/v1/subscriptions", headers=auth)).json()
    assert all("secret" not in item for item in listed["data"])


async def test_defaults_follow_the_contract(client: Client, auth: dict[str, str]) -> None:
    created = await create(client, auth)
    assert created["max_in_flight"] == 10
    assert created["timeout_s"] == 15
    assert created["rate_limit_per_s"] is None
    assert created["headers"] == {}
    assert created["created_at"].endswith("Z")


async def test_list_is_newest_first_and_cursor_paginated(
    client: Client, auth: dict[str, str]
) -> None:
    ids = [(await create(client, auth, description=str(i)))["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/subscriptions", params=params, headers=auth)).json()
        seen += [item["id"] for item in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    assert pages == 3


@pytest.mark.parametrize(
    ("params", "field"),
    [({"cursor": "not-a-cursor"}, "cursor"), ({"limit": 501}, "limit"), ({"limit": 0}, "limit")],
)
async def test_bad_list_parameters_are_422(
    client: Client, auth: dict[str, str], params: dict[str, Any], field: str
) -> None:
    response = await client.get("/v1/subscriptions", params=params, headers=auth)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in [e["field"] for e in response.json()["errors"]]


async def test_patch_changes_only_given_fields_and_null_clears(
    client: Client, auth: dict[str, str]
) -> None:
    created = await create(client, auth, description="old", rate_limit_per_s=5)
    response = await client.patch(
        f"/v1/subscriptions/{created['id']}",
        json={"description": None, "event_types": ["sale.completed", "order.created"]},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["description"] is None
    assert updated["event_types"] == ["sale.completed", "order.created"]
    assert updated["rate_limit_per_s"] == 5
    assert updated["url"] == PUBLIC_URL
    assert updated["updated_at"] >= created["updated_at"]


async def test_patch_with_a_private_url_changes_nothing(
    client: Client, auth: dict[str, str]
) -> None:
    created = await create(client, auth)
    response = await client.patch(
        f"/v1/subscriptions/{created['id']}",
        json={"url": "https://10.1.2.3/hook", "description": "changed"},
        headers=auth,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "url"
    current = (await client.get(f"/v1/subscriptions/{created['id']}", headers=auth)).json()
    assert current["url"] == PUBLIC_URL
    assert current["description"] is None


async def test_headers_http_allows_are_accepted_as_given(
    client: Client, auth: dict[str, str]
) -> None:
    headers = {
        "Authorization": "Bearer a.b.c",
        "X-Spaced": "two words\tand a tab",
        "X-Empty": "",
        "!#$%&'*+-.^_`|~09azAZ": "~!@#$%^&*()_+{}|:<>?",
    }
    created = await create(client, auth, headers=headers)
    assert created["headers"] == headers


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"headers": {"X-A": "a\u0001b"}}, "headers.X-A"),
        ({"headers": {"X-\u212a": "v"}}, "headers.X-\u212a"),
        ({"url": "https://93.184.216.34/hook?token=a b"}, "url"),
    ],
)
async def test_patch_with_headers_or_url_http_cannot_carry_changes_nothing(
    client: Client, auth: dict[str, str], change: dict[str, Any], field: str
) -> None:
    created = await create(client, auth, headers={"X-Kept": "yes"})
    response = await client.patch(
        f"/v1/subscriptions/{created['id']}", json={**change, "description": "x"}, headers=auth
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in response.json()["errors"]] == [field]
    current = (await client.get(f"/v1/subscriptions/{created['id']}", headers=auth)).json()
    assert current["headers"] == {"X-Kept": "yes"}
    assert current["url"] == PUBLIC_URL
    assert current["description"] is None


def test_refusals_name_the_character_never_the_value() -> None:
    from contracts.http_syntax import header_value_problem

    problem = header_value_problem("Bearer s3cr3t\u0001")
    assert problem is not None
    assert "U+0001" in problem
    assert "s3cr3t" not in problem


async def _add_pending_delivery(engine: AsyncEngine, tenant_id: str, subscription_id: str) -> str:
    now = utcnow()
    event_id, delivery_id = new_id("evt"), new_id("dlv")
    async with engine.begin() as conn:
        await conn.execute(
            events.insert().values(
                id=event_id,
                tenant_id=tenant_id,
                type="order.created",
                occurred_at=now,
                received_at=now,
                payload="{}",
            )
        )
        await conn.execute(
            deliveries.insert().values(
                id=delivery_id,
                tenant_id=tenant_id,
                event_id=event_id,
                subscription_id=subscription_id,
                status="pending",
                attempt_count=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
        )
        await sync_unfinished(conn, [delivery_id])
    return delivery_id


async def _delivery_status(engine: AsyncEngine, delivery_id: str) -> str:
    async with engine.connect() as conn:
        query = sa.select(deliveries.c.status).where(deliveries.c.id == delivery_id)
        return str((await conn.execute(query)).scalar_one())


async def test_delete_hides_the_subscription_and_cancels_pending_deliveries(
    client: Client, auth: dict[str, str], engine: AsyncEngine, tenant_id: str
) -> None:
    created = await create(client, auth)
    delivery_id = await _add_pending_delivery(engine, tenant_id, created["id"])
    response = await client.delete(f"/v1/subscriptions/{created['id']}", headers=auth)
    assert response.status_code == 204
    assert (await client.get(f"/v1/subscriptions/{created['id']}", headers=auth)).status_code == 404
    assert (
        await client.delete(f"/v1/subscriptions/{created['id']}", headers=auth)
    ).status_code == 404
    listed = (await client.get("/v1/subscriptions", headers=auth)).json()
    assert listed["data"] == []
    assert await _delivery_status(engine, delivery_id) == "cancelled"


async def test_disable_cancels_pending_and_enable_restores(
    client: Client, auth: dict[str, str], engine: AsyncEngine, tenant_id: str
) -> None:
    created = await create(client, auth)
    delivery_id = await _add_pending_delivery(engine, tenant_id, created["id"])
    disabled = await client.post(f"/v1/subscriptions/{created['id']}/disable", headers=auth)
    assert disabled.status_code == 200
    assert disabled.json()["status"] == "disabled"
    assert disabled.json()["disabled_reason"] == "partner"
    assert await _delivery_status(engine, delivery_id) == "cancelled"
    enabled = await client.post(f"/v1/subscriptions/{created['id']}/enable", headers=auth)
    assert enabled.json()["status"] == "enabled"
    assert enabled.json()["disabled_reason"] is None


async def test_rotation_returns_a_new_secret_and_keeps_the_old_for_the_grace_period(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    created = await create(client, auth)
    before = datetime.now(UTC)
    response = await client.post(
        f"/v1/subscriptions/{created['id']}/rotate-secret",
        json={"grace_period_s": 3600},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    rotated = response.json()
    assert SECRET_SHAPE.match(rotated["secret"])
    assert rotated["secret"] != created["secret"]
    expires = datetime.fromisoformat(rotated["previous_secret_expires_at"])
    assert before + timedelta(seconds=3590) < expires < before + timedelta(seconds=3610)
    async with engine.connect() as conn:
        row = (
            await conn.execute(sa.select(subscriptions).where(subscriptions.c.id == created["id"]))
        ).one()
    assert row.previous_secret.endswith(created["secret"])
    assert row.secret.endswith(rotated["secret"])


async def test_rotation_without_body_uses_a_day_of_grace(
    client: Client, auth: dict[str, str]
) -> None:
    created = await create(client, auth)
    response = await client.post(f"/v1/subscriptions/{created['id']}/rotate-secret", headers=auth)
    assert response.status_code == 200
    expires = datetime.fromisoformat(response.json()["previous_secret_expires_at"])
    assert abs((expires - datetime.now(UTC)) - timedelta(days=1)) < timedelta(seconds=30)


async def test_rotation_grace_longer_than_a_week_is_422(
    client: Client, auth: dict[str, str]
) -> None:
    created = await create(client, auth)
    response = await client.post(
        f"/v1/subscriptions/{created['id']}/rotate-secret",
        json={"grace_period_s": 8 * 86400},
        headers=auth,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "grace_period_s"


async def test_every_write_leaves_an_audit_row(
    client: Client, auth: dict[str, str], engine: AsyncEngine, tenant_id: str
) -> None:
    created = await create(client, auth)
    sub = f"/v1/subscriptions/{created['id']}"
    await client.patch(sub, json={"description": "x"}, headers=auth)
    await client.post(f"{sub}/rotate-secret", headers=auth)
    await client.post(f"{sub}/disable", headers=auth)
    await client.post(f"{sub}/enable", headers=auth)
    await client.delete(sub, headers=auth)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(audit_log)
                .where(audit_log.c.target == created["id"])
                .order_by(audit_log.c.id)
            )
        ).all()
    assert [r.action for r in rows] == [
        "subscription.created",
        "subscription.updated",
        "subscription.secret_rotated",
        "subscription.disabled",
        "subscription.enabled",
        "subscription.deleted",
    ]
    assert {r.actor for r in rows} == {tenant_id}
    assert {r.tenant_id for r in rows} == {tenant_id}
    assert all(r.created_at.tzinfo is not None for r in rows)
    # Audit details never hold the signing secret.
    assert all("whsec_" not in str(r.details) for r in rows)


async def test_another_tenants_subscription_answers_404_for_everything(
    client: Client,
    auth: dict[str, str],
    other_tenant_id: str,
    make_token: TokenFactory,
) -> None:
    created = await create(client, auth)
    other = {"Authorization": f"Bearer {make_token(other_tenant_id)}"}
    sub = f"/v1/subscriptions/{created['id']}"
    assert (await client.get(sub, headers=other)).status_code == 404
    assert (await client.patch(sub, json={"description": "x"}, headers=other)).status_code == 404
    assert (await client.post(f"{sub}/rotate-secret", headers=other)).status_code == 404
    assert (await client.post(f"{sub}/disable", headers=other)).status_code == 404
    assert (await client.post(f"{sub}/enable", headers=other)).status_code == 404
    assert (await client.delete(sub, headers=other)).status_code == 404
    assert (await client.get("/v1/subscriptions", headers=other)).json()["data"] == []
    # And nothing changed for the owner.
    mine = (await client.get(sub, headers=auth)).json()
    assert mine["status"] == "enabled"
    assert mine["description"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_types": ["order.*"]}, "url"),
        ({"url": PUBLIC_URL}, "event_types"),
        ({"url": PUBLIC_URL, "event_types": []}, "event_types"),
        ({"url": PUBLIC_URL, "event_types": ["orders.*"]}, "event_types[0]"),
        ({"url": PUBLIC_URL, "event_types": ["order.created", "Order Created"]}, "event_types[1]"),
        ({"url": PUBLIC_URL, "event_types": ["*"], "timeout_s": 31}, "timeout_s"),
        ({"url": PUBLIC_URL, "event_types": ["*"], "max_in_flight": 0}, "max_in_flight"),
        ({"url": PUBLIC_URL, "event_types": ["*"], "rate_limit_per_s": "fast"}, "rate_limit_per_s"),
        ({"url": PUBLIC_URL, "event_types": ["*"], "colour": "red"}, "colour"),
        (
            {"url": PUBLIC_URL, "event_types": ["*"], "headers": {"webhook-id": "x"}},
            "headers.webhook-id",
        ),
        (
            {"url": PUBLIC_URL, "event_types": ["*"], "headers": {"bad name": "x"}},
            "headers.bad name",
        ),
        (
            {"url": PUBLIC_URL, "event_types": ["*"], "headers": {"X-A": "a\r\nX-B: b"}},
            "headers.X-A",
        ),
        ({"url": PUBLIC_URL, "event_types": ["*"], "source_ids": ["src_nope"]}, "source_ids"),
        *[
            ({"url": PUBLIC_URL, "event_types": ["*"], "headers": headers}, field)
            for headers, field in [
                ({"X-A": "a\u0001b"}, "headers.X-A"),
                ({"X-A": "a\u007fb"}, "headers.X-A"),
                ({"X-A": "a\u0000b"}, "headers.X-A"),
                # U+212A KELVIN SIGN lowercases to an ASCII "k", yet HTTP cannot carry it.
                ({"X-\u212a": "v"}, "headers.X-\u212a"),
                ({"X:A": "v"}, "headers.X:A"),
                ({"": "v"}, "headers."),
                ({"X-A": "caf\u00e9"}, "headers.X-A"),
                ({"X-A": "\u20ac"}, "headers.X-A"),
                ({"X-A": " padded"}, "headers.X-A"),
                ({"X-A": "padded\t"}, "headers.X-A"),
                ({"X-A": "1", "x-a": "2"}, "headers.x-a"),
                ({"Webhook-Signature": "v1,forged"}, "headers.Webhook-Signature"),
            ]
        ],
        *[
            ({"url": url, "event_types": ["*"]}, "url")
            for url in [
                "https://93.184.216.34/web hooks",
                "https://93.184.216.34/hook?token=a b",
                "https://93.184.216.34/hook\tx",
                "https://93.184.216.34/hook\nx",
                "https://93.184.216.34/hook\u0001",
                "https://93.184.216.34/hook?q=a\u00a0b",
                "https://93.184.216.34\u0001/hook",
                "https://exa mple.com/hook",
            ]
        ],
        ({"url": "ftp://93.184.216.34/", "event_types": ["*"]}, "url"),
        ({"url": "http://93.184.216.34/", "event_types": ["*"]}, "url"),
        ({"url": "https://user:pw@93.184.216.34/", "event_types": ["*"]}, "url"),
    ],
)
async def test_invalid_subscription_is_422_naming_the_field_and_stores_nothing(
    client: Client, auth: dict[str, str], engine: AsyncEngine, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/v1/subscriptions", json=body, headers=auth)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["status"] == 422
    assert field in [e["field"] for e in problem["errors"]], problem
    assert await count_rows(engine, subscriptions) == 0
    assert await count_rows(engine, audit_log) == 1  # only the tenant's creation


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://127.1/hook",
        "https://2130706433/hook",
        "https://0x7f000001/hook",
        "https://0177.0.0.1/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:a00:1]/hook",
        "https://10.0.0.8/hook",
        "https://172.16.5.4/hook",
        "https://192.168.1.1/hook",
        "https://100.64.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[fe80::1]/hook",
        "https://[fd00::1]/hook",
        "https://0.0.0.0/hook",
        "https://localhost/hook",
        "https://api.localhost/hook",
    ],
)
async def test_non_global_targets_are_refused(
    client: Client, auth: dict[str, str], engine: AsyncEngine, url: str
) -> None:
    response = await client.post(
        "/v1/subscriptions", json={"url": url, "event_types": ["*"]}, headers=auth
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "url"
    assert await count_rows(engine, subscriptions) == 0


async def test_a_hostname_resolving_to_loopback_is_refused(
    client: Client, auth: dict[str, str]
) -> None:

    host = socket.gethostname()
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, 443)}
    except OSError:
        pytest.skip("this machine's own hostname does not resolve")
    if all(ipaddress.ip_address(a).is_global for a in addresses):
        pytest.skip("this machine's hostname resolves to a public address")
    response = await client.post(
        "/v1/subscriptions",
        json={"url": f"https://{host}/hook", "event_types": ["*"]},
        headers=auth,
    )
    assert response.status_code == 422
    assert "resolves" in response.json()["detail"]


async def test_allow_listed_cidr_and_plain_http_are_accepted_when_configured(
    gateway_env: dict[str, str], engine: AsyncEngine, auth: dict[str, str]
) -> None:
    from app.http.app import create_app
    from app.settings import load_settings

    env = {**gateway_env, "GATEWAY_SSRF_ALLOW_CIDRS": "127.0.0.0/8", "GATEWAY_ALLOW_HTTP": "true"}
    async with AsyncTestClient(app=create_app(load_settings(env))) as client:
        response = await client.post(
            "/v1/subscriptions",
            json={"url": "http://127.0.0.1:9/hook", "event_types": ["*"]},
            headers=auth,
        )
        assert response.status_code == 201, response.text
        refused = await client.post(
            "/v1/subscriptions",
            json={"url": "http://10.0.0.1/hook", "event_types": ["*"]},
            headers=auth,
        )
        assert refused.status_code == 422


async def test_malformed_json_is_422_and_stores_nothing(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    response = await client.post(
        "/v1/subscriptions",
        content=b'{"url": "https://93.184.216.34/", "event_types": ["*"]',
        headers={**auth, "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert "not valid JSON" in response.json()["detail"]
    assert await count_rows(engine, subscriptions) == 0


async def test_wrong_content_type_is_415(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    response = await client.post(
        "/v1/subscriptions",
        content=b"url=https://93.184.216.34/&event_types=*",
        headers={**auth, "content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await count_rows(engine, subscriptions) == 0


async def test_oversized_body_is_413(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    huge = {"url": PUBLIC_URL, "event_types": ["*"], "description": "x" * 70_000}
    response = await client.post("/v1/subscriptions", json=huge, headers=auth)
    assert response.status_code == 413
    assert response.json()["status"] == 413
    assert await count_rows(engine, subscriptions) == 0
