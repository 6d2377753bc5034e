"""Recovery after a bad night: retry one delivery, replay one event, recover a subscription.

Shared by the partner API and the operator CLI; every replay leaves an audit row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.clock import utcnow
from app.delivery.fanout import Published
from app.delivery.jobs import enqueue_after_commit, enqueue_attempt
from app.ids import id_floor, new_id
from app.store.audit import record_audit
from app.store.events import (
    enabled_subscription_ids,
    insert_deliveries,
    matching_subscription_ids,
)
from app.store.tables import deliveries, events, replays, subscriptions
from app.store.unfinished import sync_unfinished, walk_unfinished
from contracts.api import ReplayProgress

logger = logging.getLogger(__name__)

RECOVER_JOB = "run_recover"
RECOVER_BATCH = 100
RECOVER_SLICE_S = 20.0
# A running replay whose row has not moved for this long lost its worker.
RECOVER_STALLED_AFTER_S = 15.0


class ReplayRefused(Exception):
    """The request is understood but cannot be carried out now (HTTP 409)."""


class ReplayNotFound(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(f"{kind} not found")
        self.kind = kind


@dataclass(frozen=True)
class Retried:
    delivery_id: str
    attempt: int


async def _subscription_status(
    conn: AsyncConnection, tenant_id: str, subscription_id: str
) -> str | None:
    query = sa.select(subscriptions.c.status).where(
        subscriptions.c.tenant_id == tenant_id, subscriptions.c.id == subscription_id
    )
    return (await conn.execute(query)).scalar_one_or_none()


async def retry_delivery(
    engine: AsyncEngine, queue: ArqRedis, *, tenant_id: str, delivery_id: str, actor: str
) -> Retried:
    """One new attempt now, whatever the status; it counts in the same delivery's attempts."""
    now = utcnow()
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                sa.select(
                    deliveries.c.subscription_id,
                    deliveries.c.attempt_count,
                    deliveries.c.lease_until,
                ).where(deliveries.c.tenant_id == tenant_id, deliveries.c.id == delivery_id)
            )
        ).first()
        if row is None:
            raise ReplayNotFound("delivery")
        if await _subscription_status(conn, tenant_id, row.subscription_id) != "enabled":
            raise ReplayRefused("the delivery's subscription is disabled or deleted")
        if row.lease_until is not None and row.lease_until > now:
            raise ReplayRefused("an attempt of this delivery is in progress; try again shortly")
        await conn.execute(
            deliveries.update()
            .where(deliveries.c.id == delivery_id)
            .values(status="pending", next_attempt_at=now, lease_until=None, updated_at=now)
        )
        await sync_unfinished(conn, [delivery_id])
        attempt = row.attempt_count + 1
        await record_audit(
            conn,
            tenant_id=tenant_id,
            actor=actor,
            action="delivery.retried",
            target=delivery_id,
            details={"attempt": attempt},
        )
    # A distinct job id: an earlier job for this attempt number may still sit in the queue.
    await enqueue_after_commit(
        enqueue_attempt(
            queue, delivery_id, attempt, job_id=f"{delivery_id}:{attempt}:r{time.time_ns()}"
        ),
        what="retry",
    )
    return Retried(delivery_id=delivery_id, attempt=attempt)


async def replay_event(
    engine: AsyncEngine,
    queue: ArqRedis,
    *,
    tenant_id: str,
    event_id: str,
    subscription_ids: Sequence[str] | None,
    actor: str,
) -> Published:
    """New deliveries of a stored event: to the named subscriptions, or all matching now."""
    now = utcnow()
    replay_tag = f"replay{time.time_ns()}"
    async with engine.begin() as conn:
        event = (
            await conn.execute(
                sa.select(
                    events.c.type, events.c.source_id, events.c.provider, events.c.payload
                ).where(events.c.tenant_id == tenant_id, events.c.id == event_id)
            )
        ).first()
        if event is None:
            raise ReplayNotFound("event")
        if subscription_ids is None:
            targets = await matching_subscription_ids(conn, tenant_id, event.type, event.source_id)
        else:
            wanted = list(dict.fromkeys(subscription_ids))
            targets = await enabled_subscription_ids(conn, tenant_id, wanted)
            missing = sorted(set(wanted) - set(targets))
            if missing:
                raise ReplayRefused(
                    f"not enabled subscriptions of this tenant: {', '.join(missing)}"
                )
        delivery_ids = await insert_deliveries(conn, tenant_id, event_id, targets, now)
        await record_audit(
            conn,
            tenant_id=tenant_id,
            actor=actor,
            action="event.replayed",
            target=event_id,
            details={"subscription_ids": targets, "deliveries": delivery_ids},
        )
    published = Published(
        event_id=event_id,
        event_type=event.type,
        provider=event.provider,
        delivery_ids=delivery_ids,
        payload=event.payload,
    )
    # Fresh job ids: the event's original fan-out jobs may still be queued under theirs.
    await enqueue_after_commit(_enqueue_replayed(queue, delivery_ids, replay_tag), what="replay")
    return published


