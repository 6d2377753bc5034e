"""Specification of webhook signing: Standard Webhooks format, rotation, rejection reasons."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.delivery.signing import (
    MalformedSecret,
    SignatureMismatch,
    sign,
    signature_header,
    verify,
    webhook_headers,
)

# The test vector published with the Standard Webhooks specification.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

CURRENT_SECRET = "whsec_" + base64.b64encode(b"c" * 32).decode()
PREVIOUS_SECRET = "whsec_" + base64.b64encode(b"p" * 32).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
BODY = b'{"type":"order.created","data":{"id":"ord_1","total":1250}}'


def headers_now(*secrets: str, body: bytes = BODY, timestamp: int | None = None) -> dict[str, str]:
    return webhook_headers(
        msg_id="evt_1",
        timestamp=int(time.time()) if timestamp is None else timestamp,
        body=body,
        secrets=secrets,
        user_agent="pwbi-gateway/test",
    )


def reason_of(secret: str, headers: dict[str, str], body: bytes, **kwargs: int) -> str:
    with pytest.raises(SignatureMismatch) as caught:
        verify(secret, headers, body, **kwargs)
    return caught.value.reason


def test_spec_vector_signature() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_secret_without_prefix_signs_the_same() -> None:
    bare = SPEC_SECRET.removeprefix("whsec_")
    assert sign(bare, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_unpadded_secret_signs_the_same() -> None:
    padded = "whsec_" + base64.b64encode(b"k" * 32).decode()
    assert padded.endswith("=")
    unpadded = padded.rstrip("=")
    assert sign(unpadded, "m", 1, b"x") == sign(padded, "m", 1, b"x")


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_@@@@", "not base64!"])
def test_malformed_secret_refuses_to_sign_without_echoing_it(secret: str) -> None:
    with pytest.raises(MalformedSecret) as caught:
        sign(secret, "m", 1, b"x")
    assert secret.removeprefix("whsec_") not in str(caught.value)


def test_empty_secret_refuses_to_sign() -> None:
    with pytest.raises(MalformedSecret):
        sign("whsec_", "m", 1, b"x")


def test_spec_vector_verifies_at_its_own_time() -> None:
    headers = {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }
    verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TIMESTAMP)


def test_headers_carry_id_timestamp_signature_type_and_agent() -> None:
    headers = headers_now(CURRENT_SECRET, timestamp=1700000000)
    assert headers == {
        "content-type": "application/json",
        "user-agent": "pwbi-gateway/test",
        "webhook-id": "evt_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": sign(CURRENT_SECRET, "evt_1", 1700000000, BODY),
    }


def test_rotation_signs_with_current_secret_first() -> None:
    header = signature_header([CURRENT_SECRET, PREVIOUS_SECRET], "evt_1", 1700000000, BODY)
    assert header.split(" ") == [
        sign(CURRENT_SECRET, "evt_1", 1700000000, BODY),
        sign(PREVIOUS_SECRET, "evt_1", 1700000000, BODY),
    ]


def test_a_repeated_secret_signs_once() -> None:
    header = signature_header([CURRENT_SECRET, CURRENT_SECRET], "evt_1", 1700000000, BODY)
    assert header == sign(CURRENT_SECRET, "evt_1", 1700000000, BODY)


def test_signing_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one"):
        signature_header([], "evt_1", 1700000000, BODY)


def test_official_verifier_accepts_our_headers() -> None:
    assert Webhook(CURRENT_SECRET).verify(BODY, headers_now(CURRENT_SECRET)) == {
        "type": "order.created",
        "data": {"id": "ord_1", "total": 1250},
    }


@pytest.mark.parametrize("receiver_secret", [CURRENT_SECRET, PREVIOUS_SECRET])
def test_official_verifier_accepts_either_secret_during_rotation(receiver_secret: str) -> None:
    headers = headers_now(CURRENT_SECRET, PREVIOUS_SECRET)
    Webhook(receiver_secret).verify(BODY, headers)


def test_official_verifier_rejects_a_secret_outside_the_rotation() -> None:
    headers = headers_now(CURRENT_SECRET, PREVIOUS_SECRET)
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER_SECRET).verify(BODY, headers)


def test_official_signer_output_passes_our_verify() -> None:
    timestamp = int(time.time())
    signature = Webhook(CURRENT_SECRET).sign(
        "evt_1", datetime.fromtimestamp(timestamp, UTC), BODY.decode()
    )
    headers = {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }
    verify(CURRENT_SECRET, headers, BODY)


@pytest.mark.parametrize("receiver_secret", [CURRENT_SECRET, PREVIOUS_SECRET])
def test_verify_accepts_either_rotation_signature(receiver_secret: str) -> None:
    verify(receiver_secret, headers_now(CURRENT_SECRET, PREVIOUS_SECRET), BODY)


def test_verify_looks_headers_up_case_insensitively() -> None:
    headers = {name.title(): value for name, value in headers_now(CURRENT_SECRET).items()}
    assert "Webhook-Signature" in headers
    verify(CURRENT_SECRET, headers, BODY)


def test_verify_ignores_other_signature_versions_and_junk() -> None:
    headers = headers_now(CURRENT_SECRET)
    headers["webhook-signature"] = (
        "v1a,c2lnbmF0dXJl v1,@@@ nonsense " + headers["webhook-signature"]
    )
    verify(CURRENT_SECRET, headers, BODY)


def test_tampered_body_is_rejected() -> None:
    reason = reason_of(CURRENT_SECRET, headers_now(CURRENT_SECRET), BODY.replace(b"1250", b"1"))
    assert reason == "no signature matches: the body or the secret differs"


def test_wrong_secret_is_rejected() -> None:
    reason = reason_of(OTHER_SECRET, headers_now(CURRENT_SECRET), BODY)
    assert reason == "no signature matches: the body or the secret differs"


def test_changed_id_is_rejected() -> None:
    headers = headers_now(CURRENT_SECRET)
    headers["webhook-id"] = "evt_2"
    assert reason_of(CURRENT_SECRET, headers, BODY).startswith("no signature matches")


def test_only_other_versions_is_rejected() -> None:
    headers = headers_now(CURRENT_SECRET)
    headers["webhook-signature"] = "v1a,c2lnbmF0dXJl"
    assert reason_of(CURRENT_SECRET, headers, BODY) == (
        "no v1 signature in the webhook-signature header"
    )


def test_old_timestamp_is_rejected() -> None:
    headers = headers_now(CURRENT_SECRET, timestamp=1_700_000_000)
    reason = reason_of(CURRENT_SECRET, headers, BODY, now=1_700_000_000 + 301)
    assert reason == "timestamp too old"


def test_future_timestamp_is_rejected() -> None:
    headers = headers_now(CURRENT_SECRET, timestamp=1_700_000_000)
    reason = reason_of(CURRENT_SECRET, headers, BODY, now=1_700_000_000 - 301)
    assert reason == "timestamp in the future"


def test_timestamp_at_the_tolerance_edges_is_accepted() -> None:
    headers = headers_now(CURRENT_SECRET, timestamp=1_700_000_000)
    verify(CURRENT_SECRET, headers, BODY, now=1_700_000_000 + 300)
    verify(CURRENT_SECRET, headers, BODY, now=1_700_000_000 - 300)


def test_tolerance_is_configurable() -> None:
    headers = headers_now(CURRENT_SECRET, timestamp=1_700_000_000)
    verify(CURRENT_SECRET, headers, BODY, now=1_700_000_000 + 3000, tolerance_s=3600)
    reason = reason_of(CURRENT_SECRET, headers, BODY, now=1_700_000_000 + 61, tolerance_s=60)
    assert reason == "timestamp too old"


def test_old_timestamp_still_fails_on_a_bad_signature_when_time_is_not_checked() -> None:
    headers = headers_now(CURRENT_SECRET, timestamp=1_700_000_000)
    verify(CURRENT_SECRET, headers, BODY, tolerance_s=None)
    with pytest.raises(SignatureMismatch, match="no signature matches"):
        verify(CURRENT_SECRET, headers, BODY + b" ", tolerance_s=None)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_named(missing: str) -> None:
    headers = headers_now(CURRENT_SECRET)
    del headers[missing]
    assert reason_of(CURRENT_SECRET, headers, BODY) == f"missing {missing} header"


def test_empty_header_counts_as_missing() -> None:
    headers = headers_now(CURRENT_SECRET)
    headers["webhook-id"] = " "
    assert reason_of(CURRENT_SECRET, headers, BODY) == "missing webhook-id header"


@pytest.mark.parametrize("timestamp", ["soon", "1614265330.5", "-1614265330", ""])
def test_malformed_timestamp_is_rejected(timestamp: str) -> None:
    headers = headers_now(CURRENT_SECRET)
    headers["webhook-timestamp"] = timestamp
    reason = reason_of(CURRENT_SECRET, headers, BODY)
    assert reason.startswith(("malformed webhook-timestamp", "missing webhook-timestamp"))


def test_malformed_secret_is_a_mismatch_reason_without_the_secret() -> None:
    secret = "whsec_definitely not base64!"
    reason = reason_of(secret, headers_now(CURRENT_SECRET), BODY)
    assert reason.startswith("malformed secret")
    assert secret not in reason
