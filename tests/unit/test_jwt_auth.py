"""Specifications for partner bearer-token verification and CLI token issuance."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from app.durations import parse_duration_s
from app.security.jwt_auth import (
    ALL_SCOPES,
    KeyConfig,
    KeyRing,
    TokenRejected,
    TokenVerifier,
    VerifiedToken,
    issue_token,
)

ISSUER = "https://auth.pwbi.test"
AUDIENCE = "pwbi-gateway"
HS_KID = "hs-1"
HS_SECRET = "hs1-0123456789abcdef0123456789abcdef-shared"
OTHER_HS_KID = "hs-2"
OTHER_HS_SECRET = "hs2-fedcba9876543210fedcba9876543210-shared"
LOGGER_NAME = "app.security.jwt_auth"

OMIT = object()


# --- key material and token builders ---------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private_key: Any
    public_pem: bytes

    def jwk(self) -> dict[str, Any]:
        public = self.private_key.public_key()
        if self.algorithm == "RS256":
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif self.algorithm == "ES256":
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = OKPAlgorithm.to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid, "use": "sig"}


def public_pem(private_key: Any) -> bytes:
    pem: bytes = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem


@pytest.fixture(scope="module")
def signing_keys() -> dict[str, SigningKey]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    keys = [
        SigningKey("rsa-1", "RS256", rsa_key, public_pem(rsa_key)),
        SigningKey("ec-1", "ES256", ec_key, public_pem(ec_key)),
        SigningKey("ed-1", "EdDSA", ed_key, public_pem(ed_key)),
    ]
    return {key.kid: key for key in keys}


@pytest.fixture(scope="module")
def pem_files(
    signing_keys: dict[str, SigningKey], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("pem")
    files = {}
    for kid, key in signing_keys.items():
        path = directory / f"{kid}.pem"
        path.write_bytes(key.public_pem)
        files[kid] = str(path)
    return files


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": "tenant-42",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
        "scope": "events:read deliveries:replay",
    }
    payload.update(overrides)
    return {name: value for name, value in payload.items() if value is not OMIT}


def hs_token(payload: dict[str, Any] | None = None, *, kid: str | None = HS_KID) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload or claims(), HS_SECRET, algorithm="HS256", headers=headers)


def signed_token(key: SigningKey, payload: dict[str, Any] | None = None) -> str:
    return jwt.encode(
        payload or claims(), key.private_key, algorithm=key.algorithm, headers={"kid": key.kid}
    )


async def rejection(verifier: TokenVerifier, token: str) -> TokenRejected:
    with pytest.raises(TokenRejected) as excinfo:
        await verifier.verify(token)
    return excinfo.value


def make_verifier(keyring: KeyRing) -> TokenVerifier:
    return TokenVerifier(keyring, issuer=ISSUER, audience=AUDIENCE)


@pytest.fixture
async def keyring(pem_files: dict[str, str]) -> AsyncIterator[KeyRing]:
    ring = KeyRing.load(
        KeyConfig(
            hs256_secrets={HS_KID: HS_SECRET, OTHER_HS_KID: OTHER_HS_SECRET},
            public_key_files=pem_files,
        )
    )
    yield ring
    await ring.aclose()


@pytest.fixture
def verifier(keyring: KeyRing) -> TokenVerifier:
    return make_verifier(keyring)


# --- accepted tokens -------------------------------------------------------------------------


async def test_valid_hs256_token_is_accepted_with_subject_scopes_and_token_id(
    verifier: TokenVerifier,
) -> None:
    verified = await verifier.verify(hs_token(claims(jti="token-7")))

    assert verified == VerifiedToken(
        subject="tenant-42",
        scopes=frozenset({"events:read", "deliveries:replay"}),
        token_id="token-7",
    )


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1", "ed-1"])
async def test_valid_asymmetric_token_is_accepted_with_the_configured_public_key(
    verifier: TokenVerifier, signing_keys: dict[str, SigningKey], kid: str
) -> None:
    verified = await verifier.verify(signed_token(signing_keys[kid]))

    assert verified.subject == "tenant-42"
    assert verified.scopes == {"events:read", "deliveries:replay"}
    assert verified.token_id is None


async def test_unknown_scopes_are_ignored(verifier: TokenVerifier) -> None:
    token = hs_token(claims(scope="events:read  admin:everything sources:write"))

    assert (await verifier.verify(token)).scopes == {"events:read", "sources:write"}


async def test_token_without_scope_claim_grants_no_scopes(verifier: TokenVerifier) -> None:
    assert (await verifier.verify(hs_token(claims(scope=OMIT)))).scopes == frozenset()


async def test_scope_claim_that_is_not_a_string_is_rejected(verifier: TokenVerifier) -> None:
    token = hs_token(claims(scope=["events:read"]))

    assert str(await rejection(verifier, token)) == "malformed scope"


async def test_token_without_kid_is_accepted_when_only_one_hs256_secret_exists() -> None:
    ring = KeyRing.load(KeyConfig(hs256_secrets={HS_KID: HS_SECRET}, public_key_files={}))

    assert (await make_verifier(ring).verify(hs_token(kid=None))).subject == "tenant-42"


async def test_token_expired_within_the_leeway_is_accepted(verifier: TokenVerifier) -> None:
    token = hs_token(claims(exp=int(time.time()) - 10))

    assert (await verifier.verify(token)).subject == "tenant-42"


async def test_token_whose_nbf_is_within_the_leeway_is_accepted(verifier: TokenVerifier) -> None:
    token = hs_token(claims(nbf=int(time.time()) + 10))

    assert (await verifier.verify(token)).subject == "tenant-42"


# --- algorithm and key selection -------------------------------------------------------------


@pytest.mark.parametrize("kid", [HS_KID, None])
async def test_alg_none_token_is_rejected(verifier: TokenVerifier, kid: str | None) -> None:
    header: dict[str, Any] = {"alg": "none", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    token = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims()).encode())}."

    assert str(await rejection(verifier, token)) == "algorithm not allowed"


async def test_hs256_token_using_the_rsa_public_key_pem_as_hmac_secret_is_rejected(
    verifier: TokenVerifier, signing_keys: dict[str, SigningKey]
) -> None:
    # Classic algorithm confusion: the attacker knows the public key and signs with HMAC.
    header = {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims()).encode())}"
    signature = hmac.new(
        signing_keys["rsa-1"].public_pem, signing_input.encode("ascii"), hashlib.sha256
    ).digest()
    forged = f"{signing_input}.{b64url(signature)}"

    assert str(await rejection(verifier, forged)) == "algorithm not allowed"


async def test_rs256_token_carrying_the_kid_of_an_hs256_secret_is_rejected(
    verifier: TokenVerifier, signing_keys: dict[str, SigningKey]
) -> None:
    rsa_key = signing_keys["rsa-1"]
    token = jwt.encode(claims(), rsa_key.private_key, algorithm="RS256", headers={"kid": HS_KID})

    assert str(await rejection(verifier, token)) == "algorithm not allowed"


async def test_algorithm_returned_for_a_key_depends_on_the_key_type_not_the_header(
    keyring: KeyRing,
) -> None:
    _, rsa_alg = await keyring.key_for("rsa-1", "HS256")
    hs_key, hs_alg = await keyring.key_for(HS_KID, "RS256")

    assert (rsa_alg, hs_alg) == ("RS256", "HS256")
    assert hs_key == HS_SECRET.encode()


async def test_algorithm_outside_the_allow_list_is_rejected(verifier: TokenVerifier) -> None:
    token = jwt.encode(claims(), HS_SECRET * 2, algorithm="HS512", headers={"kid": HS_KID})

    assert str(await rejection(verifier, token)) == "algorithm not allowed"


async def test_token_with_an_unknown_kid_is_rejected(verifier: TokenVerifier) -> None:
    assert str(await rejection(verifier, hs_token(kid="nobody"))) == "unknown signing key"


async def test_token_without_kid_is_rejected_when_several_keys_are_configured(
    verifier: TokenVerifier,
) -> None:
    assert str(await rejection(verifier, hs_token(kid=None))) == "missing kid"


async def test_token_signed_with_another_configured_secret_fails_the_signature_check(
    verifier: TokenVerifier,
) -> None:
    token = jwt.encode(claims(), OTHER_HS_SECRET, algorithm="HS256", headers={"kid": HS_KID})

    assert str(await rejection(verifier, token)) == "invalid signature"


# --- claims ----------------------------------------------------------------------------------


async def test_expired_token_is_rejected(verifier: TokenVerifier) -> None:
    token = hs_token(claims(exp=int(time.time()) - 120))

    assert str(await rejection(verifier, token)) == "token expired"


@pytest.mark.parametrize("claim", ["nbf", "iat"])
async def test_token_not_yet_valid_beyond_the_leeway_is_rejected(
    verifier: TokenVerifier, claim: str
) -> None:
    token = hs_token(claims(**{claim: int(time.time()) + 120}))

    assert str(await rejection(verifier, token)) == "token not yet valid"


async def test_token_from_another_issuer_is_rejected(verifier: TokenVerifier) -> None:
    token = hs_token(claims(iss="https://evil.example"))

    assert str(await rejection(verifier, token)) == "invalid issuer"


async def test_token_for_another_audience_is_rejected(verifier: TokenVerifier) -> None:
    token = hs_token(claims(aud="someone-else"))

    assert str(await rejection(verifier, token)) == "invalid audience"


@pytest.mark.parametrize("claim", ["sub", "exp", "iss", "aud"])
async def test_token_missing_a_required_claim_is_rejected(
    verifier: TokenVerifier, claim: str
) -> None:
    token = hs_token(claims(**{claim: OMIT}))

    assert str(await rejection(verifier, token)) == f"missing claim: {claim}"


async def test_token_with_an_empty_subject_is_rejected(verifier: TokenVerifier) -> None:
    assert str(await rejection(verifier, hs_token(claims(sub="")))) == "missing claim: sub"


async def test_token_with_a_tampered_payload_fails_the_signature_check(
    verifier: TokenVerifier,
) -> None:
    header, _, signature = hs_token().split(".")
    tampered_payload = b64url(json.dumps(claims(sub="tenant-other")).encode())

    tampered = f"{header}.{tampered_payload}.{signature}"

    assert str(await rejection(verifier, tampered)) == "invalid signature"


@pytest.mark.parametrize("garbage", ["abc", "", "a.b.c", "abc.def", "x" * 20_000])
async def test_garbage_is_rejected_as_malformed(verifier: TokenVerifier, garbage: str) -> None:
    assert str(await rejection(verifier, garbage)) == "malformed token"


@pytest.mark.parametrize(
    "payload",
    [
        claims(iss="issuer-SECRET-MARKER"),
        claims(aud="aud-SECRET-MARKER"),
        claims(exp="SECRET-MARKER"),
        claims(sub=["SECRET-MARKER"]),
        claims(scope={"SECRET-MARKER": 1}),
    ],
)
async def test_rejection_reasons_never_echo_token_contents(
    verifier: TokenVerifier, payload: dict[str, Any]
) -> None:
    rejected = await rejection(verifier, hs_token(payload))

    assert "SECRET-MARKER" not in str(rejected)
    # No chained PyJWT error whose message could quote the claims when logged.
    assert rejected.__cause__ is None
    assert rejected.__suppress_context__ or rejected.__context__ is None


# --- JWKS ------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class JwksServer:
    """A real HTTP server on 127.0.0.1 serving a JWKS document that tests can change."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.status = 200
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                body = json.dumps(server.document).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/.well-known/jwks.json"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def jwks_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[JwksServer]:
    # httpx honours proxy variables; the test server must be reached directly.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    server = JwksServer()
    yield server
    server.stop()


