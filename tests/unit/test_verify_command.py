"""Specification of `pwbi-gateway verify`: reading a saved request and explaining the verdict."""

from __future__ import annotations

import base64

import pytest

from app.delivery.signing import webhook_headers
from app.delivery.verify_command import (
    MalformedRequest,
    explain_verification,
    parse_saved_request,
)

SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
BODY = b'{"type":"order.created","data":{"id":"ord_1","total":1250}}'
SIGNED_AT = 1_700_000_000


def saved_request(
    *,
    body: bytes = BODY,
    signed_body: bytes = BODY,
    newline: bytes = b"\r\n",
    request_line: bool = True,
    drop: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    headers = webhook_headers(
        msg_id="evt_1",
        timestamp=SIGNED_AT,
        body=signed_body,
        secrets=[SECRET],
        user_agent="pwbi-gateway/test",
    )
    headers = {name.title(): value for name, value in headers.items() if name != drop}
    headers.update(extra_headers or {})
    lines = [b"POST /hooks/orders HTTP/1.1", b"Host: partner.example"] if request_line else []
    lines += [f"{name}: {value}".encode() for name, value in headers.items()]
    return newline.join(lines) + newline + newline + body


def explain(raw: bytes, *, secret: str = SECRET, age_s: int = 3) -> tuple[bool, str]:
    return explain_verification(secret, raw, now=SIGNED_AT + age_s, tolerance_s=300)


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"], ids=["crlf", "lf"])
def test_request_built_with_our_headers_passes(newline: bytes) -> None:
    ok, message = explain(saved_request(newline=newline))
    assert ok, message
    assert message == "signature valid (webhook-id evt_1, signed 3 s ago)"


def test_request_line_is_optional() -> None:
    ok, message = explain(saved_request(request_line=False))
    assert ok, message


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"], ids=["crlf", "lf"])
def test_parse_splits_headers_and_keeps_body_bytes(newline: bytes) -> None:
    body = b'{"a":1}' + newline + b'{"b":2}'
    raw = newline.join([b"POST / HTTP/1.1", b"Webhook-Id: evt_1", b"X-Empty:", b"", body])
    headers, parsed_body = parse_saved_request(raw)
    assert headers == {"webhook-id": "evt_1", "x-empty": ""}
    assert parsed_body == body


def test_parse_skips_leading_blank_lines_and_joins_folded_and_repeated_headers() -> None:
    raw = (
        b"\n\nWebhook-Signature: v1,aaa\n Webhook-Signature-Tail\n"
        b"Webhook-Signature: v1,bbb\nAccept: a\nAccept: b\n\nbody"
    )
    headers, body = parse_saved_request(raw)
    assert headers == {
        "webhook-signature": "v1,aaa Webhook-Signature-Tail v1,bbb",
        "accept": "a, b",
    }
    assert body == b"body"


def test_parse_drops_a_final_newline_beyond_content_length() -> None:
    raw = saved_request(body=BODY + b"\n", extra_headers={"Content-Length": str(len(BODY))})
    assert parse_saved_request(raw)[1] == BODY
    assert explain(raw)[0] is True


def test_parse_refuses_a_request_without_a_blank_line() -> None:
    with pytest.raises(MalformedRequest, match="no blank line"):
        parse_saved_request(b"Webhook-Id: evt_1\nWebhook-Timestamp: 1")


def test_parse_refuses_a_line_that_is_not_a_header_without_echoing_it() -> None:
    with pytest.raises(MalformedRequest, match="line 2 is not a header") as caught:
        parse_saved_request(b"Webhook-Id: evt_1\nsomething secret here\n\nbody")
    assert "secret here" not in str(caught.value)


def test_unreadable_request_is_explained() -> None:
    ok, message = explain(b"just some text")
    assert not ok
    assert message.startswith("could not read the saved request: no blank line")


def test_tampered_body_fails_with_a_clear_message() -> None:
    ok, message = explain(saved_request(body=BODY.replace(b"1250", b"125")))
    assert not ok
    assert message.startswith("no signature matches: the body or the secret differs")
    assert "byte for byte" in message


def test_wrong_secret_fails() -> None:
    ok, message = explain(saved_request(), secret=OTHER_SECRET)
    assert not ok
    assert message.startswith("no signature matches")


def test_trailing_newline_added_by_an_editor_is_pointed_out() -> None:
    ok, message = explain(saved_request(body=BODY + b"\n"))
    assert not ok
    assert "extra line breaks at its end" in message
    assert "without that change the signature is valid" in message


def test_crlf_converted_body_is_pointed_out() -> None:
    multiline = b'{\n  "id": "ord_1"\n}'
    raw = saved_request(body=multiline.replace(b"\n", b"\r\n"), signed_body=multiline)
    ok, message = explain(raw)
    assert not ok
    assert "line endings were changed to CRLF" in message


def test_body_shorter_than_content_length_is_pointed_out() -> None:
    raw = saved_request(body=BODY[:20], extra_headers={"Content-Length": str(len(BODY))})
    ok, message = explain(raw)
    assert not ok
    assert f"is 20 bytes but Content-Length says {len(BODY)}" in message


def test_old_timestamp_with_valid_signature_gives_the_hint() -> None:
    ok, message = explain(saved_request(), age_s=3 * 3600 + 120)
    assert not ok
    assert message.startswith("timestamp too old: signed 3 h 2 min ago, tolerance is 5 min")
    assert "signature itself is valid" in message


def test_old_timestamp_passes_when_the_check_is_skipped() -> None:
    ok, message = explain_verification(
        SECRET, saved_request(), now=SIGNED_AT + 5 * 86400, tolerance_s=None
    )
    assert ok, message
    assert message == (
        "signature valid (webhook-id evt_1, signed 5 d 0 h ago; timestamp not checked)"
    )


def test_old_timestamp_with_bad_signature_reports_the_signature() -> None:
    ok, message = explain(saved_request(body=b"{}"), age_s=86400)
    assert not ok
    assert message.startswith("no signature matches")


def test_future_timestamp_is_explained() -> None:
    ok, message = explain(saved_request(), age_s=-600)
    assert not ok
    assert message.startswith("timestamp in the future: signed 10 min in the future")
    assert "clock" in message


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers_are_named(missing: str) -> None:
    ok, message = explain(saved_request(drop=missing))
    assert not ok
    assert message.startswith(f"missing {missing} header (headers found: ")
    assert missing not in message.split("headers found: ")[1]


def test_malformed_secret_is_explained() -> None:
    ok, message = explain(saved_request(), secret="whsec_not-base64!")
    assert not ok
    assert message.startswith("malformed secret")


@pytest.mark.parametrize(
    ("secret", "raw", "age_s"),
    [
        (SECRET, saved_request(), 3),
        (SECRET, saved_request(), 86400),
        (SECRET, saved_request(), -86400),
        (SECRET, saved_request(body=b"tampered"), 3),
        (SECRET, saved_request(body=BODY + b"\n"), 3),
        (SECRET, saved_request(drop="webhook-id"), 3),
        (OTHER_SECRET, saved_request(), 3),
        ("whsec_not-base64!", saved_request(), 3),
        (SECRET, b"garbage", 3),
    ],
)
def test_output_never_contains_the_secret(secret: str, raw: bytes, age_s: int) -> None:
    _, message = explain(raw, secret=secret, age_s=age_s)
    assert secret not in message
    assert secret.removeprefix("whsec_") not in message
    assert secret.removeprefix("whsec_")[:12] not in message
