"""The API while Redis is down: SQL takes the work and says 202; the sweeper queues it later.

Every route that queues work commits it to SQL first; the job in Redis only makes it start
sooner. With Redis unreachable those routes answer as usual, what they accepted is stored
where the sweeper finds it, and /readyz says 503 so that load balancers know.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.clock import utcnow
from app.delivery.replay import stalled_replays
from app.embedded_redis import free_port
from app.http.app import create_app
from app.settings import Settings
from app.store.tables import deliveries
from tests.integration.test_deliveries_api import (
    ORDER,
    assert_problem,
    listed,
    set_status,
    subscribe,
)
from workers.sweeper import OVERDUE_AFTER, overdue_query

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def client(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Client]:
    # Nothing listens on this port: every Redis call is refused, as when Redis is down.
    down = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with AsyncTestClient(app=create_app(down), base_url="http://127.0.0.1") as client:
        yield client


async def swept_later(engine: AsyncEngine) -> set[str]:
    """What the sweeper enqueues once these deliveries have been due for a while."""
    async with engine.connect() as conn:
        later = utcnow() + OVERDUE_AFTER + timedelta(seconds=1)
        return {row.id for row in await conn.execute(overdue_query(later))}


async def test_readyz_is_503_naming_redis(client: Client) -> None:
    body = assert_problem(await client.get("/readyz"), 503)
    assert "redis" in body["detail"]


async def test_a_publish_is_accepted_and_its_deliveries_wait_for_the_sweeper(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    await subscribe(client, auth, "order.*")
    response = await client.post("/v1/events", json=ORDER, headers=auth)
    assert response.status_code == 202, response.text
    assert response.json()["deliveries"] == 1
    [delivery] = await listed(client, auth)
    assert delivery["status"] == "pending"
    assert await swept_later(engine) == {delivery["id"]}


async def test_a_retry_is_accepted_and_left_to_the_sweeper(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    await subscribe(client, auth, "order.*")
    assert (await client.post("/v1/events", json=ORDER, headers=auth)).status_code == 202
    [delivery] = await listed(client, auth)
    await set_status(engine, "failed", delivery["id"])

    response = await client.post(f"/v1/deliveries/{delivery['id']}/retry", headers=auth)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    assert await swept_later(engine) == {delivery["id"]}


async def test_a_replay_is_accepted_and_its_new_deliveries_wait_for_the_sweeper(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    await subscribe(client, auth, "order.*")
    published = await client.post("/v1/events", json=ORDER, headers=auth)
    event_id = published.json()["id"]
    [original] = await listed(client, auth)
    await set_status(engine, "succeeded", original["id"])

    response = await client.post(f"/v1/events/{event_id}/replay", headers=auth)
    assert response.status_code == 202, response.text
    [replayed] = response.json()["deliveries"]
    assert await swept_later(engine) == {replayed}


async def test_a_recover_is_accepted_and_the_sweeper_resumes_it(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    subscription_id = await subscribe(client, auth, "order.*")
    assert (await client.post("/v1/events", json=ORDER, headers=auth)).status_code == 202
    [delivery] = await listed(client, auth)
    await set_status(engine, "failed", delivery["id"])

    since = (utcnow() - timedelta(hours=1)).isoformat()
    response = await client.post(
        f"/v1/subscriptions/{subscription_id}/recover", json={"since": since}, headers=auth
    )
    assert response.status_code == 202, response.text
    replay_id = response.json()["replay_id"]
    async with engine.connect() as conn:
        assert await stalled_replays(conn, utcnow() + timedelta(minutes=1)) == [replay_id]
        pending = await conn.execute(sa.select(deliveries.c.status))
        assert [row.status for row in pending] == ["failed"]  # the recover's job does that


async def test_enabling_with_recover_since_is_accepted_and_the_sweeper_resumes_it(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    subscription_id = await subscribe(client, auth, "order.*")
    disabled = await client.post(f"/v1/subscriptions/{subscription_id}/disable", headers=auth)
    assert disabled.status_code == 200, disabled.text
    since = (utcnow() - timedelta(hours=1)).isoformat()
    response = await client.post(
        f"/v1/subscriptions/{subscription_id}/enable",
        json={"recover_since": since},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    replay_id = response.json()["replay_id"]
    async with engine.connect() as conn:
        assert await stalled_replays(conn, utcnow() + timedelta(minutes=1)) == [replay_id]