def jwks_keyring(url: str, clock: FakeClock | None = None) -> KeyRing:
    config = KeyConfig(hs256_secrets={}, public_key_files={}, jwks_url=url)
    if clock is None:
        return KeyRing.load(config)
    return KeyRing.load(config, clock=clock)


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-url"])
async def test_jwks_from_a_file_verifies_tokens_of_every_asymmetric_type(
    signing_keys: dict[str, SigningKey], tmp_path: Path, as_uri: bool
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [key.jwk() for key in signing_keys.values()]}))
    ring = jwks_keyring(path.as_uri() if as_uri else str(path))
    verifier = make_verifier(ring)

    for key in signing_keys.values():
        assert (await verifier.verify(signed_token(key))).subject == "tenant-42"


async def test_jwks_symmetric_key_is_never_used(
    signing_keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    oct_secret = b"jwks-oct-secret-0123456789abcdef0123456789"
    oct_jwk = {"kty": "oct", "kid": "oct-1", "k": b64url(oct_secret)}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [oct_jwk, signing_keys["rsa-1"].jwk()]}))
    token = jwt.encode(claims(), oct_secret, algorithm="HS256", headers={"kid": "oct-1"})

    assert str(await rejection(make_verifier(jwks_keyring(str(path))), token)) == (
        "unknown signing key"
    )


