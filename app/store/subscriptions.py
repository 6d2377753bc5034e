"""Subscription rows: the partner's webhook endpoints, their signing secrets and state."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.clock import utcnow
from app.ids import new_id
from app.store.audit import record_audit
from app.store.tables import (
    deliveries,
    sources,
    subscription_patterns,
    subscriptions,
    unfinished_deliveries,
)
from contracts.api import Subscription, SubscriptionCreate

_PUBLIC_COLUMNS = (
    subscriptions.c.id,
    subscriptions.c.url,
    subscriptions.c.description,
    subscriptions.c.event_types,
    subscriptions.c.source_ids,
    subscriptions.c.headers,
    subscriptions.c.rate_limit_per_s,
    subscriptions.c.max_in_flight,
    subscriptions.c.timeout_s,
    subscriptions.c.status,
    subscriptions.c.disabled_reason,
    subscriptions.c.created_at,
    subscriptions.c.updated_at,
)


def _subscription(row: sa.Row[*tuple[Any, ...]]) -> Subscription:
    return Subscription(
        id=row.id,
        url=row.url,
        description=row.description,
        event_types=list(row.event_types),
        source_ids=list(row.source_ids) if row.source_ids is not None else None,
        headers=dict(row.headers),
        rate_limit_per_s=row.rate_limit_per_s,
        max_in_flight=row.max_in_flight,
        timeout_s=row.timeout_s,
        status=row.status,
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _visible(tenant_id: str, subscription_id: str) -> sa.ColumnElement[bool]:
    """Deleted rows stay for the delivery log but are gone for the API."""
    return sa.and_(
        subscriptions.c.tenant_id == tenant_id,
        subscriptions.c.id == subscription_id,
        subscriptions.c.status != "deleted",
    )


async def _replace_patterns(
    conn: AsyncConnection, tenant_id: str, subscription_id: str, patterns: list[str] | None
) -> None:
    await conn.execute(
        subscription_patterns.delete().where(
            subscription_patterns.c.subscription_id == subscription_id
        )
    )
    if patterns:
        await conn.execute(
            subscription_patterns.insert(),
            [
                {"subscription_id": subscription_id, "pattern": p, "tenant_id": tenant_id}
                for p in patterns
            ],
        )


async def insert_subscription(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    body: SubscriptionCreate,
    sealed_secret: str,
    actor: str,
) -> Subscription:
    now = utcnow()
    subscription_id = new_id("sub")
    await conn.execute(
        subscriptions.insert().values(
            id=subscription_id,
            tenant_id=tenant_id,
            url=body.url,
            description=body.description,
            event_types=body.event_types,
            source_ids=body.source_ids,
            headers=body.headers,
            rate_limit_per_s=body.rate_limit_per_s,
            max_in_flight=body.max_in_flight,
            timeout_s=body.timeout_s,
            status="enabled",
            secret=sealed_secret,
            consecutive_failures=0,
            created_at=now,
            updated_at=now,
        )
    )
    await _replace_patterns(conn, tenant_id, subscription_id, body.event_types)
    await record_audit(
        conn,
        tenant_id=tenant_id,
        actor=actor,
        action="subscription.created",
        target=subscription_id,
        details={"url": body.url, "event_types": body.event_types},
    )
    created = await get_subscription(conn, tenant_id, subscription_id)
    assert created is not None
    return created


async def get_subscription(
    conn: AsyncConnection, tenant_id: str, subscription_id: str
) -> Subscription | None:
    query = sa.select(*_PUBLIC_COLUMNS).where(_visible(tenant_id, subscription_id))
    row = (await conn.execute(query)).first()
    return _subscription(row) if row else None


async def list_subscriptions(
    conn: AsyncConnection, tenant_id: str, *, limit: int, before_id: str | None
) -> list[Subscription]:
    """Newest first; `before_id` is the last id of the previous page."""
    query = (
        sa.select(*_PUBLIC_COLUMNS)
        .where(subscriptions.c.tenant_id == tenant_id, subscriptions.c.status != "deleted")
        .order_by(subscriptions.c.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(subscriptions.c.id < before_id)
    return [_subscription(r) for r in await conn.execute(query)]


async def unknown_source_ids(
    conn: AsyncConnection, tenant_id: str, source_ids: list[str]
) -> list[str]:
    if not source_ids:
        return []
    query = sa.select(sources.c.id).where(
        sources.c.tenant_id == tenant_id,
        sources.c.id.in_(source_ids),
        sources.c.deleted_at.is_(None),
    )
    known = set((await conn.execute(query)).scalars())
    return [s for s in source_ids if s not in known]


async def update_subscription(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    subscription_id: str,
    changes: dict[str, Any],
    actor: str,
) -> Subscription | None:
    if changes:
        result = await conn.execute(
            subscriptions.update()
            .where(_visible(tenant_id, subscription_id))
            .values(**changes, updated_at=utcnow())
        )
        if result.rowcount == 0:
            return None
        if "event_types" in changes:
            await _replace_patterns(conn, tenant_id, subscription_id, changes["event_types"])
        await record_audit(
            conn,
            tenant_id=tenant_id,
            actor=actor,
            action="subscription.updated",
            target=subscription_id,
            details={"fields": sorted(changes)},
        )
    return await get_subscription(conn, tenant_id, subscription_id)


async def cancel_pending_deliveries(conn: AsyncConnection, subscription_id: str) -> int:
    """A deleted or paused endpoint gets nothing more; its queued work is marked cancelled."""
    now = utcnow()
    pending = sa.select(unfinished_deliveries.c.delivery_id).where(
        unfinished_deliveries.c.subscription_id == subscription_id,
        unfinished_deliveries.c.status == "pending",
    )
    result = await conn.execute(
        deliveries.update()
        .where(deliveries.c.id.in_(pending), deliveries.c.status == "pending")
        .values(status="cancelled", next_attempt_at=None, updated_at=now)
    )
    await conn.execute(
        unfinished_deliveries.update()
        .where(
            unfinished_deliveries.c.subscription_id == subscription_id,
            unfinished_deliveries.c.status == "pending",
        )
        .values(status="cancelled", next_attempt_at=None)
    )
    return result.rowcount


async def delete_subscription(
    conn: AsyncConnection, *, tenant_id: str, subscription_id: str, actor: str
) -> bool:
    now = utcnow()
    result = await conn.execute(
        subscriptions.update()
        .where(_visible(tenant_id, subscription_id))
        .values(
            status="deleted",
            deleted_at=now,
            updated_at=now,
            previous_secret=None,
            previous_secret_expires_at=None,
        )
    )
    if result.rowcount == 0:
        return False
    await _replace_patterns(conn, tenant_id, subscription_id, None)
    cancelled = await cancel_pending_deliveries(conn, subscription_id)
    await record_audit(
        conn,
        tenant_id=tenant_id,
        actor=actor,
        action="subscription.deleted",
        target=subscription_id,
        details={"cancelled_deliveries": cancelled},
    )
    return True


async def rotate_secret(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    subscription_id: str,
    sealed_new_secret: str,
    grace_period_s: int,
    actor: str,
) -> datetime | None:
    """Current secret becomes the previous one until the grace period ends; returns that end."""
    row = (
        await conn.execute(
            sa.select(subscriptions.c.secret).where(_visible(tenant_id, subscription_id))
        )
    ).first()
    if row is None:
        return None
    now = utcnow()
    expires_at = now + timedelta(seconds=grace_period_s)
    await conn.execute(
        subscriptions.update()
        .where(subscriptions.c.id == subscription_id)
        .values(
            secret=sealed_new_secret,
            previous_secret=row.secret if grace_period_s > 0 else None,
            previous_secret_expires_at=expires_at if grace_period_s > 0 else None,
            updated_at=now,
        )
    )
    await record_audit(
        conn,
        tenant_id=tenant_id,
        actor=actor,
        action="subscription.secret_rotated",
        target=subscription_id,
        details={"grace_period_s": grace_period_s},
    )
    return expires_at


async def set_subscription_enabled(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    subscription_id: str,
    enabled: bool,
    actor: str,
) -> Subscription | None:
    now = utcnow()
    values: dict[str, Any] = (
        {
            "status": "enabled",
            "disabled_reason": None,
            "disabled_at": None,
            "failing_since": None,
            "consecutive_failures": 0,
        }
        if enabled
        else {"status": "disabled", "disabled_reason": "partner", "disabled_at": now}
    )
    result = await conn.execute(
        subscriptions.update()
        .where(_visible(tenant_id, subscription_id))
        .values(**values, updated_at=now)
    )
    if result.rowcount == 0:
        return None
    details: dict[str, Any] = {}
    if not enabled:
        details["cancelled_deliveries"] = await cancel_pending_deliveries(conn, subscription_id)
    await record_audit(
        conn,
        tenant_id=tenant_id,
        actor=actor,
        action="subscription.enabled" if enabled else "subscription.disabled",
        target=subscription_id,
        details=details or None,
    )
    return await get_subscription(conn, tenant_id, subscription_id)
