"""Specification of the retry policy: what each attempt outcome means and when the next one runs."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from app.delivery.policy import (
    AttemptResult,
    Decision,
    classify,
    decide,
    next_delay,
    parse_retry_after,
)
from app.settings import DEFAULT_RETRY_SCHEDULE

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
SCHEDULE = DEFAULT_RETRY_SCHEDULE


class FixedFactor(random.Random):
    """An rng whose uniform(a, b) returns a chosen point of the range: 0 = low end, 1 = high."""

    def __init__(self, point: float) -> None:
        super().__init__(0)
        self.point = point

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.point


MIDDLE = FixedFactor(0.5)  # no jitter: delay == scheduled delay


def status(code: int, retry_after: str | None = None) -> AttemptResult:
    return AttemptResult(status_code=code, error=None, retry_after=retry_after)


def error(kind: str) -> AttemptResult:
    return AttemptResult(status_code=None, error=kind, retry_after=None)


def decide_now(attempt: int, result: AttemptResult, rng: random.Random = MIDDLE) -> Decision:
    return decide(attempt, result, SCHEDULE, now=NOW, rng=rng)


@pytest.mark.parametrize("code", [200, 201, 202, 204, 299])
def test_2xx_is_success(code: int) -> None:
    assert classify(status(code)) is True
    assert decide_now(1, status(code)) == Decision(
        outcome="succeeded", next_delay_s=None, disable_subscription=False
    )


@pytest.mark.parametrize("code", [100, 301, 302, 307, 308, 400, 401, 404, 409, 422, 500, 599])
def test_other_statuses_are_failures_that_retry(code: int) -> None:
    assert classify(status(code)) is False
    decision = decide_now(1, status(code))
    assert decision.outcome == "retry"
    assert decision.next_delay_s == 5.0
    assert decision.disable_subscription is False


@pytest.mark.parametrize(
    "kind", ["timeout", "connection_refused", "dns", "ssrf_refused", "tls", "connection_error"]
)
def test_errors_without_a_response_are_failures(kind: str) -> None:
    assert classify(error(kind)) is False
    assert decide_now(2, error(kind)) == Decision(outcome="retry", next_delay_s=300.0)


def test_2xx_with_an_error_is_a_failure() -> None:
    # e.g. the status line arrived but the body timed out: not "2xx within the timeout".
    assert classify(AttemptResult(status_code=200, error="timeout", retry_after=None)) is False


def test_410_disables_subscription() -> None:
    decision = decide_now(1, status(410))
    assert decision == Decision(outcome="gone", next_delay_s=None, disable_subscription=True)
    assert classify(status(410)) is False


def test_410_on_the_last_attempt_still_disables() -> None:
    assert decide_now(len(SCHEDULE) + 1, status(410)).disable_subscription is True


def test_default_schedule_gives_8_attempts() -> None:
    attempts = 1
    while decide_now(attempts, status(500)).outcome == "retry":
        attempts += 1
    assert attempts == 8
    assert decide_now(8, status(500)) == Decision(outcome="gave_up", next_delay_s=None)


def test_default_schedule_delays_without_jitter() -> None:
    delays = [next_delay(n, SCHEDULE, rng=MIDDLE) for n in range(1, 9)]
    assert delays == [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0, None]


@pytest.mark.parametrize("attempt", range(1, 8))
def test_delays_stay_within_20_percent(attempt: int) -> None:
    rng = random.Random(attempt)
    base = SCHEDULE[attempt - 1]
    delays = [next_delay(attempt, SCHEDULE, rng=rng) for _ in range(500)]
    assert all(d is not None and 0.8 * base <= d <= 1.2 * base for d in delays)
    # Jitter really spreads: both halves of the range are used.
    assert any(d is not None and d < 0.9 * base for d in delays)
    assert any(d is not None and d > 1.1 * base for d in delays)


def test_jitter_extremes_are_exactly_plus_minus_20_percent() -> None:
    assert next_delay(2, SCHEDULE, rng=FixedFactor(0.0)) == pytest.approx(240.0)
    assert next_delay(2, SCHEDULE, rng=FixedFactor(1.0)) == pytest.approx(360.0)


def test_jitter_is_deterministic_with_a_seeded_rng() -> None:
    first = [decide(n, status(500), SCHEDULE, now=NOW, rng=random.Random(42)) for n in range(1, 9)]
    again = [decide(n, status(500), SCHEDULE, now=NOW, rng=random.Random(42)) for n in range(1, 9)]
    assert first == again


def test_without_an_rng_delays_are_still_in_range() -> None:
    delay = next_delay(1, SCHEDULE)
    assert delay is not None
    assert 4.0 <= delay <= 6.0


def test_exhausted_schedule_gives_up() -> None:
    assert next_delay(8, SCHEDULE) is None
    assert decide_now(8, error("timeout")).outcome == "gave_up"
    assert decide_now(1, status(500)).outcome == "retry"
    assert decide(1, status(500), (), now=NOW) == Decision(outcome="gave_up")


def test_short_schedules_from_tests_work() -> None:
    assert next_delay(1, (0.01, 0.02), rng=MIDDLE) == 0.01
    assert next_delay(3, (0.01, 0.02), rng=MIDDLE) is None


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        next_delay(0, SCHEDULE)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), (" 7 ", 7.0), ("0", 0.0), ("-5", 0.0), ("1.5", 1.5)],
)
def test_retry_after_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_retry_after_http_date() -> None:
    header = format_datetime(NOW + timedelta(minutes=10), usegmt=True)
    assert header.endswith("GMT")
    assert parse_retry_after(header, NOW) == 600.0


def test_retry_after_date_in_the_past_means_now() -> None:
    header = format_datetime(NOW - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(header, NOW) == 0.0


@pytest.mark.parametrize("value", ["", "soon", "12abc", "inf", "nan", "1e3", "Fri, 99 Foo"])
def test_retry_after_garbage_is_ignored(value: str) -> None:
    assert parse_retry_after(value, NOW) is None


@pytest.mark.parametrize("code", [429, 502, 503, 504])
def test_retry_after_within_range_is_honoured(code: int) -> None:
    # After attempt 2 the scheduled delay is 300 s: Retry-After in [300, 600] is used as is.
    assert decide_now(2, status(code, "450")).next_delay_s == 450.0


@pytest.mark.parametrize("code", [502, 503, 504])
def test_retry_after_cannot_rush_the_schedule(code: int) -> None:
    assert decide_now(2, status(code, "1")).next_delay_s == 300.0


@pytest.mark.parametrize("code", [429, 502, 503, 504])
def test_retry_after_cannot_stall_beyond_twice_the_schedule(code: int) -> None:
    assert decide_now(2, status(code, "86400")).next_delay_s == 600.0


def test_retry_after_http_date_is_clamped() -> None:
    header = format_datetime(NOW + timedelta(days=1), usegmt=True)
    assert decide_now(3, status(503, header)).next_delay_s == 3600.0


def test_retry_after_clamps_around_the_jittered_delay() -> None:
    low = FixedFactor(0.0)  # scheduled 300 s becomes 240 s
    assert decide_now(2, status(503, "1"), rng=low).next_delay_s == pytest.approx(240.0)
    assert decide_now(2, status(503, "9999"), rng=low).next_delay_s == pytest.approx(480.0)


def test_429_waits_at_least_60_seconds() -> None:
    # Scheduled 5 s (clamp range [5, 10]), but a rate-limiting receiver gets a full minute.
    assert decide_now(1, status(429, "30")).next_delay_s == 60.0
    assert decide_now(1, status(429, "0")).next_delay_s == 60.0


def test_429_minimum_does_not_shorten_longer_waits() -> None:
    assert decide_now(3, status(429, "2500")).next_delay_s == 2500.0


def test_garbage_retry_after_falls_back_to_the_schedule() -> None:
    assert decide_now(2, status(503, "whenever")).next_delay_s == 300.0
    assert decide_now(2, status(429, "whenever")).next_delay_s == 300.0


def test_retry_after_is_ignored_for_other_statuses() -> None:
    assert decide_now(2, status(500, "9999")).next_delay_s == 300.0
    assert decide_now(2, status(301, "9999")).next_delay_s == 300.0


def test_retry_after_does_not_extend_the_schedule() -> None:
    assert decide_now(8, status(503, "10")).outcome == "gave_up"