async def test_jwks_key_whose_alg_disagrees_with_its_type_is_skipped(
    signing_keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    rsa_key = signing_keys["rsa-1"]
    path = tmp_path / "jwks.json"
    usable = signing_keys["ed-1"]
    path.write_text(json.dumps({"keys": [{**rsa_key.jwk(), "alg": "HS256"}, usable.jwk()]}))
    verifier = make_verifier(jwks_keyring(str(path)))

    assert (await verifier.verify(signed_token(usable))).subject == "tenant-42"
    assert str(await rejection(verifier, signed_token(rsa_key))) == "unknown signing key"


async def test_jwks_from_http_is_fetched_once_and_cached(
    jwks_server: JwksServer, signing_keys: dict[str, SigningKey]
) -> None:
    jwks_server.document = {"keys": [key.jwk() for key in signing_keys.values()]}
    ring = jwks_keyring(jwks_server.url)
    verifier = make_verifier(ring)
    try:
        for key in signing_keys.values():
            assert (await verifier.verify(signed_token(key))).subject == "tenant-42"
    finally:
        await ring.aclose()

    assert jwks_server.requests == 1


async def test_concurrent_verifications_share_a_single_jwks_fetch(
    jwks_server: JwksServer, signing_keys: dict[str, SigningKey]
) -> None:
    jwks_server.document = {"keys": [key.jwk() for key in signing_keys.values()]}
    ring = jwks_keyring(jwks_server.url)
    verifier = make_verifier(ring)
    tokens = [signed_token(key) for key in signing_keys.values()] * 3
    try:
        verified = await asyncio.gather(*(verifier.verify(token) for token in tokens))
    finally:
        await ring.aclose()

    assert {token.subject for token in verified} == {"tenant-42"}
    assert jwks_server.requests == 1


async def test_jwks_rotation_new_kid_is_picked_up_by_a_rate_limited_refetch(
    jwks_server: JwksServer, signing_keys: dict[str, SigningKey]
) -> None:
    old_key, new_key = signing_keys["rsa-1"], signing_keys["ec-1"]
    jwks_server.document = {"keys": [old_key.jwk()]}
    clock = FakeClock()
    ring = jwks_keyring(jwks_server.url, clock)
    verifier = make_verifier(ring)
    try:
        await verifier.verify(signed_token(old_key))
        jwks_server.document = {"keys": [old_key.jwk(), new_key.jwk()]}

        # Within 30 s of the last fetch an unknown kid must not reach the key server.
        clock.advance(10)
        assert str(await rejection(verifier, signed_token(new_key))) == "unknown signing key"
        assert jwks_server.requests == 1

        clock.advance(21)
        assert (await verifier.verify(signed_token(new_key))).subject == "tenant-42"
        assert jwks_server.requests == 2
    finally:
        await ring.aclose()


async def test_jwks_key_removed_from_the_server_stops_working_after_the_cache_ttl(
    jwks_server: JwksServer, signing_keys: dict[str, SigningKey]
) -> None:
    retired, current = signing_keys["rsa-1"], signing_keys["ed-1"]
    jwks_server.document = {"keys": [retired.jwk(), current.jwk()]}
    clock = FakeClock()
    ring = jwks_keyring(jwks_server.url, clock)
    verifier = make_verifier(ring)
    try:
        await verifier.verify(signed_token(retired))
        jwks_server.document = {"keys": [current.jwk()]}

        clock.advance(299)
        await verifier.verify(signed_token(retired))
        clock.advance(2)
        assert str(await rejection(verifier, signed_token(retired))) == "unknown signing key"
        assert jwks_server.requests == 2
    finally:
        await ring.aclose()


async def test_unknown_kid_on_an_hs256_token_never_triggers_a_jwks_refetch(
    jwks_server: JwksServer, signing_keys: dict[str, SigningKey]
) -> None:
    jwks_server.document = {"keys": [signing_keys["rsa-1"].jwk()]}
    clock = FakeClock()
    ring = jwks_keyring(jwks_server.url, clock)
    verifier = make_verifier(ring)
    try:
        await verifier.verify(signed_token(signing_keys["rsa-1"]))
        clock.advance(60)

        assert str(await rejection(verifier, hs_token(kid="new-kid"))) == "unknown signing key"
        assert jwks_server.requests == 1
    finally:
        await ring.aclose()


async def test_jwks_server_down_rejects_with_signing_keys_unavailable_and_logs_safely(
    signing_keys: dict[str, SigningKey], caplog: pytest.LogCaptureFixture
) -> None:
    stopped = JwksServer()
    stopped.stop()
    caplog.set_level(logging.WARNING, logger=LOGGER_NAME)
    ring = jwks_keyring(f"{stopped.url}?access_token=jwks-credential-123")
    try:
        rejected = await rejection(make_verifier(ring), signed_token(signing_keys["rsa-1"]))
    finally:
        await ring.aclose()

    assert str(rejected) == "signing keys unavailable"
    assert "JWKS fetch from" in caplog.text
    assert "jwks-credential-123" not in caplog.text


async def test_jwks_server_error_is_not_retried_within_30_seconds(
    jwks_server: JwksServer, signing_keys: dict[str, SigningKey]
) -> None:
    key = signing_keys["ec-1"]
    jwks_server.document = {"keys": [key.jwk()]}
    jwks_server.status = 500
    clock = FakeClock()
    ring = jwks_keyring(jwks_server.url, clock)
    verifier = make_verifier(ring)
    try:
        for _ in range(2):
            assert str(await rejection(verifier, signed_token(key))) == "signing keys unavailable"
        assert jwks_server.requests == 1

        jwks_server.status = 200
        clock.advance(30)
        assert (await verifier.verify(signed_token(key))).subject == "tenant-42"
    finally:
        await ring.aclose()


async def test_jwks_fetch_uses_the_supplied_http_client_factory(
    jwks_server: JwksServer, signing_keys: dict[str, SigningKey]
) -> None:
    jwks_server.document = {"keys": [signing_keys["ed-1"].jwk()]}
    created: list[httpx.AsyncClient] = []

    def factory() -> httpx.AsyncClient:
        client = httpx.AsyncClient(timeout=2.0, trust_env=False)
        created.append(client)
        return client

    ring = KeyRing.load(
        KeyConfig(hs256_secrets={}, public_key_files={}, jwks_url=jwks_server.url),
        http_client_factory=factory,
    )
    await make_verifier(ring).verify(signed_token(signing_keys["ed-1"]))
    await ring.aclose()

    assert len(created) == 1
    assert created[0].is_closed


async def test_static_keys_take_precedence_over_jwks_entries_with_the_same_kid(
    signing_keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    impostor_key = SigningKey(HS_KID, "RS256", impostor, public_pem(impostor))
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [impostor_key.jwk()]}))
    ring = KeyRing.load(
        KeyConfig(hs256_secrets={HS_KID: HS_SECRET}, public_key_files={}, jwks_url=str(path))
    )

    rejected = await rejection(make_verifier(ring), signed_token(impostor_key))

    assert str(rejected) == "algorithm not allowed"


