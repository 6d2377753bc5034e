"""PostgreSQL's one-statement outbox write matches, names and stores as the transaction does."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.clock import utcnow
from app.ids import has_prefix, new_id, new_id_block
from app.security.secret_box import SecretBox, new_webhook_secret
from app.store.driver_sql import HeldConnections
from app.store.events import NewEvent, matching_subscription_ids
from app.store.publish_sql import write_batch
from app.store.subscriptions import insert_subscription, set_subscription_enabled
from app.store.tables import deliveries, events
from contracts.api import SubscriptionCreate
from contracts.canonical import EXAMPLES

Client = AsyncTestClient[Litestar]

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@pytest.fixture(autouse=True)
def _postgresql_only(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("the one-statement write is PostgreSQL's")


async def _subscribe(
    engine: AsyncEngine, tenant_id: str, *patterns: str, source_ids: list[str] | None = None
) -> str:
    body = SubscriptionCreate(
        url="https://93.184.216.34/hook", event_types=list(patterns), source_ids=source_ids
    )
    async with engine.begin() as conn:
        created = await insert_subscription(
            conn,
            tenant_id=tenant_id,
            body=body,
            sealed_secret=SecretBox(()).seal(new_webhook_secret()),
            actor="test",
        )
    return created.id


def _event(tenant_id: str, event_type: str, source_id: str | None) -> NewEvent:
    now = utcnow()
    return NewEvent(
        id=new_id("evt"),
        tenant_id=tenant_id,
        type=event_type,
        source_id=source_id,
        provider="qasir" if source_id else None,
        occurred_at=now,
        received_at=now,
        payload='{"data": "Nasi goreng"}',
    )


async def test_each_event_gets_a_delivery_per_subscription_the_transaction_would_match(
    engine: AsyncEngine, tenant_id: str, other_tenant_id: str
) -> None:
    mine = {
        "everything": await _subscribe(engine, tenant_id, "*"),
        # Two of its patterns select order.created: still one delivery.
        "orders": await _subscribe(engine, tenant_id, "order.*", "order.created"),
        "exact": await _subscribe(engine, tenant_id, "order.created"),
        "sales": await _subscribe(engine, tenant_id, "sale.*"),
        "one source": await _subscribe(engine, tenant_id, "*", source_ids=["src_1"]),
        "two sources": await _subscribe(
            engine, tenant_id, "order.*", source_ids=["src_1", "src_2"]
        ),
        "empty filter": await _subscribe(engine, tenant_id, "*", source_ids=[]),
    }
    paused = await _subscribe(engine, tenant_id, "*")
    async with engine.begin() as conn:
        await set_subscription_enabled(
            conn, tenant_id=tenant_id, subscription_id=paused, enabled=False, actor="test"
        )
    theirs = await _subscribe(engine, other_tenant_id, "order.*")

    batch = [
        _event(tenant, event_type, source)
        for tenant in (tenant_id, other_tenant_id)
        for event_type in ("order.created", "sale.completed", "menu.updated")
        for source in (None, "src_1", "src_2", "src_3")
    ]
    now = utcnow()
    blocks = [new_id_block("dlv") for _ in batch]
    held = HeldConnections(engine, size=1)
    try:
        written = await write_batch(held, batch, blocks, now)
    finally:
        await held.close()

    async with engine.connect() as conn:
        rows = {
            row.id: row
            for row in await conn.execute(
                sa.select(deliveries).where(deliveries.c.event_id.in_([e.id for e in batch]))
            )
        }
        stored_events = (
            await conn.execute(
                sa.select(events.c.id, events.c.received_at).where(
                    events.c.id.in_([e.id for e in batch])
                )
            )
        ).all()
        assert {(r.id, r.received_at) for r in stored_events} == {(e.id, now) for e in batch}
        for event, block, ids in zip(batch, blocks, written, strict=True):
            expected = await matching_subscription_ids(
                conn, event.tenant_id, event.type, event.source_id
            )
            # In subscription order, as the transaction names them; ids in creation order.
            assert [rows[i].subscription_id for i in ids] == expected, event
            assert ids == sorted(ids)
            for delivery_id in ids:
                assert has_prefix(delivery_id, "dlv")
                assert delivery_id.startswith(block)
                row = rows[delivery_id]
                assert (row.tenant_id, row.event_id) == (event.tenant_id, event.id)
                assert (row.status, row.attempt_count) == ("pending", 0)
                assert row.next_attempt_at == row.created_at == row.updated_at == now
    assert len(rows) == sum(len(ids) for ids in written)
    assert paused not in {row.subscription_id for row in rows.values()}
    # Spot checks of the reference itself, so the comparison above compares something.
    order_from_src_1 = written[batch.index(next(e for e in batch if e.source_id == "src_1"))]
    assert {rows[i].subscription_id for i in order_from_src_1} == {
        mine[name] for name in ("everything", "orders", "exact", "one source", "two sources")
    } | {mine["empty filter"]}
    assert {rows[i].subscription_id for i in written[-4]} == set()  # theirs: menu, no source
    assert theirs in {row.subscription_id for row in rows.values()}


async def test_a_batch_that_fails_writes_nothing_and_the_connection_serves_the_next(
    engine: AsyncEngine, tenant_id: str
) -> None:
    await _subscribe(engine, tenant_id, "*")
    good = _event(tenant_id, "order.created", None)
    orphan = _event("ten_00000000000000000000000000", "order.created", None)
    held = HeldConnections(engine, size=1)
    try:
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await write_batch(
                held, [good, orphan], [new_id_block("dlv"), new_id_block("dlv")], utcnow()
            )
        async with engine.connect() as conn:
            for table in (events, deliveries):
                count = sa.select(sa.func.count()).select_from(table)
                assert (await conn.execute(count)).scalar_one() == 0, table.name
        again = _event(tenant_id, "order.created", None)
        [ids] = await write_batch(held, [again], [new_id_block("dlv")], utcnow())
        assert len(ids) == 1
    finally:
        await held.close()


async def test_an_empty_match_writes_the_events_alone(engine: AsyncEngine, tenant_id: str) -> None:
    batch = [_event(tenant_id, "order.created", None) for _ in range(3)]
    held = HeldConnections(engine, size=1)
    try:
        written = await write_batch(held, batch, [new_id_block("dlv") for _ in batch], utcnow())
    finally:
        await held.close()
    assert written == [[], [], []]
    async with engine.connect() as conn:
        count = sa.select(sa.func.count()).select_from(events)
        assert (await conn.execute(count)).scalar_one() == 3


async def test_an_event_for_many_subscriptions_gets_distinct_ids_in_subscription_order(
    engine: AsyncEngine, tenant_id: str
) -> None:
    """Past 32 deliveries the id's last two characters both count."""
    subscribed = sorted([await _subscribe(engine, tenant_id, "order.*") for _ in range(40)])
    event = _event(tenant_id, "order.created", None)
    block = new_id_block("dlv")
    held = HeldConnections(engine, size=1)
    try:
        [ids] = await write_batch(held, [event], [block], utcnow())
    finally:
        await held.close()
    assert ids == [f"{block}00{a}{b}" for a in "01" for b in CROCKFORD][:40]
    async with engine.connect() as conn:
        query = sa.select(deliveries.c.id, deliveries.c.subscription_id).order_by(deliveries.c.id)
        assert [tuple(row) for row in await conn.execute(query)] == list(
            zip(ids, subscribed, strict=True)
        )


