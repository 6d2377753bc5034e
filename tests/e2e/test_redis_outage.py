"""A Redis outage end to end: the worker and the gateway ride it out, nothing is lost or doubled.

The test owns its Redis (a private redis-server on a free loopback port), so it can stop it
and start it again on the same port. That Redis persists nothing: the restarted one is
empty, every queued job gone, the worst case, which SQL recovery must cover.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.embedded_redis import start_embedded_redis
from tests.e2e.conftest import StackFactory
from tests.e2e.stack import Receiver, Stack
from tests.e2e.test_delivery import ORDER, eventually, statuses, subscribe

BEFORE, DURING = 5, 5
# What a worker logs when it loses Redis, and when it has it back (once each per outage).
OUTAGE_LOGGED = "Redis unreachable"
RECOVERY_LOGGED = "Redis reachable again"


async def readyz(stack: Stack) -> int:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=5) as client:
        return (await client.get("/readyz")).status_code


async def readyz_is(stack: Stack, expected: int) -> bool:
    return await readyz(stack) == expected


async def publish_all(stack: Stack, token: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as client:
        headers = {"Authorization": f"Bearer {token}"}
        return [await client.post("/v1/events", json=ORDER, headers=headers) for _ in range(count)]


def log_of(stack: Stack, name: str) -> str:
    assert stack.log_dir is not None
    return (stack.log_dir / f"{name}.log").read_text(errors="replace")


async def test_a_worker_and_the_gateway_outlive_a_redis_restart_and_deliver_everything_once(
    make_stack: StackFactory,
    receiver: Receiver,
    auth_token: str,
    engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    redis_server = start_embedded_redis(tmp_path / "redis")
    port = redis_server.port
    try:
        stack = make_stack(GATEWAY_REDIS_URL=redis_server.url)
        await subscribe(stack, auth_token, receiver, "/orders", "order.*")
        accepted: list[str] = []
        for response in await publish_all(stack, auth_token, BEFORE):
            assert response.status_code == 202, response.text
            accepted.append(response.json()["id"])

        async def delivered(count: int) -> bool:
            return len({r.headers["webhook-id"] for r in receiver.at("/orders")}) >= count

        await eventually(lambda: delivered(BEFORE), timeout=15)

        redis_server.stop()
        await eventually(lambda: readyz_is(stack, 503), timeout=10)
        # SQL is the system of record: the events are stored, and accepted, without Redis.
        for response in await publish_all(stack, auth_token, DURING):
            assert response.status_code == 202, response.text
            accepted.append(response.json()["id"])
        await asyncio.sleep(3)  # the worker meets the outage over several polls
        assert await readyz(stack) == 503
        assert all(w.poll() is None for w in stack.workers), log_of(stack, "worker0")

        redis_server = start_embedded_redis(tmp_path / "redis", port=port)  # empty
        await eventually(lambda: readyz_is(stack, 200), timeout=15)
        await eventually(lambda: delivered(len(accepted)), timeout=35)

        async def all_succeeded() -> bool:
            found = await statuses(engine)
            return len(found) == len(accepted) and set(found.values()) == {"succeeded"}

        await eventually(all_succeeded, timeout=10)
        await asyncio.sleep(1)  # a duplicate still on its way would arrive now

        received = receiver.at("/orders")
        by_id = Counter(r.headers["webhook-id"] for r in received)
        assert set(by_id) == set(accepted)
        assert [i for i, n in by_id.items() if n > 1] == [], "delivered more than once"
        assert all(r.verified for r in received)
        assert all(w.poll() is None for w in stack.workers), "the worker must still be running"
        worker_log = log_of(stack, "worker0")
        assert worker_log.count(OUTAGE_LOGGED) == 1, worker_log[-3000:]
        assert worker_log.count(RECOVERY_LOGGED) == 1, worker_log[-3000:]
    finally:
        redis_server.stop()