async def _enqueue_replayed(queue: ArqRedis, delivery_ids: Sequence[str], replay_tag: str) -> None:
    for delivery_id in delivery_ids:
        await enqueue_attempt(queue, delivery_id, 1, job_id=f"{delivery_id}:1:{replay_tag}")


async def start_recover(
    engine: AsyncEngine,
    queue: ArqRedis,
    *,
    tenant_id: str,
    subscription_id: str,
    since: datetime,
    until: datetime | None,
    statuses: Sequence[str],
    actor: str,
    conn: AsyncConnection | None = None,
) -> str:
    """Record the replay and queue its background job; returns the replay id."""
    replay_id = new_id("rpl")
    now = utcnow()

    async def write(c: AsyncConnection) -> None:
        status = await _subscription_status(c, tenant_id, subscription_id)
        if status is None or status == "deleted":
            raise ReplayNotFound("subscription")
        if status != "enabled":
            raise ReplayRefused("subscription is disabled; enable it first")
        total = await _count_matching(c, subscription_id, since, until, statuses)
        await c.execute(
            replays.insert().values(
                id=replay_id,
                tenant_id=tenant_id,
                subscription_id=subscription_id,
                actor=actor,
                status="running",
                since=since,
                until=until,
                delivery_status=",".join(statuses),
                total=total,
                enqueued=0,
                succeeded=0,
                failed=0,
                cursor=None,
                created_at=now,
                updated_at=now,
            )
        )
        await record_audit(
            c,
            tenant_id=tenant_id,
            actor=actor,
            action="subscription.recover_started",
            target=subscription_id,
            details={
                "replay_id": replay_id,
                "since": since.isoformat(),
                "until": until.isoformat() if until else None,
                "statuses": list(statuses),
                "total": total,
            },
        )

    if conn is not None:
        await write(conn)
    else:
        async with engine.begin() as own:
            await write(own)
    return replay_id


async def enqueue_recover(queue: ArqRedis, replay_id: str) -> None:
    """After start_recover's commit; without Redis the sweeper resumes it as a stalled one."""
    await enqueue_after_commit(_enqueue_recover_job(queue, replay_id), what="recover")


async def _enqueue_recover_job(queue: ArqRedis, replay_id: str) -> None:
    await queue.enqueue_job(RECOVER_JOB, replay_id, _job_id=f"{replay_id}:run")


def _matching(
    query: sa.Select[Any],
    subscription_id: str,
    since: datetime,
    until: datetime | None,
    statuses: Sequence[str],
) -> tuple[sa.Select[Any], sa.ColumnElement[str]]:
    """The query narrowed to the replay's deliveries, and the id column to order and page by.

    Without `succeeded` among the statuses, only the subscription's unfinished deliveries
    are walked (walk_unfinished).
    """
    if "succeeded" in statuses:
        key: sa.ColumnElement[str] = deliveries.c.id
        query = query.where(
            deliveries.c.subscription_id == subscription_id,
            deliveries.c.status.in_(list(statuses)),
        )
    else:
        query, key = walk_unfinished(query, statuses, subscription_id=subscription_id)
    query = query.where(key >= id_floor("dlv", since))
    if until is not None:
        query = query.where(key < id_floor("dlv", until))
    return query, key


async def _count_matching(
    conn: AsyncConnection,
    subscription_id: str,
    since: datetime,
    until: datetime | None,
    statuses: Sequence[str],
) -> int:
    query, _ = _matching(
        sa.select(sa.func.count()).select_from(deliveries), subscription_id, since, until, statuses
    )
    return int((await conn.execute(query)).scalar_one())


