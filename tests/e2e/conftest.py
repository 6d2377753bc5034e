"""End-to-end fixtures: a real gateway and workers over the test run's SQL and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy.ext.asyncio import AsyncEngine

from tests import backends
from tests.conftest import HS_KID, HS_SECRET
from tests.e2e.stack import Receiver, Stack

# Milliseconds instead of minutes: four attempts in well under a second.
FAST_SCHEDULE = "0.2,0.3,0.4"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
def stack_env(database_url: str, redis_url: str) -> dict[str, str]:
    # Each test starts with an empty queue: no job of an earlier test may run in this one.
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    return {
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_JWT_SECRETS": f"{HS_KID}={HS_SECRET}",
        "GATEWAY_RETRY_SCHEDULE": FAST_SCHEDULE,
        "GATEWAY_DELIVERY_TIMEOUT_S": "1",
        "GATEWAY_SSRF_ALLOW_CIDRS": "127.0.0.1/32",
        "GATEWAY_ALLOW_HTTP": "true",
        "GATEWAY_LOG_LEVEL": "INFO",
    }


StackFactory = Callable[..., Stack]


@pytest.fixture
def make_stack(
    stack_env: dict[str, str], tmp_path: Path, engine: AsyncEngine
) -> Iterator[StackFactory]:
    stacks: list[Stack] = []

    def make(workers: int = 1, **overrides: str) -> Stack:
        stack = Stack(env={**stack_env, **overrides})
        stack.start(tmp_path, workers=workers)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop()


@pytest.fixture
def once_per_run(backend: str) -> None:
    """Long resilience runs (kill -9, emptied Redis, hangs) go once, on the production store.

    SQLite still runs every other end-to-end test; these add minutes, not coverage of SQL.
    """
    if backend == "sqlite" and backends.postgres_available() is None:
        pytest.skip("long resilience test: runs once per suite, on PostgreSQL")
