"""Retention: delete events and attempts older than GATEWAY_RETENTION_DAYS, in small batches."""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.clock import utcnow
from app.store.idempotency import purge_expired_keys
from app.store.tables import attempts, deliveries, events, unfinished_deliveries

logger = logging.getLogger(__name__)
BATCH_SIZE = 500


async def purge_expired(engine: AsyncEngine, retention_days: int, *, max_batches: int = 20) -> int:
    """Remove whole expired events (attempts, then deliveries, then the event) batch by batch.

    Small batches keep each transaction short so the API and workers never wait on a long
    lock; the cron runs often, so a backlog drains over a few runs.
    """
    cutoff = utcnow() - timedelta(days=retention_days)
    purged = 0
    for _ in range(max_batches):
        async with engine.begin() as conn:
            ids = list(
                (
                    await conn.execute(
                        sa.select(events.c.id)
                        .where(events.c.received_at < cutoff)
                        .order_by(events.c.received_at)
                        .limit(BATCH_SIZE)
                    )
                ).scalars()
            )
            if not ids:
                break
            delivery_ids = sa.select(deliveries.c.id).where(deliveries.c.event_id.in_(ids))
            await conn.execute(attempts.delete().where(attempts.c.delivery_id.in_(delivery_ids)))
            await conn.execute(
                unfinished_deliveries.delete().where(
                    unfinished_deliveries.c.delivery_id.in_(delivery_ids)
                )
            )
            await conn.execute(deliveries.delete().where(deliveries.c.event_id.in_(ids)))
            await conn.execute(events.delete().where(events.c.id.in_(ids)))
            purged += len(ids)
    async with engine.begin() as conn:
        keys = await purge_expired_keys(conn, utcnow())
    if purged or keys:
        logger.info("purged expired rows", extra={"events": purged, "idempotency_keys": keys})
    return purged