# --- KeyRing.load configuration errors ------------------------------------------------------


def test_load_rejects_an_hs256_secret_shorter_than_32_bytes_without_echoing_it() -> None:
    short_secret = "short-secret-value-31-bytes-xx"
    with pytest.raises(ValueError, match="hs-short") as excinfo:
        KeyRing.load(KeyConfig(hs256_secrets={"hs-short": short_secret}, public_key_files={}))

    assert short_secret not in str(excinfo.value)


def test_load_rejects_a_public_key_pem_configured_as_hs256_secret(
    signing_keys: dict[str, SigningKey],
) -> None:
    pem_text = signing_keys["rsa-1"].public_pem.decode()
    with pytest.raises(ValueError, match="looks like a PEM") as excinfo:
        KeyRing.load(KeyConfig(hs256_secrets={"hs-pem": pem_text}, public_key_files={}))

    assert "BEGIN" not in str(excinfo.value)


def test_load_rejects_a_missing_pem_file_naming_kid_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "absent.pem"

    with pytest.raises(ValueError, match="cannot read file") as excinfo:
        KeyRing.load(KeyConfig(hs256_secrets={}, public_key_files={"rsa-9": str(missing)}))

    assert "rsa-9" in str(excinfo.value)
    assert str(missing) in str(excinfo.value)


