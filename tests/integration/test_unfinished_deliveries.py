"""unfinished_deliveries on both backends: kept in step with deliveries, purged with them, and
the reason it exists (no index of deliveries names what an attempt changes)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.clock import utcnow
from app.ids import new_id
from app.security.secret_box import SecretBox, new_webhook_secret
from app.store.events import NewEvent, insert_events_with_deliveries
from app.store.subscriptions import insert_subscription
from app.store.tables import deliveries, unfinished_deliveries
from app.store.tenants import create_tenant
from app.store.unfinished import sync_unfinished
from contracts.api import SubscriptionCreate
from tests.unfinished_check import unfinished_out_of_step
from workers.retention import purge_expired

# What recording an attempt (lease, outcome) writes on a delivery's row.
CHANGED_BY_AN_ATTEMPT = {
    "status",
    "attempt_count",
    "next_attempt_at",
    "last_attempt_at",
    "last_status_code",
    "lease_until",
    "updated_at",
}


async def _published(engine: AsyncEngine, count: int, *, days_ago: int = 0) -> list[str]:
    received = utcnow() - timedelta(days=days_ago)
    async with engine.begin() as conn:
        tenant = await create_tenant(conn, "Warung Antrian", actor="test")
        subscription = await insert_subscription(
            conn,
            tenant_id=tenant.id,
            body=SubscriptionCreate(url="https://partner.example/hook", event_types=["*"]),
            sealed_secret=SecretBox(()).seal(new_webhook_secret()),
            actor="test",
        )
        batch = [
            (
                NewEvent(
                    id=new_id("evt"),
                    tenant_id=tenant.id,
                    type="ping",
                    source_id=None,
                    provider=None,
                    occurred_at=received,
                    received_at=received,
                    payload="{}",
                ),
                [subscription.id],
            )
            for _ in range(count)
        ]
        ids = await insert_events_with_deliveries(conn, batch)
    return [delivery_id for [delivery_id] in ids]


async def _unfinished(engine: AsyncEngine) -> dict[str, tuple[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(unfinished_deliveries))
        return {r.delivery_id: (r.status, r.next_attempt_at) for r in rows}


async def test_a_published_delivery_is_unfinished_and_pending_until_due(
    engine: AsyncEngine,
) -> None:
    [delivery_id] = await _published(engine, 1)
    async with engine.connect() as conn:
        due = (
            await conn.execute(
                sa.select(deliveries.c.next_attempt_at).where(deliveries.c.id == delivery_id)
            )
        ).scalar_one()
    assert await _unfinished(engine) == {delivery_id: ("pending", due)}


async def test_sync_makes_each_row_follow_its_delivery(engine: AsyncEngine) -> None:
    succeeded, failed, retrying, lost = await _published(engine, 4)
    later = utcnow() + timedelta(hours=1)
    async with engine.begin() as conn:
        changes: list[tuple[str, dict[str, Any]]] = [
            (succeeded, {"status": "succeeded", "next_attempt_at": None}),
            (failed, {"status": "failed", "next_attempt_at": None}),
            (retrying, {"next_attempt_at": later}),
        ]
        for delivery_id, values in changes:
            await conn.execute(
                deliveries.update().where(deliveries.c.id == delivery_id).values(**values)
            )
        # A row that went missing (written by an older version, say) comes back.
        await conn.execute(
            unfinished_deliveries.delete().where(unfinished_deliveries.c.delivery_id == lost)
        )
        assert len(await unfinished_out_of_step(conn)) == 4
        await sync_unfinished(conn, [succeeded, failed, retrying, lost, "dlv_not_there"])
        assert await unfinished_out_of_step(conn) == []
    rows = await _unfinished(engine)
    assert set(rows) == {failed, retrying, lost}
    assert rows[failed] == ("failed", None)
    assert rows[retrying] == ("pending", later)
    assert rows[lost][0] == "pending"


async def test_retention_purges_unfinished_rows_with_their_deliveries(
    engine: AsyncEngine,
) -> None:
    expired = await _published(engine, 3, days_ago=10)
    kept = await _published(engine, 1)
    async with engine.begin() as conn:
        await conn.execute(
            deliveries.update().where(deliveries.c.id == expired[0]).values(status="failed")
        )
        await sync_unfinished(conn, expired)
    assert await purge_expired(engine, retention_days=7) == 3
    assert set(await _unfinished(engine)) == set(kept)


async def test_no_index_of_deliveries_names_a_column_an_attempt_changes(
    engine: AsyncEngine,
) -> None:
    """Then PostgreSQL can write the lease and the outcome as heap-only row versions (no
    index entries): a status index belongs on unfinished_deliveries."""
    async with engine.connect() as conn:
        indexes = await conn.run_sync(lambda sync: sa.inspect(sync).get_indexes("deliveries"))
    assert indexes
    for index in indexes:
        assert not CHANGED_BY_AN_ATTEMPT & set(index["column_names"]), index
        condition = " ".join(str(v) for v in index.get("dialect_options", {}).values())
        assert not any(column in condition for column in CHANGED_BY_AN_ATTEMPT), index
