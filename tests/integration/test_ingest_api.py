"""Provider traffic through the HTTP endpoints, with real signatures and tokens."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.delivery.signing import webhook_headers
from app.store.tables import events
from contracts.canonical import EXAMPLES
from tests.conftest import TokenFactory
from tests.fixtures import PROVIDER_FIXTURES

Client = AsyncTestClient[Litestar]


def fixture(name: str) -> bytes:
    return (PROVIDER_FIXTURES / name).read_bytes()


async def create_source(client: Client, auth: dict[str, str], provider: str) -> dict[str, Any]:
    response = await client.post(
        "/v1/sources", json={"provider": provider, "name": f"{provider} outlet"}, headers=auth
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def stored_events(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(events.c.payload).order_by(events.c.id))
        return [json.loads(r.payload) for r in rows]


def gofood_headers(secret: str, body: bytes) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "X-Go-Signature": signature}


async def grab_token(client: Client, source: dict[str, Any]) -> str:
    credentials = source["credentials"]
    response = await client.post(
        source["endpoints"]["oauth_token"].replace("http://127.0.0.1:8080", ""),
        content=(
            f"client_id={credentials['client_id']}&client_secret={credentials['client_secret']}"
            "&grant_type=client_credentials&scope=food.partner_api"
        ).encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"
    return str(response.json()["access_token"])


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


# --- sources ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "credential_keys"),
    [
        ("gofood", {"notification_secret"}),
        ("grabfood", {"client_id", "client_secret"}),
        ("shopeefood", {"partner_key"}),
        ("custom_pos", {"secret"}),
    ],
)
async def test_a_source_hands_out_its_ingest_url_and_credentials_once(
    client: Client, auth: dict[str, str], provider: str, credential_keys: set[str]
) -> None:
    created = await create_source(client, auth, provider)
    assert created["id"].startswith("src_")
    assert created["ingest_url"].endswith(f"/v1/ingest/{created['id']}")
    assert set(created["credentials"]) == credential_keys
    fetched = (await client.get(f"/v1/sources/{created['id']}", headers=auth)).json()
    assert "credentials" not in fetched
    listed = (await client.get("/v1/sources", headers=auth)).json()["data"]
    assert [s["id"] for s in listed] == [created["id"]]
    assert all("credentials" not in s for s in listed)
    if provider == "custom_pos":
        assert created["credentials"]["secret"].startswith("whsec_")
    if provider == "grabfood":
        assert set(created["endpoints"]) >= {"oauth_token", "submit_order", "push_order_state"}


async def test_credentials_are_stored_sealed_when_a_secret_key_is_set(
    gateway_env: dict[str, str], engine: AsyncEngine, auth: dict[str, str]
) -> None:
    from app.http.app import create_app
    from app.settings import load_settings

    env = {**gateway_env, "GATEWAY_SECRET_KEY": "k" * 40}
    async with AsyncTestClient(app=create_app(load_settings(env))) as sealed_client:
        created = await create_source(sealed_client, auth, "gofood")
    async with engine.connect() as conn:
        stored = (await conn.execute(sa.text("SELECT credentials FROM sources"))).scalar_one()
    assert created["credentials"]["notification_secret"] not in stored
    assert stored.startswith("fernet:")


async def test_bad_source_bodies_are_422(client: Client, auth: dict[str, str]) -> None:
    for body in (
        {"provider": "foodpanda", "name": "x"},
        {"provider": "gofood"},
        {"provider": "gofood", "name": ""},
        {"provider": "gofood", "name": "x", "y": 1},
    ):
        response = await client.post("/v1/sources", json=body, headers=auth)
        assert response.status_code == 422, body
    assert (await client.get("/v1/sources", headers=auth)).json()["data"] == []


async def test_sources_are_private_to_their_tenant_and_need_their_scopes(
    client: Client,
    auth: dict[str, str],
    other_tenant_id: str,
    tenant_id: str,
    make_token: TokenFactory,
) -> None:
    created = await create_source(client, auth, "gofood")
    other = {"Authorization": f"Bearer {make_token(other_tenant_id)}"}
    for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/rotate-credentials")):
        response = await client.request(
            method, f"/v1/sources/{created['id']}{suffix}", headers=other
        )
        assert response.status_code == 404
    reader = {"Authorization": f"Bearer {make_token(tenant_id, scopes=('sources:read',))}"}
    assert (await client.get("/v1/sources", headers=reader)).status_code == 200
    forbidden = await client.post(
        "/v1/sources", json={"provider": "gofood", "name": "x"}, headers=reader
    )
    assert forbidden.status_code == 403


# --- GoFood ----------------------------------------------------------------------------


async def test_gofood_order_becomes_a_canonical_order_with_exact_rupiah(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    source = await create_source(client, auth, "gofood")
    body = fixture("gofood_order_awaiting_merchant_acceptance.json")
    headers = gofood_headers(source["credentials"]["notification_secret"], body)
    response = await client.post(path_of(source["ingest_url"]), content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    [created] = [e for e in await stored_events(engine) if e["type"] == "order.created"]
    assert created["source"] == {
        "source_id": source["id"],
        "provider": "gofood",
        "method": "webhook",
        "provider_event_id": "6f1c2a0e-8d3b-4b7e-9a51-0c2d6e7f8a90",
        "provider_event_name": "gofood.order.awaiting_merchant_acceptance",
    }
    data = created["data"]
    assert data["external_order_id"] == "F-460335259"
    assert data["status"] == "awaiting_acceptance"
    assert data["totals"]["total"] == {"amount": 11000000, "currency": "IDR"}
    assert data["lines"][0]["unit_price"] == {"amount": 11000000, "currency": "IDR"}
    assert data["lines"][0]["name"] == "Salmon Pizza"
    assert data["store"]["external_id"] == "G1898453S"
    assert created["occurred_at"].endswith("+07:00")
    assert created["sequence"] == 1


async def test_a_bad_gofood_signature_is_401_and_stores_nothing(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    source = await create_source(client, auth, "gofood")
    body = fixture("gofood_order_completed.json")
    for headers in (
        gofood_headers("not-the-secret", body),
        {"content-type": "application/json"},
        gofood_headers(source["credentials"]["notification_secret"], body + b" "),
    ):
        response = await client.post(path_of(source["ingest_url"]), content=body, headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
    assert await stored_events(engine) == []
    metrics = (await client.get("/metrics")).text
    assert 'gateway_inbound_requests_total{outcome="bad_signature",provider="gofood"}' in metrics


async def test_a_gofood_redelivery_is_acknowledged_without_a_second_event(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    source = await create_source(client, auth, "gofood")
    body = fixture("gofood_order_completed.json")
    headers = gofood_headers(source["credentials"]["notification_secret"], body)
    first = await client.post(path_of(source["ingest_url"]), content=body, headers=headers)
    count = len(await stored_events(engine))
    again = await client.post(path_of(source["ingest_url"]), content=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert sorted(again.json()["events"]) == sorted(first.json()["events"])
    assert len(await stored_events(engine)) == count


async def test_unparseable_payloads_are_422_and_stored_nowhere(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    source = await create_source(client, auth, "gofood")
    secret = source["credentials"]["notification_secret"]
    for body in (b"not json", b"[]", b'{"header": {}}'):
        response = await client.post(
            path_of(source["ingest_url"]), content=body, headers=gofood_headers(secret, body)
        )
        assert response.status_code == 422, body
    assert await stored_events(engine) == []
    metrics = (await client.get("/metrics")).text
    assert 'gateway_inbound_requests_total{outcome="unparseable",provider="gofood"}' in metrics


async def test_unknown_and_disabled_sources(client: Client, auth: dict[str, str]) -> None:
    body = fixture("gofood_order_completed.json")
    missing = await client.post(
        "/v1/ingest/src_01M8K0A8YX2E6MW38XJWTV6K3S", content=body, headers=gofood_headers("x", body)
    )
    assert missing.status_code == 404
    source = await create_source(client, auth, "gofood")
    await client.patch(f"/v1/sources/{source['id']}", json={"status": "disabled"}, headers=auth)
    headers = gofood_headers(source["credentials"]["notification_secret"], body)
    disabled = await client.post(path_of(source["ingest_url"]), content=body, headers=headers)
    assert disabled.status_code == 403
    await client.delete(f"/v1/sources/{source['id']}", headers=auth)
    deleted = await client.post(path_of(source["ingest_url"]), content=body, headers=headers)
    assert deleted.status_code == 404


# --- GrabFood --------------------------------------------------------------------------


async def test_grab_gets_a_token_then_submits_an_order_and_pushes_states(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    source = await create_source(client, auth, "grabfood")
    token = await grab_token(client, source)
    bearer = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
    endpoints = source["endpoints"]
    submitted = await client.post(
        path_of(endpoints["submit_order"]),
        content=fixture("grabfood_submit_order.json"),
        headers=bearer,
    )
    assert submitted.status_code == 200, submitted.text
    allocated = await client.put(
        path_of(endpoints["push_order_state"]),
        content=fixture("grabfood_order_state_driver_allocated.json"),
        headers=bearer,
    )
    assert allocated.status_code == 200, allocated.text
    cancelled = await client.post(
        path_of(endpoints["push_order_state"]),
        content=fixture("grabfood_order_state_cancelled.json"),
        headers=bearer,
    )
    assert cancelled.status_code == 200, cancelled.text

    stored = await stored_events(engine)
    by_type = {e["type"]: e for e in stored}
    order = by_type["order.created"]["data"]
    assert order["external_order_id"] == "123-CYNKLPCVRN5"
    assert order["channel"] == "grabfood"
    assert order["totals"]["total"] == {"amount": 11000000, "currency": "IDR"}
    assert order["lines"][0]["unit_price"] == {"amount": 4100000, "currency": "IDR"}
    assert order["fulfillment"]["type"] == "platform_delivery"
    changed = [e for e in stored if e["type"] == "order.status_changed"]
    assert [e["data"]["to"] for e in changed] == ["driver_assigned", "cancelled"]
    assert changed[0]["data"]["driver_eta_s"] == 420
    assert "order.cancelled" in by_type
    sequences = [e["sequence"] for e in stored]
    assert sequences == sorted(sequences)
    assert by_type["order.created"]["sequence"] < changed[0]["sequence"] < changed[1]["sequence"]


async def test_grab_calls_without_a_valid_token_are_401_and_store_nothing(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    source = await create_source(client, auth, "grabfood")
    other = await create_source(client, auth, "grabfood")
    other_token = await grab_token(client, other)
    body = fixture("grabfood_submit_order.json")
    url = path_of(source["endpoints"]["submit_order"])
    for headers in (
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": f"Bearer {other_token}"},
    ):
        response = await client.post(
            url, content=body, headers={**headers, "content-type": "application/json"}
        )
        assert response.status_code == 401
    assert await stored_events(engine) == []


async def test_grab_token_endpoint_refuses_wrong_credentials(
    client: Client, auth: dict[str, str]
) -> None:
    source = await create_source(client, auth, "grabfood")
    url = path_of(source["endpoints"]["oauth_token"])
    wrong = await client.post(
        url,
        json={
            "client_id": source["credentials"]["client_id"],
            "client_secret": "wrong",
            "grant_type": "client_credentials",
        },
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    bad_grant = await client.post(url, json={"grant_type": "password"})
    assert bad_grant.status_code == 400
    right = await client.post(
        url, json={**source["credentials"], "grant_type": "client_credentials"}
    )
    assert right.status_code == 200
    assert right.json()["expires_in"] > 0


async def test_a_late_status_is_delivered_but_marked_stale(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    source = await create_source(client, auth, "grabfood")
    token = await grab_token(client, source)
    bearer = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
    url = path_of(source["endpoints"]["push_order_state"])
    for state in ("DELIVERED", "ACCEPTED"):
        body = json.dumps({"orderID": "123-LATE", "state": state}).encode()
        assert (await client.put(url, content=body, headers=bearer)).status_code == 200
    changed = [e for e in await stored_events(engine) if e["type"] == "order.status_changed"]
    assert [e["data"]["to"] for e in changed] == ["delivered", "accepted"]
    assert "stale" not in changed[0]
    assert changed[1]["stale"] is True
    assert changed[1]["sequence"] > changed[0]["sequence"]


async def test_rotating_credentials_invalidates_the_old_ones(
    client: Client, auth: dict[str, str]
) -> None:
    source = await create_source(client, auth, "gofood")
    rotated = (
        await client.post(f"/v1/sources/{source['id']}/rotate-credentials", headers=auth)
    ).json()
    body = fixture("gofood_order_completed.json")
    old = gofood_headers(source["credentials"]["notification_secret"], body)
    new = gofood_headers(rotated["credentials"]["notification_secret"], body)
    assert (
        await client.post(path_of(source["ingest_url"]), content=body, headers=old)
    ).status_code == 401
    assert (
        await client.post(path_of(source["ingest_url"]), content=body, headers=new)
    ).status_code == 200


# --- ShopeeFood and custom POS -------------------------------------------------------


async def test_shopeefood_provisional_signature_over_url_and_body(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    source = await create_source(client, auth, "shopeefood")
    body = json.dumps({"order_id": "SF-1001", "status": "COMPLETED", "event_id": "e-1"}).encode()
    base = source["ingest_url"].encode() + b"|" + body
    signature = hmac.new(
        source["credentials"]["partner_key"].encode(), base, hashlib.sha256
    ).hexdigest()
    url = path_of(source["ingest_url"])
    headers = {"content-type": "application/json", "Authorization": signature}
    assert (await client.post(url, content=body, headers=headers)).status_code == 200
    bad = {**headers, "Authorization": "0" * 64}
    assert (await client.post(url, content=body, headers=bad)).status_code == 401
    assert any(e["source"]["provider"] == "shopeefood" for e in await stored_events(engine))


async def test_custom_pos_posts_canonical_events_signed_like_our_webhooks(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    source = await create_source(client, auth, "custom_pos")
    body = json.dumps(EXAMPLES["sale.completed"]).encode()
    url = path_of(source["ingest_url"])

    def signed(at: int, msg_id: str = "msg_pos_1") -> dict[str, str]:
        return webhook_headers(
            msg_id=msg_id,
            timestamp=at,
            body=body,
            secrets=[source["credentials"]["secret"]],
            user_agent="pos/1",
        )

    first = await client.post(url, content=body, headers=signed(int(time.time())))
    assert first.status_code == 200, first.text
    again = await client.post(url, content=body, headers=signed(int(time.time())))
    assert again.json()["status"] == "duplicate"
    stale = await client.post(url, content=body, headers=signed(int(time.time()) - 600, "m2"))
    assert stale.status_code == 401
    future = await client.post(url, content=body, headers=signed(int(time.time()) + 600, "m3"))
    assert future.status_code == 401
    [stored] = await stored_events(engine)
    assert stored["type"] == "sale.completed"
    assert stored["source"]["provider"] == "custom_pos"


# --- robustness ------------------------------------------------------------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)


def _mutate(document: Any, data: st.DataObject) -> Any:
    """Drop a key, null it, or replace it with any JSON value, somewhere in the document."""
    if isinstance(document, dict) and document:
        key = data.draw(st.sampled_from(sorted(document)))
        action = data.draw(st.sampled_from(["drop", "null", "replace", "descend"]))
        copy = dict(document)
        if action == "drop":
            del copy[key]
        elif action == "null":
            copy[key] = None
        elif action == "replace":
            copy[key] = data.draw(_json)
        else:
            copy[key] = _mutate(copy[key], data)
        return copy
    if isinstance(document, list) and document:
        index = data.draw(st.integers(0, len(document) - 1))
        copy_list = list(document)
        copy_list[index] = _mutate(copy_list[index], data)
        return copy_list
    return data.draw(_json)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_mutated_provider_payloads_never_cause_a_server_error(
    client: Client, auth: dict[str, str], data: st.DataObject
) -> None:
    sources = getattr(client, "_mutation_sources", None)
    if sources is None:
        sources = {p: await create_source(client, auth, p) for p in ("gofood", "grabfood")}
        sources["grab_token"] = await grab_token(client, sources["grabfood"])
        client._mutation_sources = sources  # type: ignore[attr-defined]
    name = data.draw(
        st.sampled_from(
            [
                "gofood_order_awaiting_merchant_acceptance.json",
                "gofood_order_completed.json",
                "grabfood_submit_order.json",
                "grabfood_order_state_driver_allocated.json",
                "grabfood_order_state_cancelled.json",
            ]
        )
    )
    body = json.dumps(_mutate(json.loads(fixture(name)), data)).encode()
    if name.startswith("gofood"):
        source = sources["gofood"]
        headers = gofood_headers(source["credentials"]["notification_secret"], body)
        url = path_of(source["ingest_url"])
    else:
        source = sources["grabfood"]
        headers = {
            "Authorization": f"Bearer {sources['grab_token']}",
            "content-type": "application/json",
        }
        key = "submit_order" if "submit" in name else "push_order_state"
        url = path_of(source["endpoints"][key])
    response = await client.post(url, content=body, headers=headers)
    assert response.status_code in (200, 422), response.text
