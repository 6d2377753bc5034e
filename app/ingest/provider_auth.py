"""Each provider's way of proving a request is theirs; every comparison is constant-time."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

import jwt

from app.delivery.signing import SignatureMismatch, verify

GRAB_TOKEN_TTL_S = 3600
_GRAB_AUDIENCE = "pwbi-gateway:grabfood-ingest"


def _hex_hmac(key: str, message: bytes) -> str:
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    """Constant-time equality of two header-borne strings, compared as bytes.

    hmac.compare_digest refuses str with non-ASCII characters (TypeError), and a header may
    carry any Latin-1 byte; as UTF-8 bytes such a value simply does not match.
    """
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def gofood_signature_ok(notification_secret: str, headers: Mapping[str, str], raw: bytes) -> bool:
    """X-Go-Signature: hex HMAC-SHA256 of the raw body bytes as received."""
    given = headers.get("x-go-signature", "").strip().lower()
    return bool(given) and _same(given, _hex_hmac(notification_secret, raw))


def shopeefood_signature_ok(
    partner_key: str, url: str, headers: Mapping[str, str], raw: bytes, base: bytes
) -> bool:
    """PROVISIONAL: Authorization = hex HMAC-SHA256(partner key, url | body), as Shopee's
    marketplace platform signs; ShopeeFood publishes no partner documentation."""
    del url  # already inside `base`; kept in the signature for the call sites' clarity
    given = headers.get("authorization", "").strip().lower()
    return bool(given) and _same(given, _hex_hmac(partner_key, base))


def custom_pos_signature_problem(
    secret: str, headers: Mapping[str, str], raw: bytes, *, tolerance_s: int = 300
) -> str | None:
    """Standard Webhooks, as we sign outbound; None when valid, else the reason."""
    try:
        verify(secret, headers, raw, tolerance_s=tolerance_s)
    except SignatureMismatch as exc:
        return exc.reason
    return None


def grab_client_ok(credentials: Mapping[str, str], client_id: str, client_secret: str) -> bool:
    id_ok = _same(client_id, credentials["client_id"])
    secret_ok = _same(client_secret, credentials["client_secret"])
    return id_ok and secret_ok


def issue_grab_token(source_id: str, client_secret: str, *, now: int | None = None) -> str:
    """A bearer token for Grab's later calls, signed with the source's client secret,
    so rotating the credentials also ends every token issued before."""
    issued = int(time.time()) if now is None else now
    claims = {
        "sub": source_id,
        "aud": _GRAB_AUDIENCE,
        "iat": issued,
        "exp": issued + GRAB_TOKEN_TTL_S,
    }
    return jwt.encode(claims, client_secret, algorithm="HS256")


def grab_bearer_ok(source_id: str, client_secret: str, headers: Mapping[str, str]) -> bool:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    try:
        claims = jwt.decode(
            token.strip(),
            client_secret,
            algorithms=["HS256"],
            audience=_GRAB_AUDIENCE,
            options={"require": ["exp", "sub", "aud"]},
        )
    except jwt.PyJWTError:
        return False
    return claims.get("sub") == source_id
