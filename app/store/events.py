"""Event rows and their outbox: one transaction writes the event and its delivery rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.ids import new_id
from app.store.bulk import insert_rows
from app.store.tables import (
    deliveries,
    events,
    subscription_patterns,
    subscriptions,
    unfinished_deliveries,
)
from app.store.unfinished import unfinished_row
from contracts.event_types import patterns_matching


@dataclass(frozen=True)
class NewEvent:
    id: str
    tenant_id: str
    type: str
    source_id: str | None
    provider: str | None
    occurred_at: datetime
    received_at: datetime
    payload: str
    dedupe_key: str | None = None
    aggregate_key: str | None = None
    sequence: int | None = None


@dataclass(frozen=True)
class StoredEvent:
    id: str
    type: str
    source_id: str | None
    received_at: datetime
    payload: str


# Built once: publishing runs it for every batch, and building the statement each time was a
# measurable share of a publish. `patterns` expands to the type's matching patterns.
_MATCHING = (
    sa.select(subscriptions.c.id, subscriptions.c.source_ids)
    .join(subscription_patterns, subscription_patterns.c.subscription_id == subscriptions.c.id)
    .where(
        subscription_patterns.c.tenant_id == sa.bindparam("tenant_id"),
        subscription_patterns.c.pattern.in_(sa.bindparam("patterns", expanding=True)),
        subscriptions.c.status == "enabled",
    )
    .distinct()
)


async def matching_subscription_ids(
    conn: AsyncConnection, tenant_id: str, event_type: str, source_id: str | None
) -> list[str]:
    """Enabled subscriptions whose patterns select this type (and source, if they filter)."""
    rows = await conn.execute(
        _MATCHING, {"tenant_id": tenant_id, "patterns": patterns_matching(event_type)}
    )
    return sorted(
        row.id
        for row in rows
        if not row.source_ids or (source_id is not None and source_id in row.source_ids)
    )


async def enabled_subscription_ids(
    conn: AsyncConnection, tenant_id: str, subscription_ids: list[str]
) -> list[str]:
    query = sa.select(subscriptions.c.id).where(
        subscriptions.c.tenant_id == tenant_id,
        subscriptions.c.id.in_(subscription_ids),
        subscriptions.c.status == "enabled",
    )
    return sorted((await conn.execute(query)).scalars())


async def insert_event_with_deliveries(
    conn: AsyncConnection, event: NewEvent, subscription_ids: list[str]
) -> list[str]:
    """The outbox write: call inside the caller's transaction; returns the delivery ids."""
    return (await insert_events_with_deliveries(conn, [(event, subscription_ids)]))[0]


def _event_row(event: NewEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "tenant_id": event.tenant_id,
        "type": event.type,
        "source_id": event.source_id,
        "provider": event.provider,
        "occurred_at": event.occurred_at,
        "received_at": event.received_at,
        "dedupe_key": event.dedupe_key,
        "aggregate_key": event.aggregate_key,
        "sequence": event.sequence,
        "payload": event.payload,
    }


async def insert_events_with_deliveries(
    conn: AsyncConnection, batch: list[tuple[NewEvent, list[str]]]
) -> list[list[str]]:
    """The outbox write for several events: three statements, however many events and targets.

    Call inside the caller's transaction; returns each event's delivery ids, in target order.
    """
    await insert_rows(conn, events, [_event_row(event) for event, _ in batch])
    delivery_ids: list[list[str]] = []
    rows: list[dict[str, Any]] = []
    for event, subscription_ids in batch:
        ids = [new_id("dlv") for _ in subscription_ids]
        delivery_ids.append(ids)
        rows.extend(
            _delivery_row(
                event.tenant_id, event.id, delivery_id, subscription_id, event.received_at
            )
            for delivery_id, subscription_id in zip(ids, subscription_ids, strict=True)
        )
    await _insert_delivery_rows(conn, rows)
    return delivery_ids


async def _insert_delivery_rows(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """New pending deliveries, each with its unfinished_deliveries row."""
    await insert_rows(conn, deliveries, rows)
    await insert_rows(conn, unfinished_deliveries, [unfinished_row(row) for row in rows])


def _delivery_row(
    tenant_id: str, event_id: str, delivery_id: str, subscription_id: str, now: datetime
) -> dict[str, Any]:
    return {
        "id": delivery_id,
        "tenant_id": tenant_id,
        "event_id": event_id,
        "subscription_id": subscription_id,
        "status": "pending",
        "attempt_count": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


async def insert_deliveries(
    conn: AsyncConnection,
    tenant_id: str,
    event_id: str,
    subscription_ids: list[str],
    now: datetime,
) -> list[str]:
    """One pending delivery per subscription, due now; returns their ids in the same order."""
    delivery_ids = [new_id("dlv") for _ in subscription_ids]
    if delivery_ids:
        rows = [
            _delivery_row(tenant_id, event_id, delivery_id, subscription_id, now)
            for delivery_id, subscription_id in zip(delivery_ids, subscription_ids, strict=True)
        ]
        await _insert_delivery_rows(conn, rows)
    return delivery_ids


_EVENT_COLUMNS = (
    events.c.id,
    events.c.type,
    events.c.source_id,
    events.c.received_at,
    events.c.payload,
)


def _stored(row: sa.Row[*tuple[Any, ...]]) -> StoredEvent:
    return StoredEvent(
        id=row.id,
        type=row.type,
        source_id=row.source_id,
        received_at=row.received_at,
        payload=row.payload,
    )


async def get_event(conn: AsyncConnection, tenant_id: str, event_id: str) -> StoredEvent | None:
    query = sa.select(*_EVENT_COLUMNS).where(
        events.c.tenant_id == tenant_id, events.c.id == event_id
    )
    row = (await conn.execute(query)).first()
    return _stored(row) if row else None


async def list_events(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    limit: int,
    before_id: str | None,
    event_type: str | None = None,
    source_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[StoredEvent]:
    """Newest first. Ids sort by creation time, so time bounds narrow by id as well."""
    query = (
        sa.select(*_EVENT_COLUMNS)
        .where(events.c.tenant_id == tenant_id)
        .order_by(events.c.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(events.c.id < before_id)
    if event_type is not None:
        query = query.where(events.c.type == event_type)
    if source_id is not None:
        query = query.where(events.c.source_id == source_id)
    if since is not None:
        query = query.where(events.c.received_at >= since)
    if until is not None:
        query = query.where(events.c.received_at < until)
    return [_stored(r) for r in await conn.execute(query)]


async def count_deliveries(conn: AsyncConnection, event_id: str) -> int:
    query = sa.select(sa.func.count()).where(deliveries.c.event_id == event_id)
    return int((await conn.execute(query)).scalar_one())


async def find_event_by_dedupe_key(
    conn: AsyncConnection, source_id: str, dedupe_key: str
) -> str | None:
    """The event this source already filed under `dedupe_key`, if any (keys are per source)."""
    query = sa.select(events.c.id).where(
        events.c.source_id == source_id, events.c.dedupe_key == dedupe_key
    )
    return (await conn.execute(query)).scalar_one_or_none()
