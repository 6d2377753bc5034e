"""Riding out a Redis outage: which errors mean "Redis is away", backoff, one log line each way.

A worker that let these errors out of its poll loop would exit, and every worker on that
Redis would exit with it. Nothing a worker holds needs Redis to stay correct (deliveries,
their leases and their schedule are in SQL), so it waits and tries again instead; once Redis
answers, the sweeper enqueues whatever came due meanwhile, including what a restarted,
emptied Redis forgot.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

# Connection refused, reset or closed, a command that timed out, a Redis still loading its
# data (BusyLoadingError is a ConnectionError): all end when Redis is back. OSError covers
# socket errors that reach us unwrapped.
REDIS_DOWN: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError)

FIRST_RETRY_S = 0.5
MAX_RETRY_S = 10.0


class RedisOutage:
    """Tracks one outage at a time: logs its start and its end once, and paces the retries.

    Doubling from FIRST_RETRY_S to MAX_RETRY_S: a short blip costs half a second, and a long
    outage costs Redis one connection attempt per worker every ten seconds.
    """

    def __init__(self, first_s: float = FIRST_RETRY_S, max_s: float = MAX_RETRY_S) -> None:
        self._first_s = first_s
        self._max_s = max_s
        self._next_s = first_s
        self._since: float | None = None

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def noticed(self, error: BaseException) -> None:
        """Redis failed a call; the first failure of an outage is logged, later ones are not."""
        if self._since is None:
            self._since = time.monotonic()
            logger.warning(
                "Redis unreachable; the worker keeps running and retries until it answers",
                extra={"error": type(error).__name__},
            )

    def next_delay(self, error: BaseException) -> float:
        """Note the failure; how long to wait before trying Redis again."""
        self.noticed(error)
        delay = self._next_s
        self._next_s = min(self._next_s * 2, self._max_s)
        return delay

    async def wait(self, error: BaseException) -> None:
        await asyncio.sleep(self.next_delay(error))

    def recovered(self) -> None:
        """Redis answered: the end of an outage is logged once, and the backoff starts over."""
        if self._since is None:
            return
        logger.info(
            "Redis reachable again; the sweeper enqueues what came due meanwhile",
            extra={"outage_s": round(time.monotonic() - self._since, 1)},
        )
        self._since = None
        self._next_s = self._first_s
