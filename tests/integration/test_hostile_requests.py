"""Requests an adversary (or a broken client) can send: each gets a 4xx problem, never a 5xx.

Several need no credential at all, only a source id, so a 500 there is cheap to provoke.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.delivery.signing import webhook_headers
from app.http.problems import is_decoding_recursion
from contracts.canonical import EXAMPLES
from tests.conftest import HS_KID, HS_SECRET
from tests.integration.test_ingest_api import (
    create_source,
    fixture,
    gofood_headers,
    grab_token,
    path_of,
    stored_events,
)

Client = AsyncTestClient[Litestar]
PUBLIC_URL = "https://93.184.216.34/webhooks/pwbi"
# Deep enough to exhaust the interpreter's recursion limit wherever the body is decoded;
# the deepest form still fits the test app's 64 KiB body limit.
DEPTHS = (1_000, 30_000)


def assert_problem(response: Any, *statuses: int) -> None:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/problem+json")


def nested_arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def nested_objects(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def inside(template: dict[str, Any], key: str, depth: int) -> bytes:
    """A plausible body whose member `key` holds the deep value."""
    marker = '"__deep__"'
    text = json.dumps({**template, key: "__deep__"})
    return text.replace(marker, nested_arrays(depth).decode()).encode()


def deep_bodies(template: dict[str, Any], key: str) -> list[bytes]:
    bodies = [inside(template, key, depth) for depth in DEPTHS]
    bodies += [nested_arrays(depth) for depth in DEPTHS]
    bodies += [nested_objects(depth) for depth in DEPTHS[:1]]
    return bodies


# --- sources that take no webhooks -----------------------------------------------------


async def test_polled_and_imported_sources_refuse_webhooks_with_a_409(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    moka = await client.post(
        "/v1/sources",
        json={
            "provider": "moka",
            "name": "Moka",
            "credentials": {"access_token": "a", "refresh_token": "r", "outlet_id": "1"},
        },
        headers=auth,
    )
    qasir = await client.post("/v1/sources", json={"provider": "qasir", "name": "Q"}, headers=auth)
    assert moka.status_code == qasir.status_code == 201
    body = json.dumps(EXAMPLES["sale.completed"]).encode()
    for source, how in ((moka.json(), "polled"), (qasir.json(), "imported")):
        response = await client.post(
            f"/v1/ingest/{source['id']}",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert_problem(response, 409)
        assert "webhook" in response.json()["detail"]
        assert how in response.json()["detail"]
    assert await stored_events(engine) == []


# --- non-ASCII signatures and tokens ----------------------------------------------------

NON_ASCII = "\u00e9" * 64


def raw_headers(**headers: str) -> dict[bytes, bytes]:
    """Headers as bytes on the wire: Latin-1, so U+00E9 is the one byte 0xE9 (obs-text)."""
    return {
        name.replace("_", "-").encode(): value.encode("latin-1") for name, value in headers.items()
    }


async def test_gofood_signature_with_non_ascii_bytes_is_401(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    source = await create_source(client, auth, "gofood")
    body = fixture("gofood_order_completed.json")
    for signature in (NON_ASCII, "a" * 63 + "\u00e9", " \u00ff "):
        response = await client.post(
            path_of(source["ingest_url"]),
            content=body,
            headers=raw_headers(content_type="application/json", x_go_signature=signature),
        )
        assert_problem(response, 401)
    assert await stored_events(engine) == []


async def test_shopeefood_authorization_with_non_ascii_bytes_is_401(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    source = await create_source(client, auth, "shopeefood")
    body = json.dumps({"order_id": "SF-1", "status": "COMPLETED", "event_id": "e-1"}).encode()
    for signature in (NON_ASCII, "0" * 63 + "\u00e9"):
        response = await client.post(
            path_of(source["ingest_url"]),
            content=body,
            headers=raw_headers(content_type="application/json", authorization=signature),
        )
        assert_problem(response, 401)
    assert await stored_events(engine) == []


async def test_custom_pos_and_grabfood_credentials_with_non_ascii_bytes_are_401(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    pos = await create_source(client, auth, "custom_pos")
    body = json.dumps(EXAMPLES["sale.completed"]).encode()
    now = str(int(time.time()))
    for headers in (
        {"webhook_id": "m1", "webhook_timestamp": now, "webhook_signature": f"v1,{NON_ASCII}"},
        {"webhook_id": NON_ASCII, "webhook_timestamp": now, "webhook_signature": "v1,AAAA"},
        {"webhook_id": "m1", "webhook_timestamp": "\u00e9", "webhook_signature": "v1,AAAA"},
    ):
        response = await client.post(
            path_of(pos["ingest_url"]),
            content=body,
            headers=raw_headers(content_type="application/json", **headers),
        )
        assert_problem(response, 401)

    grab = await create_source(client, auth, "grabfood")
    order = fixture("grabfood_submit_order.json")
    for authorization in (f"Bearer {NON_ASCII}", f"\u00e9 {NON_ASCII}"):
        response = await client.post(
            path_of(grab["endpoints"]["submit_order"]),
            content=order,
            headers=raw_headers(content_type="application/json", authorization=authorization),
        )
        assert_problem(response, 401)
    token_url = path_of(grab["endpoints"]["oauth_token"])
    for client_id, client_secret in (
        (NON_ASCII, NON_ASCII),
        (grab["credentials"]["client_id"], NON_ASCII),
    ):
        response = await client.post(
            token_url,
            json={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
            },
        )
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
    assert await stored_events(engine) == []


# --- bodies nested too deep --------------------------------------------------------------


async def test_deeply_nested_json_on_partner_routes_is_422(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    subscription = await client.post(
        "/v1/subscriptions", json={"url": PUBLIC_URL, "event_types": ["*"]}, headers=auth
    )
    assert subscription.status_code == 201
    sub_id = subscription.json()["id"]
    published = await client.post(
        "/v1/events",
        json={"type": "sale.completed", "data": EXAMPLES["sale.completed"]["data"]},
        headers=auth,
    )
    assert published.status_code == 202, published.text
    event_id = published.json()["id"]
    source = await create_source(client, auth, "gofood")
    routes: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", "/v1/events", {"type": "sale.completed"}, "data"),
        ("POST", "/v1/subscriptions", {"url": PUBLIC_URL}, "event_types"),
        ("PATCH", f"/v1/subscriptions/{sub_id}", {}, "headers"),
        ("POST", "/v1/sources", {"provider": "qasir", "name": "Q"}, "settings"),
        ("PATCH", f"/v1/sources/{source['id']}", {}, "name"),
        ("POST", f"/v1/events/{event_id}/replay", {}, "subscription_ids"),
        ("POST", f"/v1/subscriptions/{sub_id}/recover", {}, "since"),
        ("POST", f"/v1/subscriptions/{sub_id}/rotate-secret", {}, "grace_period_s"),
        ("POST", f"/v1/subscriptions/{sub_id}/enable", {}, "recover_since"),
    ]
    for method, url, template, key in routes:
        details = []
        for body in deep_bodies(template, key):
            response = await client.request(
                method, url, content=body, headers={**auth, "content-type": "application/json"}
            )
            assert_problem(response, 400, 422)
            details.append(response.json()["detail"])
        # Some forms fail a type check first; those that reach the depth limit say so.
        assert any("nests deeper" in detail for detail in details), (url, details)
    listed = (await client.get("/v1/events", headers=auth)).json()["data"]
    assert [e["id"] for e in listed] == [event_id]
    sources = (await client.get("/v1/sources", headers=auth)).json()["data"]
    assert [s["id"] for s in sources] == [source["id"]]


async def test_deeply_nested_provider_payloads_are_422_and_stored_nowhere(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    gofood = await create_source(client, auth, "gofood")
    shopee = await create_source(client, auth, "shopeefood")
    pos = await create_source(client, auth, "custom_pos")
    grab = await create_source(client, auth, "grabfood")
    bearer = {"Authorization": f"Bearer {await grab_token(client, grab)}"}
    json_type = {"content-type": "application/json"}

    def shopee_headers(body: bytes) -> dict[str, str]:
        base = shopee["ingest_url"].encode() + b"|" + body
        key = shopee["credentials"]["partner_key"].encode()
        return {**json_type, "Authorization": hmac.new(key, base, hashlib.sha256).hexdigest()}

    def pos_headers(body: bytes) -> dict[str, str]:
        return webhook_headers(
            msg_id=f"msg_{hashlib.sha256(body).hexdigest()[:16]}",
            timestamp=int(time.time()),
            body=body,
            secrets=[pos["credentials"]["secret"]],
            user_agent="pos/1",
        )

    def gofood_signed(body: bytes) -> dict[str, str]:
        return gofood_headers(gofood["credentials"]["notification_secret"], body)

    def grab_headers(body: bytes) -> dict[str, str]:
        return {**json_type, **bearer}

    signed: list[tuple[str, Callable[[bytes], dict[str, str]], dict[str, Any], str]] = [
        (path_of(gofood["ingest_url"]), gofood_signed, {"header": {"event_id": "e"}}, "body"),
        (path_of(shopee["ingest_url"]), shopee_headers, {"order_id": "SF-1"}, "status"),
        (path_of(pos["ingest_url"]), pos_headers, {"type": "sale.completed"}, "data"),
    ]
    for name in ("submit_order", "push_order_state"):
        signed.append((path_of(grab["endpoints"][name]), grab_headers, {}, "orderID"))
    for url, sign, template, key in signed:
        details = []
        for body in deep_bodies(template, key):
            response = await client.post(url, content=body, headers=sign(body))
            assert_problem(response, 400, 422)
            details.append(response.json()["detail"])
        assert any("nests deeper" in detail for detail in details), (url, details)
    assert await stored_events(engine) == []


async def test_a_deeply_nested_grab_token_request_is_an_oauth_error_before_any_credential(
    client: Client, auth: dict[str, str]
) -> None:
    grab = await create_source(client, auth, "grabfood")
    url = path_of(grab["endpoints"]["oauth_token"])
    for body in deep_bodies({"grant_type": "client_credentials"}, "client_id"):
        response = await client.post(
            url, content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, response.text[:300]
        assert response.json()["error"] == "unsupported_grant_type"


# --- tokens whose time claims no clock can hold ----------------------------------------


def signed_token(claims_json: str) -> str:
    """An HS256 token signed with a configured secret, around claims written verbatim."""

    def b64(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": HS_KID}).encode())
    payload = b64(claims_json.encode())
    signature = hmac.new(HS_SECRET.encode(), header + b"." + payload, hashlib.sha256).digest()
    return (header + b"." + payload + b"." + b64(signature)).decode()


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("exp", "1" + "0" * 499),
        ("exp", "9" * 20),
        ("exp", "1e300"),
        ("iat", "1" + "0" * 499),
        ("iat", "-" + "1" * 500),
        ("nbf", "1" + "0" * 499),
        ("nbf", "-" + "1" * 500),
    ],
)
async def test_a_signed_token_with_an_absurd_time_claim_is_401(
    client: Client, tenant_id: str, claim: str, value: str
) -> None:
    now = int(time.time())
    claims = {
        "sub": tenant_id,
        "iss": "pwbi-gateway",
        "aud": "pwbi-gateway",
        "exp": now + 600,
        "iat": now,
        "nbf": now,
        "scope": "events:read",
    }
    del claims[claim]
    text = json.dumps(claims)[:-1] + f', "{claim}": {value}}}'
    token = signed_token(text)
    jwt.decode(token, options={"verify_signature": False})  # well-formed: only the value is odd
    for _ in range(2):  # the second request would come from the verified-token cache
        response = await client.get("/v1/events", headers={"Authorization": f"Bearer {token}"})
        assert_problem(response, 401)


def test_only_a_decoder_running_out_of_depth_counts_as_the_clients_fault() -> None:
    """Any other RecursionError is a defect of the gateway and stays a logged 500."""
    for decode in (msgspec.json.decode, json.loads):
        with pytest.raises(RecursionError) as decoding:
            decode(nested_arrays(30_000))
        assert is_decoding_recursion(decoding.value)
    deep: list[Any] = []
    for _ in range(30_000):
        deep = [deep]
    with pytest.raises(RecursionError) as encoding:
        msgspec.json.encode(deep)
    assert not is_decoding_recursion(encoding.value)

    def endless(n: int) -> int:
        return endless(n + 1)

    with pytest.raises(RecursionError) as ours:
        endless(0)
    assert not is_decoding_recursion(ours.value)


# --- NUL in a body ------------------------------------------------------------------------


async def test_a_nul_anywhere_in_a_json_body_is_422_and_stores_nothing(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    data = EXAMPLES["sale.completed"]["data"]
    for body, field in (
        ({"type": "sale.completed", "data": data, "source_id": "src_\u0000"}, "source_id"),
        ({"type": "sale.completed", "data": {**data, "note": "a\u0000b"}}, "data.note"),
    ):
        response = await client.post(
            "/v1/events",
            content=json.dumps(body).encode(),
            headers={**auth, "content-type": "application/json"},
        )
        assert_problem(response, 422)
        assert response.json()["errors"][0]["field"] == field
    listed = await client.get("/v1/events", headers=auth)
    assert listed.json()["data"] == []
    # An escaped backslash before "u0000" is the text \u0000, not a NUL: accepted.
    kept = await client.post(
        "/v1/events",
        content=json.dumps({"type": "ping", "data": {"message": "\\u0000"}}).encode(),
        headers={**auth, "content-type": "application/json"},
    )
    assert kept.status_code == 202, kept.text