async def run_recover(
    engine: AsyncEngine, queue: ArqRedis, replay_id: str, *, budget_s: float = RECOVER_SLICE_S
) -> int:
    """Re-attempt the replay's deliveries in id order, batch by batch, from its saved cursor.

    Each batch moves the cursor in the same transaction that marks its deliveries, guarded
    by the cursor it started from, so two runners can never take the same batch. A job works
    for at most `budget_s`, then queues its continuation: a worker that dies loses at most
    one slice, which the next job (or the sweeper, for a stalled replay) resumes.
    Pacing follows the subscription's rate limit; the attempts themselves are also held to
    it (and to max_in_flight) by the limiter.
    """
    enqueued_now = 0
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        now = utcnow()
        async with engine.begin() as conn:
            replay = (
                await conn.execute(sa.select(replays).where(replays.c.id == replay_id))
            ).first()
            if replay is None or replay.status != "running":
                return enqueued_now
            rate = (
                await conn.execute(
                    sa.select(subscriptions.c.rate_limit_per_s).where(
                        subscriptions.c.id == replay.subscription_id
                    )
                )
            ).scalar_one_or_none()
            batch_size = min(RECOVER_BATCH, rate) if rate else RECOVER_BATCH
            query, key = _matching(
                sa.select(deliveries.c.id, deliveries.c.attempt_count),
                replay.subscription_id,
                replay.since,
                replay.until,
                replay.delivery_status.split(","),
            )
            query = query.order_by(key).limit(batch_size)
            if replay.cursor is not None:
                query = query.where(key > replay.cursor)
            batch = (await conn.execute(query)).all()
            same_cursor = (
                replays.c.cursor.is_(None)
                if replay.cursor is None
                else replays.c.cursor == replay.cursor
            )
            moved = await conn.execute(
                replays.update()
                .where(replays.c.id == replay_id, same_cursor)
                .values(
                    cursor=batch[-1].id if batch else replay.cursor,
                    enqueued=replays.c.enqueued + len(batch),
                    # "enqueued" ends the walk; progress says "completed" once none is pending.
                    status="running" if batch else "enqueued",
                    updated_at=now,
                )
            )
            if moved.rowcount != 1:
                return enqueued_now  # another runner took this batch; it carries on
            if batch:
                await conn.execute(
                    deliveries.update()
                    .where(deliveries.c.id.in_([r.id for r in batch]))
                    .values(
                        status="pending",
                        next_attempt_at=now,
                        lease_until=None,
                        replay_id=replay_id,
                        updated_at=now,
                    )
                )
                await sync_unfinished(conn, [r.id for r in batch])
        for row in batch:
            await enqueue_attempt(
                queue,
                row.id,
                row.attempt_count + 1,
                job_id=f"{row.id}:{row.attempt_count + 1}:{replay_id}",
            )
        enqueued_now += len(batch)
        if not batch:
            return enqueued_now
        if rate:
            await asyncio.sleep(len(batch) / rate)
    await queue.enqueue_job(RECOVER_JOB, replay_id, _job_id=f"{replay_id}:{time.time_ns()}")
    return enqueued_now


async def replay_progress(
    conn: AsyncConnection, tenant_id: str, replay_id: str
) -> ReplayProgress | None:
    replay = (
        await conn.execute(
            sa.select(replays).where(replays.c.tenant_id == tenant_id, replays.c.id == replay_id)
        )
    ).first()
    if replay is None:
        return None
    rows = await conn.execute(
        sa.select(deliveries.c.status, sa.func.count().label("n"))
        .where(deliveries.c.replay_id == replay_id)
        .group_by(deliveries.c.status)
    )
    counts: dict[str, int] = {row.status: int(row.n) for row in rows}
    pending = counts.get("pending", 0)
    done_walking = replay.status in ("enqueued", "completed")
    return ReplayProgress(
        id=replay.id,
        subscription_id=replay.subscription_id,
        status="completed" if done_walking and pending == 0 else "running",
        since=replay.since,
        until=replay.until,
        delivery_status=replay.delivery_status,
        total=replay.total,
        enqueued=replay.enqueued,
        succeeded=counts.get("succeeded", 0),
        failed=counts.get("failed", 0) + counts.get("cancelled", 0),
        created_at=replay.created_at,
        updated_at=replay.updated_at,
    )


async def stalled_replays(conn: AsyncConnection, older_than: datetime) -> list[str]:
    """Replays still walking whose job has not moved for a while: their worker died."""
    query = sa.select(replays.c.id).where(
        replays.c.status == "running", replays.c.updated_at < older_than
    )
    return list((await conn.execute(query)).scalars())
