"""The delivery log: deliveries with their attempts, filtered and paged on indexed columns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.ids import id_floor
from app.store.tables import attempts, deliveries, events
from app.store.unfinished import walk_unfinished
from contracts.api import Attempt, Delivery, DeliveryDetail

_COLUMNS = (
    deliveries.c.id,
    deliveries.c.event_id,
    events.c.type.label("event_type"),
    deliveries.c.subscription_id,
    deliveries.c.status,
    deliveries.c.attempt_count,
    deliveries.c.next_attempt_at,
    deliveries.c.last_attempt_at,
    deliveries.c.last_status_code,
    deliveries.c.replay_id,
    deliveries.c.created_at,
    deliveries.c.updated_at,
)


def _delivery(row: Any) -> Delivery:
    return Delivery(**{c.name: getattr(row, c.name) for c in _COLUMNS})


def list_deliveries_query(
    tenant_id: str,
    *,
    limit: int,
    before_id: str | None = None,
    subscription_id: str | None = None,
    event_id: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> sa.Select[Any]:
    """Newest first. Ids start with their creation time, so time bounds are id ranges and
    every filter combination walks one of the (…, id) indexes instead of sorting."""
    query: sa.Select[Any] = sa.select(*_COLUMNS).join(events, events.c.id == deliveries.c.event_id)
    key: sa.ColumnElement[str] = deliveries.c.id
    if status is not None and status != "succeeded":
        query, key = walk_unfinished(
            query, [status], tenant_id=tenant_id, subscription_id=subscription_id
        )
    else:
        # Succeeded ones, nearly every row, are found walking (…, id).
        query = query.where(deliveries.c.tenant_id == tenant_id)
        if status is not None:
            query = query.where(deliveries.c.status == status)
        if subscription_id is not None:
            query = query.where(deliveries.c.subscription_id == subscription_id)
    if before_id is not None:
        query = query.where(key < before_id)
    if event_id is not None:
        query = query.where(deliveries.c.event_id == event_id)
    if since is not None:
        query = query.where(key >= id_floor("dlv", since))
    if until is not None:
        query = query.where(key < id_floor("dlv", until))
    return query.order_by(key.desc()).limit(limit)


async def list_deliveries(
    conn: AsyncConnection, tenant_id: str, *, limit: int, **filters: Any
) -> list[Delivery]:
    query = list_deliveries_query(tenant_id, limit=limit, **filters)
    return [_delivery(r) for r in await conn.execute(query)]


def attempts_query(delivery_id: str) -> sa.Select[Any]:
    return (
        sa.select(
            attempts.c.attempt,
            attempts.c.started_at,
            attempts.c.duration_ms,
            attempts.c.status_code,
            attempts.c.error,
            attempts.c.response_body,
        )
        .where(attempts.c.delivery_id == delivery_id)
        .order_by(attempts.c.attempt)
    )


async def get_delivery(
    conn: AsyncConnection, tenant_id: str, delivery_id: str
) -> DeliveryDetail | None:
    query = (
        sa.select(*_COLUMNS)
        .join(events, events.c.id == deliveries.c.event_id)
        .where(deliveries.c.tenant_id == tenant_id, deliveries.c.id == delivery_id)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    attempt_rows = await conn.execute(attempts_query(delivery_id))
    return DeliveryDetail(
        **{c.name: getattr(row, c.name) for c in _COLUMNS},
        attempts=[Attempt(**r._asdict()) for r in attempt_rows],
    )
