"""Bearer-token authentication and scope checks as a partner meets them over HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ids import new_id
from app.store.tables import subscriptions
from app.store.tenants import set_tenant_status
from tests.conftest import HS_KID, HS_SECRET, RSA_KID, TokenFactory

Client = AsyncTestClient[Litestar]
PATH = "/v1/subscriptions"
PUBLIC_URL = "https://93.184.216.34/webhooks/pwbi"
ISSUER = AUDIENCE = "pwbi-gateway"
READ, WRITE = "subscriptions:read", "subscriptions:write"
OMIT = object()


# --- token builders ----------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def claims(subject: str, **overrides: object) -> dict[str, Any]:
    """Valid claims for ``subject``; an override of OMIT removes the claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": subject,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "scope": f"{READ} {WRITE}",
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not OMIT}


def hs_token(payload: dict[str, Any], *, kid: str = HS_KID, secret: str = HS_SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256", headers={"kid": kid})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def list_with(client: Client, headers: dict[str, str]) -> httpx.Response:
    return await client.get(PATH, headers=headers)


async def create_with(client: Client, headers: dict[str, str]) -> httpx.Response:
    body = {"url": PUBLIC_URL, "event_types": ["order.*"]}
    return await client.post(PATH, json=body, headers=headers)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert isinstance(body, dict)
    for member in ("type", "title", "status", "detail"):
        assert member in body, f"problem lacks {member!r}: {body}"
    assert body["status"] == status
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


def assert_unauthorized(response: httpx.Response) -> dict[str, Any]:
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    return body


async def count_subscriptions(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(subscriptions)
        return int((await conn.execute(query)).scalar_one())


# --- missing or malformed credentials ----------------------------------------------------


async def test_a_request_without_authorization_header_is_401_with_a_bearer_challenge(
    client: Client,
) -> None:
    assert_unauthorized(await list_with(client, {}))
    assert_unauthorized(await create_with(client, {}))


async def test_a_basic_authorization_scheme_is_401(client: Client) -> None:
    assert_unauthorized(await list_with(client, {"Authorization": "Basic abc"}))


async def test_an_empty_bearer_token_is_401(client: Client) -> None:
    assert_unauthorized(await list_with(client, {"Authorization": "Bearer "}))


async def test_a_garbage_token_is_401(client: Client) -> None:
    assert_unauthorized(await list_with(client, bearer("not-a-jwt")))
    assert_unauthorized(await list_with(client, bearer("a.b.c")))


async def test_an_unsigned_alg_none_token_for_a_real_tenant_is_401(
    client: Client, tenant_id: str
) -> None:
    payload = b64url_json(claims(tenant_id))
    for header in ({"alg": "none", "typ": "JWT"}, {"alg": "none", "kid": HS_KID}):
        token = f"{b64url_json(header)}.{payload}."
        assert_unauthorized(await list_with(client, bearer(token)))
        assert_unauthorized(await create_with(client, bearer(token)))


async def test_an_hs256_token_keyed_with_the_rsa_public_key_is_401(
    client: Client, tenant_id: str, rsa_public_key_file: Path
) -> None:
    # Algorithm confusion: the public key is no secret, so it must never act as an HMAC key.
    header = b64url_json({"alg": "HS256", "typ": "JWT", "kid": RSA_KID})
    signing_input = f"{header}.{b64url_json(claims(tenant_id))}"
    signature = hmac.new(
        rsa_public_key_file.read_bytes(), signing_input.encode("ascii"), hashlib.sha256
    ).digest()
    token = f"{signing_input}.{b64url(signature)}"
    assert_unauthorized(await list_with(client, bearer(token)))
    assert_unauthorized(await create_with(client, bearer(token)))


# --- valid tokens ------------------------------------------------------------------------


async def test_an_rs256_token_signed_with_the_configured_rsa_key_is_accepted(
    client: Client, tenant_id: str, rsa_private_key: rsa.RSAPrivateKey
) -> None:
    token = jwt.encode(
        claims(tenant_id), rsa_private_key, algorithm="RS256", headers={"kid": RSA_KID}
    )
    response = await list_with(client, bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []


async def test_an_hs256_token_from_the_cli_issuer_is_accepted(
    client: Client, auth: dict[str, str]
) -> None:
    response = await list_with(client, auth)
    assert response.status_code == 200, response.text
    created = await create_with(client, auth)
    assert created.status_code == 201, created.text


# --- lifetime, issuer, audience, key -----------------------------------------------------


async def test_an_expired_token_is_401(client: Client, tenant_id: str) -> None:
    now = int(time.time())
    token = hs_token(claims(tenant_id, iat=now - 7200, nbf=now - 7200, exp=now - 3600))
    body = assert_unauthorized(await list_with(client, bearer(token)))
    assert "expired" in body["detail"]


async def test_a_token_valid_only_in_ten_minutes_is_401(client: Client, tenant_id: str) -> None:
    token = hs_token(claims(tenant_id, nbf=int(time.time()) + 600))
    assert_unauthorized(await list_with(client, bearer(token)))


async def test_a_token_from_another_issuer_is_401(client: Client, tenant_id: str) -> None:
    token = hs_token(claims(tenant_id, iss="https://evil.example"))
    assert_unauthorized(await list_with(client, bearer(token)))


async def test_a_token_for_another_audience_is_401(client: Client, tenant_id: str) -> None:
    token = hs_token(claims(tenant_id, aud="some-other-service"))
    assert_unauthorized(await list_with(client, bearer(token)))


@pytest.mark.parametrize("claim", ["exp", "iss", "aud", "sub"])
async def test_a_token_missing_a_required_claim_is_401(
    client: Client, tenant_id: str, claim: str
) -> None:
    token = hs_token(claims(tenant_id, **{claim: OMIT}))
    assert_unauthorized(await list_with(client, bearer(token)))


async def test_a_token_with_an_unknown_kid_is_401(client: Client, tenant_id: str) -> None:
    token = hs_token(claims(tenant_id), kid="no-such-kid")
    assert_unauthorized(await list_with(client, bearer(token)))


async def test_a_token_signed_with_another_secret_is_401(client: Client, tenant_id: str) -> None:
    token = hs_token(claims(tenant_id), secret="another-secret-0123456789-0123456789-xyz")
    assert_unauthorized(await list_with(client, bearer(token)))


# --- tenants -----------------------------------------------------------------------------


async def test_a_token_for_a_tenant_that_does_not_exist_is_401(
    client: Client, engine: AsyncEngine, make_token: TokenFactory
) -> None:
    token = make_token(new_id("ten"))
    assert_unauthorized(await list_with(client, bearer(token)))
    assert_unauthorized(await create_with(client, bearer(token)))
    assert await count_subscriptions(engine) == 0


async def test_a_disabled_tenants_token_is_401_and_works_again_once_enabled(
    client: Client, engine: AsyncEngine, tenant_id: str, auth: dict[str, str]
) -> None:
    assert (await list_with(client, auth)).status_code == 200
    async with engine.begin() as conn:
        assert await set_tenant_status(conn, tenant_id, "disabled", actor="test")
    assert_unauthorized(await list_with(client, auth))
    assert_unauthorized(await create_with(client, auth))
    assert await count_subscriptions(engine) == 0

    async with engine.begin() as conn:
        assert await set_tenant_status(conn, tenant_id, "enabled", actor="test")
    response = await list_with(client, auth)
    assert response.status_code == 200, response.text


async def test_unknown_and_disabled_tenants_get_the_same_answer(
    client: Client, engine: AsyncEngine, tenant_id: str, make_token: TokenFactory
) -> None:
    async with engine.begin() as conn:
        assert await set_tenant_status(conn, tenant_id, "disabled", actor="test")
    disabled = (await list_with(client, bearer(make_token(tenant_id)))).json()
    unknown = (await list_with(client, bearer(make_token(new_id("ten"))))).json()
    assert disabled["detail"] == unknown["detail"]


# --- scopes ------------------------------------------------------------------------------


async def test_a_read_only_token_lists_but_cannot_create(
    client: Client, engine: AsyncEngine, tenant_id: str, make_token: TokenFactory
) -> None:
    headers = bearer(make_token(tenant_id, scopes=(READ,)))
    listed = await list_with(client, headers)
    assert listed.status_code == 200, listed.text
    assert_problem(await create_with(client, headers), 403)
    assert await count_subscriptions(engine) == 0


async def test_a_write_only_token_creates_but_cannot_list(
    client: Client, tenant_id: str, make_token: TokenFactory
) -> None:
    headers = bearer(make_token(tenant_id, scopes=(WRITE,)))
    created = await create_with(client, headers)
    assert created.status_code == 201, created.text
    assert_problem(await list_with(client, headers), 403)


async def test_a_token_without_a_scope_claim_is_403_for_reads_and_writes(
    client: Client, engine: AsyncEngine, tenant_id: str
) -> None:
    headers = bearer(hs_token(claims(tenant_id, scope=OMIT)))
    assert_problem(await list_with(client, headers), 403)
    assert_problem(await create_with(client, headers), 403)
    assert await count_subscriptions(engine) == 0


async def test_unknown_scope_names_grant_nothing(client: Client, tenant_id: str) -> None:
    headers = bearer(hs_token(claims(tenant_id, scope="subscriptions:* admin")))
    assert_problem(await list_with(client, headers), 403)


async def test_a_403_names_the_missing_scope(
    client: Client, tenant_id: str, make_token: TokenFactory
) -> None:
    read_only = bearer(make_token(tenant_id, scopes=(READ,)))
    assert WRITE in assert_problem(await create_with(client, read_only), 403)["detail"]
    write_only = bearer(make_token(tenant_id, scopes=(WRITE,)))
    assert READ in assert_problem(await list_with(client, write_only), 403)["detail"]


# --- what a rejection reveals ------------------------------------------------------------


async def test_a_401_never_echoes_the_token(
    client: Client, tenant_id: str, make_token: TokenFactory
) -> None:
    now = int(time.time())
    tokens = [
        hs_token(claims(tenant_id, exp=now - 3600, iat=now - 7200, nbf=now - 7200)),
        hs_token(claims(tenant_id, aud="someone-else")),
        hs_token(claims(tenant_id, iss="someone-else")),
        hs_token(claims(tenant_id), kid="no-such-kid"),
        hs_token(claims(tenant_id), secret="another-secret-0123456789-0123456789-xyz"),
        make_token(new_id("ten")),
        "garbage-" + "x" * 40,
    ]
    for token in tokens:
        response = await list_with(client, bearer(token))
        assert_unauthorized(response)
        segments = [part for part in token.split(".") if len(part) >= 8]
        for text in (response.text, *response.headers.values()):
            assert token not in text
            for segment in segments:
                assert segment not in text


# Authenticated routes any valid token may call: the public catalogue of event types.
SCOPE_FREE_ROUTES = {("GET", "/v1/event-types")}


async def test_every_authenticated_route_refuses_a_token_without_scopes(
    app: Litestar, client: Client, tenant_id: str, make_token: TokenFactory
) -> None:
    """A route that forgot to name its scope would serve any token: each one must say 403."""
    no_scopes = bearer(make_token(tenant_id, scopes=()))
    checked = 0
    for route in app.routes:
        if not route.path.startswith("/v1/") or route.path.startswith("/v1/ingest/"):
            continue
        # Any id will do: the scope is refused before the route looks anything up.
        path = re.sub(r"\{(\w+):\w+\}", lambda m: f"{m.group(1)}_x", route.path)
        for method in sorted(route.methods - {"OPTIONS", "HEAD"}):
            response = await client.request(method, path, headers=no_scopes, json={})
            if (method, route.path) in SCOPE_FREE_ROUTES:
                assert response.status_code == 200, (method, route.path, response.text)
                continue
            assert_problem(response, 403)
            checked += 1
    assert checked >= 25  # the partner API's routes, not an empty walk