async def _publisher_backends(engine: AsyncEngine, *, state: str) -> list[int]:
    """PostgreSQL sessions of the gateway's publisher (their statement is the batch write)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = :state AND query LIKE '%WITH written AS%' "
                "AND pid <> pg_backend_pid()"
            ),
            {"state": state},
        )
        return [int(pid) for pid in rows.scalars()]


async def _terminate(engine: AsyncEngine, pids: list[int]) -> None:
    async with engine.connect() as conn:
        for pid in pids:
            await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


async def _publish(client: Client, auth: dict[str, str]) -> Any:
    return await client.post("/v1/events", json=EXAMPLES["order.created"], headers=auth)


async def test_a_publish_after_the_database_dropped_the_idle_connection_is_served(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    """A database restart or an idle timeout ends the kept connection: nothing was sent on
    it, so the next publish gets a new one instead of an error."""
    subscribed = await client.post(
        "/v1/subscriptions",
        json={"url": "https://93.184.216.34/hook", "event_types": ["*"]},
        headers=auth,
    )
    assert subscribed.status_code == 201, subscribed.text
    assert (await _publish(client, auth)).status_code == 202
    idle = await _publisher_backends(engine, state="idle")
    assert idle
    await _terminate(engine, idle)
    for _ in range(100):  # the sessions end a moment after they are told to
        if not await _publisher_backends(engine, state="idle"):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)  # and the driver notices the closed socket
    response = await _publish(client, auth)
    assert response.status_code == 202, response.text
    assert response.json()["deliveries"] == 1


def _cut_off_the_next_batch(dsn: str, locked: threading.Event, errors: list[BaseException]) -> None:
    """In a thread of its own (the test client blocks the test's event loop while a request
    runs): hold a lock the batch statement needs, end its session once it waits, let go."""

    async def run() -> None:
        blocker = await asyncpg.connect(dsn)
        try:
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
                locked.set()
                for _ in range(200):
                    waiting = await blocker.fetch(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock' AND query LIKE '%WITH written AS%' "
                        "AND pid <> pg_backend_pid()"
                    )
                    if waiting:
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError("the publish never reached the database")
                for row in waiting:
                    await blocker.execute("SELECT pg_terminate_backend($1)", row["pid"])
        finally:
            await blocker.close()

    try:
        asyncio.run(run())
    except BaseException as exc:
        errors.append(exc)
    finally:
        locked.set()


async def test_a_publish_whose_connection_is_lost_mid_statement_is_503_and_the_next_is_served(
    client: Client, auth: dict[str, str], engine: AsyncEngine
) -> None:
    assert (await _publish(client, auth)).status_code == 202
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    locked = threading.Event()
    errors: list[BaseException] = []
    cutter = threading.Thread(target=_cut_off_the_next_batch, args=(dsn, locked, errors))
    cutter.start()
    try:
        assert await asyncio.to_thread(locked.wait, 10)
        response = await _publish(client, auth)
    finally:
        await asyncio.to_thread(cutter.join, 30)
    assert not errors, errors
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "unavailable" in response.json()["detail"]
    served = await _publish(client, auth)
    assert served.status_code == 202, served.text
    async with engine.connect() as conn:
        count = sa.select(sa.func.count()).select_from(events)
        assert (await conn.execute(count)).scalar_one() == 2
