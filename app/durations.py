"""Durations as operators write them: 90s, 15m, 12h, 30d, or plain seconds."""

from __future__ import annotations

import re
from typing import Final

_DURATION_PATTERN: Final = re.compile(r"([0-9]{1,12})([smhd]?)")
_UNIT_SECONDS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration_s(text: str) -> int:
    """Parse "30d", "12h", "15m", "90s" or "3600" (seconds) into a positive number of seconds."""
    match = _DURATION_PATTERN.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(
            f"invalid duration {text[:40]!r}: expected a whole number with an optional "
            "unit s, m, h or d (e.g. 90s, 15m, 12h, 30d)"
        )
    seconds = int(match[1]) * _UNIT_SECONDS[match[2]]
    if seconds <= 0:
        raise ValueError(f"invalid duration {text[:40]!r}: must be greater than zero")
    return seconds
