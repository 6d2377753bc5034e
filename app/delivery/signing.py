"""Standard Webhooks signing and verification: the one place the signature format lives."""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import re
import time
from collections.abc import Mapping, Sequence
from typing import Final

WHSEC_PREFIX: Final = "whsec_"
SIGNATURE_VERSION: Final = "v1"
DEFAULT_TOLERANCE_S: Final = 300

# Whole seconds only: the signed content uses the header text verbatim, so a looser format
# (floats, signs, spaces) would let two spellings of one instant sign differently.
_TIMESTAMP_PATTERN: Final = re.compile(r"[0-9]{1,15}")

# Reasons are stable phrases: callers (the verify command, tests) match on them.
MISSING_HEADER: Final = "missing {name} header"
MALFORMED_SIGNING_KEY: Final = "malformed secret: expected whsec_ followed by base64"
MALFORMED_TIMESTAMP: Final = "malformed webhook-timestamp header: expected whole seconds"
TIMESTAMP_TOO_OLD: Final = "timestamp too old"
TIMESTAMP_IN_FUTURE: Final = "timestamp in the future"
NO_V1_SIGNATURE: Final = "no v1 signature in the webhook-signature header"
NO_SIGNATURE_MATCHES: Final = "no signature matches: the body or the secret differs"


class MalformedSecret(ValueError):
    """A signing secret is not `whsec_` + base64; the message never contains the secret."""


class SignatureMismatch(ValueError):
    """A webhook failed verification; `reason` says why in words a partner can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256(key, "{msg_id}.{timestamp}." + body)>` for one secret."""
    digest = _digest(_secret_key(secret), msg_id, str(timestamp), body)
    return f"{SIGNATURE_VERSION},{binascii.b2a_base64(digest, newline=False).decode('ascii')}"


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """One signature per valid secret, current first, so receivers on either secret accept."""
    if not secrets:
        raise ValueError("at least one signing secret is needed")
    # dict.fromkeys keeps order and drops a repeated secret: one signature per distinct key.
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in dict.fromkeys(secrets))


def webhook_headers(
    *, msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str], user_agent: str
) -> dict[str, str]:
    """The headers every delivery carries; lower-case names, as the spec and HTTP/2 spell them."""
    return {
        "content-type": "application/json",
        "user-agent": user_agent,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int | None = None,
    tolerance_s: int | None = DEFAULT_TOLERANCE_S,
) -> None:
    """Raise SignatureMismatch unless one v1 signature matches and the timestamp is fresh.

    `tolerance_s=None` skips the freshness check; only for inspecting saved requests, since
    without it a captured request can be replayed forever.
    """
    try:
        key = _secret_key(secret)
    except MalformedSecret:
        raise SignatureMismatch(MALFORMED_SIGNING_KEY) from None
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = _required(lowered, "webhook-id")
    timestamp_text = _required(lowered, "webhook-timestamp").strip()
    signatures = _required(lowered, "webhook-signature")
    if _TIMESTAMP_PATTERN.fullmatch(timestamp_text) is None:
        raise SignatureMismatch(MALFORMED_TIMESTAMP)
    if tolerance_s is not None:
        current = int(time.time()) if now is None else now
        timestamp = int(timestamp_text)
        if timestamp < current - tolerance_s:
            raise SignatureMismatch(TIMESTAMP_TOO_OLD)
        if timestamp > current + tolerance_s:
            raise SignatureMismatch(TIMESTAMP_IN_FUTURE)
    expected = _digest(key, msg_id, timestamp_text, body)
    candidates = list(_v1_signatures(signatures))
    if not candidates:
        raise SignatureMismatch(NO_V1_SIGNATURE)
    # Check every candidate rather than stopping early: the time taken then does not
    # depend on which position matched.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureMismatch(NO_SIGNATURE_MATCHES)


# Every delivery signs with its subscription's key: decode each secret once per process.
@functools.lru_cache(maxsize=4096)
def _secret_key(secret: str) -> bytes:
    encoded = secret.strip().removeprefix(WHSEC_PREFIX)
    try:
        # Padding is optional in the wild (the official libraries add it back too).
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise MalformedSecret(MALFORMED_SIGNING_KEY) from None
    if not key:
        raise MalformedSecret(MALFORMED_SIGNING_KEY)
    return key


def _digest(key: bytes, msg_id: str, timestamp_text: str, body: bytes) -> bytes:
    # hmac.digest: one call into OpenSSL, not an HMAC object per signature.
    return hmac.digest(key, f"{msg_id}.{timestamp_text}.".encode() + body, "sha256")


def _required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name, "")
    if not value.strip():
        raise SignatureMismatch(MISSING_HEADER.format(name=name))
    return value


def _v1_signatures(header: str) -> list[bytes]:
    found: list[bytes] = []
    for entry in header.split():
        version, separator, encoded = entry.partition(",")
        # Other versions (e.g. v1a asymmetric) are for other verifiers: skip, don't fail.
        if version != SIGNATURE_VERSION or not separator:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found
