"""The sweeper: due deliveries that have no live job get one; queue depth and lag gauges."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.delivery.jobs import enqueue_attempt
from app.delivery.replay import RECOVER_JOB, RECOVER_STALLED_AFTER_S, stalled_replays
from app.metrics import OLDEST_DUE_LAG, QUEUE_DEPTH, SWEEPER_ENQUEUED
from app.store.tables import deliveries, pending_only, unfinished_deliveries
from workers.queue import QUEUE_NAME

logger = logging.getLogger(__name__)

# Due this long without being claimed means its job is gone (Redis restarted or emptied,
# a process died between commit and enqueue). Below it, the normal path is still running.
OVERDUE_AFTER = timedelta(seconds=10)
BATCH_SIZE = 1000


def overdue_query(now: datetime) -> sa.Select[tuple[str, int]]:
    """Overdue, unleased deliveries, oldest first (through the pending deliveries' index)."""
    due = unfinished_deliveries.c.next_attempt_at
    return (
        sa.select(deliveries.c.id, deliveries.c.attempt_count)
        .select_from(unfinished_deliveries)
        .join(deliveries, deliveries.c.id == unfinished_deliveries.c.delivery_id)
        .where(
            pending_only(),
            due <= now - OVERDUE_AFTER,
            deliveries.c.status == "pending",  # the delivery's own row has the last word
            sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now),
        )
        .order_by(due)
        .limit(BATCH_SIZE)
    )


def oldest_due_query(now: datetime) -> sa.Select[Any]:
    """When the longest-waiting due delivery became due."""
    due = unfinished_deliveries.c.next_attempt_at
    return sa.select(sa.func.min(due)).where(pending_only(), due <= now)


async def sweep_overdue(engine: AsyncEngine, queue: ArqRedis, now: datetime) -> int:
    """Enqueue the next attempt of overdue, unleased deliveries (job ids dedupe repeats)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(overdue_query(now))).all()
        oldest = (await conn.execute(oldest_due_query(now))).scalar_one_or_none()
        stalled = await stalled_replays(conn, now - timedelta(seconds=RECOVER_STALLED_AFTER_S))
    for row in rows:
        await enqueue_attempt(queue, row.id, row.attempt_count + 1)
    for replay_id in stalled:
        # Its worker died mid-slice: resume from the saved cursor (ids dedupe per window).
        window = int(now.timestamp() // RECOVER_STALLED_AFTER_S)
        await queue.enqueue_job(RECOVER_JOB, replay_id, _job_id=f"{replay_id}:s{window}")
    if rows:
        SWEEPER_ENQUEUED.inc(len(rows))
        logger.info("sweeper enqueued overdue deliveries", extra={"count": len(rows)})
    OLDEST_DUE_LAG.set(max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)
    QUEUE_DEPTH.set(await queue.zcard(QUEUE_NAME))
    return len(rows)
