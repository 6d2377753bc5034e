"""`pwbi-gateway verify`: check a saved webhook request against a secret and say exactly why."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Final

from app.delivery.signing import (
    DEFAULT_TOLERANCE_S,
    MALFORMED_SIGNING_KEY,
    NO_SIGNATURE_MATCHES,
    TIMESTAMP_TOO_OLD,
    SignatureMismatch,
    verify,
)

_REQUEST_LINE: Final = re.compile(rb"[A-Z]+ \S+ HTTP/[0-9](\.[0-9])?")
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Repeated headers are joined as HTTP allows, except signatures, whose list separator is a space.
_SPACE_JOINED: Final = frozenset({"webhook-signature"})

# Ways a saved body commonly differs from the bytes that were signed, each with its story.
_BODY_REPAIRS: Final[tuple[tuple[str, Callable[[bytes], bytes]], ...]] = (
    (
        "the saved body has extra line breaks at its end (editors and `echo` add them)",
        lambda body: body.rstrip(b"\r\n"),
    ),
    (
        "the saved body's line endings were changed to CRLF (a Windows editor or transfer)",
        lambda body: body.replace(b"\r\n", b"\n"),
    ),
)


class MalformedRequest(ValueError):
    """The saved request can't be read as request line, headers, blank line, body."""


def parse_saved_request(raw: bytes) -> tuple[dict[str, str], bytes]:
    """Split a saved HTTP/1.1 request into lower-cased headers and the body bytes.

    The request line is optional; lines may end in CRLF or LF. The body is kept byte for
    byte, except that line breaks after a declared Content-Length are dropped, since files
    saved by hand usually gain a final newline the sender never signed.
    """
    position = 0
    # Copy-pasting a request often brings leading blank lines; they carry nothing.
    while raw.startswith((b"\r\n", b"\n"), position):
        position = raw.index(b"\n", position) + 1
    headers: dict[str, str] = {}
    last_name: str | None = None
    line_number = 0
    while True:
        end = raw.find(b"\n", position)
        if end == -1:
            raise MalformedRequest(
                "no blank line after the headers: save the headers, one empty line, then the body"
            )
        line = raw[position:end].removesuffix(b"\r")
        position = end + 1
        line_number += 1
        if not line:
            break
        if line_number == 1 and _REQUEST_LINE.fullmatch(line):
            continue
        text = line.decode("latin-1")
        if text[0] in " \t" and last_name is not None:
            # Obsolete line folding: a continuation of the previous header's value.
            headers[last_name] = f"{headers[last_name]} {text.strip()}"
            continue
        name, separator, value = text.partition(":")
        if not separator or _HEADER_NAME.fullmatch(name) is None:
            # The line itself is not echoed: a mangled file may hold anything, secrets included.
            raise MalformedRequest(f"line {line_number} is not a header line ('Name: value')")
        last_name = name.lower()
        value = value.strip()
        if last_name in headers:
            joiner = " " if last_name in _SPACE_JOINED else ", "
            value = f"{headers[last_name]}{joiner}{value}"
        headers[last_name] = value
    body = raw[position:]
    declared = _content_length(headers)
    if declared is not None and len(body) > declared and not body[declared:].strip(b"\r\n"):
        body = body[:declared]
    return headers, body


def explain_verification(
    secret: str,
    raw: bytes,
    *,
    now: int | None = None,
    tolerance_s: int | None = DEFAULT_TOLERANCE_S,
) -> tuple[bool, str]:
    """(ok, message) for a saved request; `tolerance_s=None` skips the timestamp check.

    The signature is checked before the timestamp so that a replay saved hours ago still
    tells the partner whether their secret and body handling are right.
    """
    if tolerance_s is not None and tolerance_s < 0:
        raise ValueError("tolerance_s must be zero or more")
    try:
        headers, body = parse_saved_request(raw)
    except MalformedRequest as exc:
        return False, f"could not read the saved request: {exc}"
    current = int(time.time()) if now is None else now
    try:
        verify(secret, headers, body, tolerance_s=None)
    except SignatureMismatch as exc:
        return False, _explain_mismatch(exc.reason, secret, headers, body)
    msg_id = headers["webhook-id"]
    age = current - int(headers["webhook-timestamp"].strip())
    if tolerance_s is None:
        return (
            True,
            f"signature valid (webhook-id {msg_id}, signed {_when(age)}; timestamp not checked)",
        )
    try:
        verify(secret, headers, body, now=current, tolerance_s=tolerance_s)
    except SignatureMismatch as exc:
        return False, _explain_stale(exc.reason, age, tolerance_s)
    return True, f"signature valid (webhook-id {msg_id}, signed {_when(age)})"


def _explain_mismatch(reason: str, secret: str, headers: dict[str, str], body: bytes) -> str:
    if reason.startswith("missing "):
        found = ", ".join(sorted(headers)) or "none"
        return f"{reason} (headers found: {found}); save the request with all its headers"
    if reason == MALFORMED_SIGNING_KEY:
        return f"{reason}; use the secret shown when the subscription was created or rotated"
    if reason != NO_SIGNATURE_MATCHES:
        return reason
    for story, repair in _BODY_REPAIRS:
        repaired = repair(body)
        if repaired != body and _signature_matches(secret, headers, repaired):
            return f"{reason}: {story}; without that change the signature is valid"
    hints = [reason + "."]
    declared = _content_length(headers)
    if declared is not None and declared != len(body):
        hints.append(f"The saved body is {len(body)} bytes but Content-Length says {declared}.")
    hints.append(
        "Check that the body is saved byte for byte as received (not re-formatted JSON) and "
        "that the secret is this subscription's current one (or the previous one during a "
        "rotation)."
    )
    return " ".join(hints)


def _explain_stale(reason: str, age: int, tolerance_s: int) -> str:
    intact = "The signature itself is valid for this body and secret, so the request is intact"
    if reason == TIMESTAMP_TOO_OLD:
        return (
            f"{reason}: signed {_when(age)}, tolerance is {_duration(tolerance_s)}. {intact}; "
            "receivers refuse old timestamps to stop replays. Skip the timestamp check to "
            "verify a request saved earlier."
        )
    return (
        f"{reason}: signed {_when(age)}, tolerance is {_duration(tolerance_s)}. {intact}; "
        "check the clock of the machine that received or is checking it."
    )


def _signature_matches(secret: str, headers: dict[str, str], body: bytes) -> bool:
    try:
        verify(secret, headers, body, tolerance_s=None)
    except SignatureMismatch:
        return False
    return True


def _content_length(headers: dict[str, str]) -> int | None:
    value = headers.get("content-length", "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


def _when(age_s: int) -> str:
    return f"{_duration(age_s)} ago" if age_s >= 0 else f"{_duration(-age_s)} in the future"


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"
