"""Prefixed, time-sortable identifiers (ten_, sub_, evt_, dlv_, att_, src_, rpl_, aud_)."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime

# Crockford base32, as ULID uses: sortable as plain strings.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every 10-bit value as its two characters: a ULID is 13 table lookups instead of 26 divmods
# (ids are made several times per request on the publish path).
_PAIRS = tuple(a + b for a in ALPHABET for b in ALPHABET)
_PAIR_SHIFTS = tuple(range(120, -1, -10))
_lock = threading.Lock()
_last_ms = 0
_last_random = 0


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, index = divmod(value, 32)
        chars.append(ALPHABET[index])
    return "".join(reversed(chars))


# A block of ids is the 2**20 ULIDs that share their first 22 characters (the last four
# encode 20 bits); whoever holds the block's prefix can name up to that many ids itself.
BLOCK_BITS = 20
BLOCK_PREFIX_LENGTH = 22
_RANDOM_LIMIT = 1 << 80


def _next_value(span: int) -> int:
    """The first of `span` consecutive ULID values (a power of two, aligned to it), all after
    every value handed out before in this process."""
    global _last_ms, _last_random
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        # Same millisecond (or clock stepped back): count on from the last value instead of
        # drawing anew, so "newest first" lists never reorder rows created back to back.
        start = (_last_random // span + 1) * span
        if now_ms <= _last_ms and start + span <= _RANDOM_LIMIT:
            now_ms = _last_ms
        elif now_ms <= _last_ms:
            # The random part is exhausted: borrow the next millisecond rather than wrap.
            now_ms = _last_ms + 1
            start = (int.from_bytes(os.urandom(10), "big") >> 1) // span * span
        else:
            start = int.from_bytes(os.urandom(10), "big") // span * span
        _last_ms = now_ms
        _last_random = start + span - 1
        return (now_ms << 80) | start


def _text(value: int) -> str:
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _PAIR_SHIFTS])


def new_ulid() -> str:
    """A 26-character ULID, monotonic within this process so ids sort in creation order."""
    return _text(_next_value(1))


def new_id_block(prefix: str) -> str:
    """`{prefix}_` and the first 22 characters of 2**20 fresh consecutive ULIDs.

    For ids named where they are stored (PostgreSQL names an event's deliveries in the
    statement that finds them): the holder appends the block's four last characters.
    """
    return f"{prefix}_{_text(_next_value(1 << BLOCK_BITS))[:BLOCK_PREFIX_LENGTH]}"


def new_ids(prefix: str, count: int) -> list[str]:
    """`count` fresh ids, consecutive in one block: a lock and a clock read for all of them
    (a batch of attempt rows names its rows at once)."""
    if not 0 <= count <= 1 << BLOCK_BITS:
        raise ValueError(f"a block holds at most {1 << BLOCK_BITS} ids")
    if count == 0:
        return []
    block = new_id_block(prefix)
    return [f"{block}{_PAIRS[n >> 10]}{_PAIRS[n & 1023]}" for n in range(count)]


def new_id(prefix: str) -> str:
    return f"{prefix}_{new_ulid()}"


def has_prefix(value: str, prefix: str) -> bool:
    """True when value looks like one of our ids of that kind (cheap shape check)."""
    body = value.removeprefix(prefix + "_")
    return body != value and len(body) == 26 and all(c in ALPHABET for c in body)


def id_floor(prefix: str, at: datetime) -> str:
    """The smallest id of that kind created at `at`: time filters become index range scans."""
    ms = max(int(at.timestamp() * 1000), 0)
    return f"{prefix}_{_encode(ms, 10)}{'0' * 16}"
