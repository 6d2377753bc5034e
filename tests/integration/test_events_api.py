"""Publishing and reading events through the API: outbox rows, idempotency, validation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.tables import deliveries, events, subscription_patterns
from contracts.canonical import EXAMPLES
from contracts.event_types import EVENT_TYPES, pattern_matches, patterns_matching
from tests.conftest import TokenFactory
from workers.queue import QUEUE_NAME, deserialize_job

Client = AsyncTestClient[Litestar]
ORDER = EXAMPLES["order.created"]


async def subscribe(client: Client, auth: dict[str, str], *patterns: str, **extra: Any) -> str:
    response = await client.post(
        "/v1/subscriptions",
        json={"url": "https://93.184.216.34/hook", "event_types": list(patterns), **extra},
        headers=auth,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def delivery_targets(engine: AsyncEngine, event_id: str) -> set[str]:
    async with engine.connect() as conn:
        query = sa.select(deliveries.c.subscription_id).where(deliveries.c.event_id == event_id)
        return set((await conn.execute(query)).scalars())


async def count(engine: AsyncEngine, table: sa.Table) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


def test_index_patterns_agree_with_the_matching_rule() -> None:
    patterns = ["*", *EVENT_TYPES, *{t.split(".")[0] + ".*" for t in EVENT_TYPES}]
    for event_type in EVENT_TYPES:
        for pattern in patterns:
            assert (pattern in patterns_matching(event_type)) == pattern_matches(
                pattern, event_type
            ), (pattern, event_type)


async def test_publish_writes_one_delivery_per_matching_subscription(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    everything = await subscribe(client, auth, "*")
    orders = await subscribe(client, auth, "order.*")
    exact = await subscribe(client, auth, "order.created", "sale.completed")
    await subscribe(client, auth, "sale.*")
    paused = await subscribe(client, auth, "order.*")
    await client.post(f"/v1/subscriptions/{paused}/disable", headers=auth)

    response = await client.post("/v1/events", json=ORDER, headers=auth)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["id"].startswith("evt_")
    assert body["deliveries"] == 3
    assert await delivery_targets(engine, body["id"]) == {everything, orders, exact}


async def test_source_filtered_subscriptions_only_get_their_sources(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    await subscribe(client, auth, "*")
    response = await client.post("/v1/events", json=ORDER, headers=auth)
    assert response.json()["deliveries"] == 1
    unknown_source = await client.post(
        "/v1/events", json={**ORDER, "source_id": "src_unknown"}, headers=auth
    )
    assert unknown_source.status_code == 422
    assert unknown_source.json()["errors"][0]["field"] == "source_id"


async def test_publishes_from_a_source_reach_only_subscriptions_that_take_it(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    """Publishes from different sources that share a transaction, filters of each kind."""

    async def source(name: str) -> str:
        created = await client.post(
            "/v1/sources", json={"provider": "qasir", "name": name}, headers=auth
        )
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    first, second = await source("Qasir Senayan"), await source("Qasir Kemang")
    everything = await subscribe(client, auth, "*")
    only_first = await subscribe(client, auth, "order.*", source_ids=[first])
    empty_filter = await subscribe(client, auth, "*", source_ids=[])
    cleared = await subscribe(client, auth, "*", source_ids=[second])
    patched = await client.patch(
        f"/v1/subscriptions/{cleared}", json={"source_ids": None}, headers=auth
    )
    assert patched.status_code == 200, patched.text
    only_second = await subscribe(client, auth, "*", source_ids=[second])
    plan = [first, second, None] * 4
    responses = await asyncio.gather(
        *(
            client.post(
                "/v1/events",
                json={**ORDER, **({"source_id": source_id} if source_id else {})},
                headers=auth,
            )
            for source_id in plan
        )
    )
    unfiltered = {everything, empty_filter, cleared}
    expected = {first: unfiltered | {only_first}, second: unfiltered | {only_second}}
    for source_id, response in zip(plan, responses, strict=True):
        assert response.status_code == 202, response.text
        wanted = expected[source_id] if source_id else unfiltered
        assert await delivery_targets(engine, response.json()["id"]) == wanted, source_id


async def test_changing_patterns_changes_matching(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    sub = await subscribe(client, auth, "sale.*")
    first = (await client.post("/v1/events", json=ORDER, headers=auth)).json()
    assert first["deliveries"] == 0
    await client.patch(f"/v1/subscriptions/{sub}", json={"event_types": ["order.*"]}, headers=auth)
    second = (await client.post("/v1/events", json=ORDER, headers=auth)).json()
    assert second["deliveries"] == 1
    await client.delete(f"/v1/subscriptions/{sub}", headers=auth)
    third = (await client.post("/v1/events", json=ORDER, headers=auth)).json()
    assert third["deliveries"] == 0
    async with engine.connect() as conn:
        left = await conn.execute(
            sa.select(subscription_patterns).where(subscription_patterns.c.subscription_id == sub)
        )
        assert left.all() == []


async def test_idempotency_key_replays_the_first_response(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    await subscribe(client, auth, "*")
    headers = {**auth, "Idempotency-Key": "order-1234-created"}
    first = await client.post("/v1/events", json=ORDER, headers=headers)
    again = await client.post("/v1/events", json=ORDER, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert await count(engine, events) == 1
    assert await count(engine, deliveries) == 1

    different = {**ORDER, "occurred_at": "2026-01-01T00:00:00Z"}
    conflict = await client.post("/v1/events", json=different, headers=headers)
    assert conflict.status_code == 422
    assert "Idempotency-Key" in conflict.json()["detail"]
    assert await count(engine, events) == 1


async def test_idempotency_keys_are_per_tenant(
    client: Client,
    auth: dict[str, str],
    other_tenant_id: str,
    make_token: TokenFactory,
    engine: AsyncEngine,
) -> None:
    other = {"Authorization": f"Bearer {make_token(other_tenant_id)}", "Idempotency-Key": "k1"}
    mine = await client.post("/v1/events", json=ORDER, headers={**auth, "Idempotency-Key": "k1"})
    theirs = await client.post("/v1/events", json=ORDER, headers=other)
    assert mine.json()["id"] != theirs.json()["id"]
    assert await count(engine, events) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "order.exploded", "data": {}}, "type"),
        ({"data": ORDER["data"]}, "type"),
        ({"type": "order.created"}, "data"),
        ({**ORDER, "extra": 1}, "extra"),
        ({**ORDER, "occurred_at": "yesterday"}, "occurred_at"),
        ({"type": "inventory.adjusted", "data": {"external_item_id": 5}}, "data.external_item_id"),
    ],
)
async def test_invalid_events_are_422_naming_the_field_and_store_nothing(
    client: Client, auth: dict[str, str], engine: AsyncEngine, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/v1/events", json=body, headers=auth)
    assert response.status_code == 422, response.text
    fields = [e["field"] for e in response.json()["errors"]]
    assert any(f == field or f.startswith(field) for f in fields), fields
    assert await count(engine, events) == 0


async def test_every_catalogue_example_is_accepted_as_is(
    client: Client, auth: dict[str, str]
) -> None:
    catalogue = (await client.get("/v1/event-types", headers=auth)).json()["data"]
    assert [entry["type"] for entry in catalogue] == list(EVENT_TYPES)
    for entry in catalogue:
        assert entry["schema"]
        response = await client.post("/v1/events", json=entry["example"], headers=auth)
        assert response.status_code == 202, (entry["type"], response.text)


async def test_events_are_listed_newest_first_and_read_back_as_envelopes(
    client: Client, auth: dict[str, str], tenant_id: str
) -> None:
    ids = []
    for example in (EXAMPLES["order.created"], EXAMPLES["sale.completed"], ORDER):
        ids.append((await client.post("/v1/events", json=example, headers=auth)).json()["id"])
    listed = (await client.get("/v1/events", params={"limit": 2}, headers=auth)).json()
    assert [e["id"] for e in listed["data"]] == [ids[2], ids[1]]
    rest = await client.get("/v1/events", params={"cursor": listed["next_cursor"]}, headers=auth)
    assert [e["id"] for e in rest.json()["data"]] == [ids[0]]
    sales = (await client.get("/v1/events", params={"type": "sale.completed"}, headers=auth)).json()
    assert [e["id"] for e in sales["data"]] == [ids[1]]

    envelope = (await client.get(f"/v1/events/{ids[0]}", headers=auth)).json()
    assert envelope["id"] == ids[0]
    assert envelope["type"] == "order.created"
    assert envelope["tenant_id"] == tenant_id
    assert envelope["spec_version"] == "1"
    assert envelope["source"]["method"] == "api"
    assert envelope["received_at"].endswith("Z")
    assert envelope["data"]["order_id"] == ORDER["data"]["order_id"]


async def test_another_tenants_event_is_404(
    client: Client, auth: dict[str, str], other_tenant_id: str, make_token: TokenFactory
) -> None:
    event_id = (await client.post("/v1/events", json=ORDER, headers=auth)).json()["id"]
    other = {"Authorization": f"Bearer {make_token(other_tenant_id)}"}
    assert (await client.get(f"/v1/events/{event_id}", headers=other)).status_code == 404
    assert (await client.get("/v1/events", headers=other)).json()["data"] == []


async def test_publishing_needs_events_write(
    client: Client, tenant_id: str, make_token: TokenFactory, engine: AsyncEngine
) -> None:
    reader = {"Authorization": f"Bearer {make_token(tenant_id, scopes=('events:read',))}"}
    assert (await client.post("/v1/events", json=ORDER, headers=reader)).status_code == 403
    assert (await client.get("/v1/events", headers=reader)).status_code == 200
    assert await count(engine, events) == 0


async def test_test_endpoint_sends_a_ping_to_that_subscription_only(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    target = await subscribe(client, auth, "order.*")
    await subscribe(client, auth, "*")
    response = await client.post(f"/v1/subscriptions/{target}/test", headers=auth)
    assert response.status_code == 202
    event_id = response.json()["id"]
    assert await delivery_targets(engine, event_id) == {target}
    envelope = (await client.get(f"/v1/events/{event_id}", headers=auth)).json()
    assert envelope["type"] == "ping"
    await client.post(f"/v1/subscriptions/{target}/disable", headers=auth)
    assert (await client.post(f"/v1/subscriptions/{target}/test", headers=auth)).status_code == 409


async def test_concurrent_publishes_each_get_their_own_matching_deliveries(
    client: Client,
    auth: dict[str, str],
    other_tenant_id: str,
    make_token: TokenFactory,
    engine: AsyncEngine,
    queue: ArqRedis,
) -> None:
    """Publishes that share a transaction still match per tenant and type, and every
    delivery they wrote is queued, in fewer jobs than deliveries."""
    orders = await subscribe(client, auth, "order.*")
    everything = await subscribe(client, auth, "*")
    other_auth = {"Authorization": f"Bearer {make_token(other_tenant_id)}"}
    other_sales = await subscribe(client, other_auth, "sale.*")
    expected = {
        ("mine", "order.created"): {orders, everything},
        ("mine", "sale.completed"): {everything},
        ("other", "order.created"): set(),
        ("other", "sale.completed"): {other_sales},
    }
    plan = [
        ("mine" if i % 3 else "other", "order.created" if i % 2 else "sale.completed")
        for i in range(40)
    ]
    responses = await asyncio.gather(
        *(
            client.post(
                "/v1/events",
                json=EXAMPLES[event_type],
                headers=auth if who == "mine" else other_auth,
            )
            for who, event_type in plan
        )
    )
    all_deliveries: set[str] = set()
    for (who, event_type), response in zip(plan, responses, strict=True):
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["deliveries"] == len(expected[(who, event_type)])
        assert await delivery_targets(engine, body["id"]) == expected[(who, event_type)]
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.select(deliveries.c.id).where(deliveries.c.event_id == body["id"])
            )
            all_deliveries.update(rows.scalars())
    assert len({r.json()["id"] for r in responses}) == 40
    assert await count(engine, events) == 40

    async def queued() -> tuple[int, set[str]]:
        found: set[str] = set()
        job_ids = await queue.zrange(QUEUE_NAME, 0, -1)
        for job_id in job_ids:
            raw = await queue.get(job_key_prefix + job_id.decode())
            if raw is not None:
                found.update(str(ref[0]) for ref in deserialize_job(raw)["a"][0])
        return len(job_ids), found

    for _ in range(100):
        jobs, found = await queued()
        if found == all_deliveries:
            break
        await asyncio.sleep(0.05)
    assert found == all_deliveries
    assert jobs < len(all_deliveries)