def test_load_rejects_a_non_pem_file_without_echoing_its_contents(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pem"
    path.write_text("not-a-key-CONTENTS-MARKER")

    with pytest.raises(ValueError, match="not a PEM public key") as excinfo:
        KeyRing.load(KeyConfig(hs256_secrets={}, public_key_files={"k": str(path)}))

    assert "CONTENTS-MARKER" not in str(excinfo.value)
    assert excinfo.value.__cause__ is None


def test_load_refuses_a_private_key_file_without_echoing_key_material(tmp_path: Path) -> None:
    private_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    path = tmp_path / "private.pem"
    path.write_text(private_pem)

    with pytest.raises(ValueError, match="private key") as excinfo:
        KeyRing.load(KeyConfig(hs256_secrets={}, public_key_files={"ec-priv": str(path)}))

    body_line = private_pem.splitlines()[1]
    assert body_line not in str(excinfo.value)


@pytest.mark.parametrize(
    "private_key",
    [
        pytest.param(ec.generate_private_key(ec.SECP384R1()), id="ec-p384"),
        pytest.param(
            # Deliberately weak: the gateway must refuse it.
            rsa.generate_private_key(public_exponent=65537, key_size=1024),  # noqa: S505
            id="rsa-1024",
        ),
    ],
)
def test_load_rejects_unsupported_public_key_types(tmp_path: Path, private_key: Any) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(public_pem(private_key))

    with pytest.raises(ValueError, match="unsupported key type"):
        KeyRing.load(KeyConfig(hs256_secrets={}, public_key_files={"odd": str(path)}))


def test_load_rejects_a_configuration_without_any_key() -> None:
    with pytest.raises(ValueError, match="no JWT verification keys"):
        KeyRing.load(KeyConfig(hs256_secrets={}, public_key_files={}, jwks_url="  "))


def test_load_rejects_a_kid_configured_twice(pem_files: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="rsa-1"):
        KeyRing.load(KeyConfig(hs256_secrets={"rsa-1": HS_SECRET}, public_key_files=pem_files))


def test_load_rejects_an_unsupported_jwks_url_scheme() -> None:
    with pytest.raises(ValueError, match="not supported"):
        KeyRing.load(
            KeyConfig(hs256_secrets={}, public_key_files={}, jwks_url="ftp://127.0.0.1/jwks")
        )


# --- issuing tokens --------------------------------------------------------------------------


async def test_issued_token_round_trips_through_the_verifier() -> None:
    ring = KeyRing.load(KeyConfig(hs256_secrets={HS_KID: HS_SECRET}, public_key_files={}))
    token = issue_token(
        kid=HS_KID,
        secret=HS_SECRET,
        subject="tenant-9",
        scopes=["subscriptions:write", "events:read", "events:read"],
        ttl_s=600,
        issuer=ISSUER,
        audience=AUDIENCE,
    )

    verified = await make_verifier(ring).verify(token)

    assert verified.subject == "tenant-9"
    assert verified.scopes == {"subscriptions:write", "events:read"}
    assert verified.token_id


def test_issued_token_carries_kid_lifetime_claims_and_sorted_scope() -> None:
    token = issue_token(
        kid=HS_KID,
        secret=HS_SECRET,
        subject="tenant-9",
        scopes=ALL_SCOPES,
        ttl_s=3600,
        issuer=ISSUER,
        audience=AUDIENCE,
        now=1_700_000_000,
    )

    header = jwt.get_unverified_header(token)
    payload = jwt.decode(token, options={"verify_signature": False})
    assert header["kid"] == HS_KID
    assert header["alg"] == "HS256"
    assert (payload["iat"], payload["nbf"], payload["exp"]) == (
        1_700_000_000,
        1_700_000_000,
        1_700_003_600,
    )
    assert payload["scope"] == " ".join(sorted(ALL_SCOPES))
    assert payload["iss"] == ISSUER
    assert payload["aud"] == AUDIENCE


def test_issued_tokens_get_distinct_token_ids() -> None:
    def issue() -> str:
        token = issue_token(
            kid=HS_KID,
            secret=HS_SECRET,
            subject="t",
            scopes=[],
            ttl_s=60,
            issuer=ISSUER,
            audience=AUDIENCE,
        )
        jti: str = jwt.decode(token, options={"verify_signature": False})["jti"]
        return jti

    assert issue() != issue()


async def test_token_issued_long_ago_is_rejected_as_expired(verifier: TokenVerifier) -> None:
    token = issue_token(
        kid=HS_KID,
        secret=HS_SECRET,
        subject="tenant-9",
        scopes=["events:read"],
        ttl_s=60,
        issuer=ISSUER,
        audience=AUDIENCE,
        now=int(time.time()) - 3600,
    )

    assert str(await rejection(verifier, token)) == "token expired"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"scopes": ["events:read", "admin:all"]}, "unknown scope"),
        ({"secret": "too-short"}, "shorter than 32 bytes"),
        ({"ttl_s": 0}, "greater than zero"),
        ({"kid": ""}, "kid must not be empty"),
        ({"subject": ""}, "subject must not be empty"),
    ],
)
def test_issue_token_refuses_bad_input(overrides: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "kid": HS_KID,
        "secret": HS_SECRET,
        "subject": "tenant-9",
        "scopes": ["events:read"],
        "ttl_s": 60,
        "issuer": ISSUER,
        "audience": AUDIENCE,
        **overrides,
    }

    with pytest.raises(ValueError, match=message):
        issue_token(**arguments)


