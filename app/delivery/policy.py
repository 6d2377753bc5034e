"""Retry policy, pure: what an attempt's outcome means and when to try the next one."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final, Literal

Outcome = Literal["succeeded", "retry", "gave_up", "gone"]

# Statuses whose Retry-After we honour: the receiver is telling us when it can take more.
RETRY_AFTER_STATUSES: Final = frozenset({429, 502, 503, 504})
GONE_STATUS: Final = 410
TOO_MANY_REQUESTS: Final = 429
# A receiver that rate-limits us gets at least a minute, whatever its header says.
MIN_TOO_MANY_REQUESTS_DELAY_S: Final = 60.0
DEFAULT_JITTER: Final = 0.2

_DELTA_SECONDS: Final = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
# Jitter needs no secrecy; SystemRandom just keeps us off the module-level generator,
# whose state any library may seed.
_DEFAULT_RNG: Final = random.SystemRandom()


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt produced: a status, or an error class when no response came."""

    status_code: int | None = None
    # "timeout", "connection_refused", "dns", "ssrf_refused", "tls", "connection_error"...
    error: str | None = None
    retry_after: str | None = None  # the raw Retry-After header value, if any


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    next_delay_s: float | None = None  # set only when outcome is "retry"
    disable_subscription: bool = False


def classify(result: AttemptResult) -> bool:
    """Success iff a 2xx arrived without error; redirects are failures (never followed)."""
    return (
        result.error is None and result.status_code is not None and 200 <= result.status_code < 300
    )


def next_delay(
    attempt_number: int,
    schedule: Sequence[float],
    *,
    rng: random.Random | None = None,
    jitter: float = DEFAULT_JITTER,
) -> float | None:
    """Seconds to wait after attempt `attempt_number` failed, or None when the schedule is spent.

    Attempt 1 is immediate, so after attempt n the wait is schedule[n-1] +/- jitter, and a
    schedule of k delays allows k + 1 attempts.
    """
    if attempt_number < 1:
        raise ValueError("attempt numbers start at 1")
    if not 0 <= jitter < 1:
        raise ValueError("jitter must be in [0, 1)")
    if attempt_number > len(schedule):
        return None
    base = schedule[attempt_number - 1]
    # Jitter spreads the retries of a burst that failed together, so they don't return together.
    return base * (rng or _DEFAULT_RNG).uniform(1 - jitter, 1 + jitter)


def parse_retry_after(value: str, now: datetime) -> float | None:
    """Seconds from `now` that a Retry-After value (delta-seconds or HTTP-date) asks for.

    Past dates and negative deltas mean "now" (0); anything unreadable is None, so a
    receiver's garbage header falls back to the schedule instead of failing the delivery.
    """
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        return max(0.0, float(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # "-0000" dates parse as naive; HTTP-dates are always GMT.
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    seconds = (when - now).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def decide(
    attempt_number: int,
    result: AttemptResult,
    schedule: Sequence[float],
    *,
    now: datetime,
    rng: random.Random | None = None,
) -> Decision:
    """The single mapping from an attempt's result to what happens next.

    For 429/502/503/504 with a readable Retry-After, the wait is Retry-After clamped to
    [scheduled, 2 x scheduled] (a receiver may slow us down but not stall or rush the
    schedule), and for 429 never under 60 s.
    """
    if classify(result):
        return Decision(outcome="succeeded")
    if result.error is None and result.status_code == GONE_STATUS:
        # 410 is the receiver saying the endpoint is gone for good: stop at once.
        return Decision(outcome="gone", disable_subscription=True)
    scheduled = next_delay(attempt_number, schedule, rng=rng)
    if scheduled is None:
        return Decision(outcome="gave_up")
    delay = scheduled
    if result.status_code in RETRY_AFTER_STATUSES and result.retry_after is not None:
        asked = parse_retry_after(result.retry_after, now)
        if asked is not None:
            delay = min(max(asked, scheduled), 2 * scheduled)
            if result.status_code == TOO_MANY_REQUESTS:
                delay = max(delay, MIN_TOO_MANY_REQUESTS_DELAY_S)
    return Decision(outcome="retry", next_delay_s=delay)
