"""Riding out a Redis outage: one log line when it starts, one when it ends, capped backoff."""

from __future__ import annotations

import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from workers.redis_outage import RedisOutage

REFUSED = RedisConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "workers.redis_outage"]


def test_retries_back_off_from_half_a_second_doubling_to_ten() -> None:
    outage = RedisOutage()
    delays = [outage.next_delay(REFUSED) for _ in range(8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_an_outage_is_logged_once_however_many_calls_fail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    outage = RedisOutage()
    for _ in range(20):
        outage.next_delay(REFUSED)
        outage.noticed(REFUSED)
    assert outage.ongoing
    [started] = outage_lines(caplog)
    assert started.startswith("Redis unreachable")
    assert "127.0.0.1" not in started  # the error's class is enough; no address in logs

    outage.recovered()
    outage.recovered()
    assert not outage.ongoing
    assert [line.split(";")[0] for line in outage_lines(caplog)] == [
        "Redis unreachable",
        "Redis reachable again",
    ]


def test_the_next_outage_is_logged_again_and_backs_off_from_the_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    outage = RedisOutage()
    for _ in range(5):
        outage.next_delay(REFUSED)
    outage.recovered()
    assert outage.next_delay(REFUSED) == 0.5
    assert [line.split(";")[0] for line in outage_lines(caplog)] == [
        "Redis unreachable",
        "Redis reachable again",
        "Redis unreachable",
    ]


def test_calls_that_succeed_outside_an_outage_log_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    RedisOutage().recovered()
    assert outage_lines(caplog) == []