def test_issue_token_refuses_a_bare_string_as_scopes() -> None:
    with pytest.raises(TypeError, match="not a string"):
        issue_token(
            kid=HS_KID,
            secret=HS_SECRET,
            subject="tenant-9",
            scopes="events:read",
            ttl_s=60,
            issuer=ISSUER,
            audience=AUDIENCE,
        )


# --- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30d", 30 * 86400),
        ("12h", 12 * 3600),
        ("15m", 15 * 60),
        ("90s", 90),
        ("3600", 3600),
        (" 5m ", 300),
    ],
)
def test_parse_duration_accepts_whole_numbers_with_optional_unit(text: str, seconds: int) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "0", "0s", "-5m", "1.5h", "10w", "h", "5 m", "\uff15m", "1" * 40]
)
def test_parse_duration_rejects_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration_s(text)


async def test_a_remembered_token_still_expires_at_its_exp(keyring: KeyRing) -> None:
    verifier = TokenVerifier(keyring, issuer=ISSUER, audience=AUDIENCE, leeway_s=0)
    exp = int(time.time()) + 1
    token = hs_token(claims(exp=exp))
    assert (await verifier.verify(token)).subject == "tenant-42"
    assert (await verifier.verify(token)).subject == "tenant-42"  # served from memory
    await asyncio.sleep(max(exp - time.time(), 0) + 0.05)
    assert str(await rejection(verifier, token)) == "token expired"


async def test_a_rejected_token_is_rejected_again(keyring: KeyRing) -> None:
    verifier = make_verifier(keyring)
    token = hs_token()
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    await verifier.verify(token)
    for _ in range(2):
        assert str(await rejection(verifier, forged)) == "invalid signature"
