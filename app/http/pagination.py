"""Cursor pagination shared by every list endpoint: opaque cursors over sortable ids."""

from __future__ import annotations

import base64
import binascii

from app.http.problems import ApiError, FieldError

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode("ascii")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str | None, prefix: str) -> str | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        last_id = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        last_id = ""
    if not last_id.startswith(prefix + "_") or len(last_id) > 40:
        raise ApiError(
            422,
            "cursor: not a cursor this list returned",
            errors=[FieldError(field="cursor", message="invalid cursor", source="query")],
        )
    return last_id


def next_cursor(ids: list[str], limit: int) -> str | None:
    """A full page may have more after it; a short page is the last."""
    return encode_cursor(ids[-1]) if len(ids) == limit and ids else None
