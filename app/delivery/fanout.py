"""Publishing: build the canonical envelope, write event + deliveries (outbox), enqueue after."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from arq.connections import ArqRedis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.clock import utcnow
from app.delivery.jobs import enqueue_first_attempts
from app.ids import new_id, new_id_block
from app.metrics import EVENTS_PUBLISHED, FANOUT_SIZE
from app.store.driver_sql import HeldConnections
from app.store.events import (
    NewEvent,
    enabled_subscription_ids,
    insert_event_with_deliveries,
    insert_events_with_deliveries,
    matching_subscription_ids,
)
from app.store.publish_sql import write_batch
from contracts.canonical import Envelope, EventSource

logger = logging.getLogger(__name__)
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class Published:
    event_id: str
    event_type: str
    provider: str | None
    delivery_ids: list[str]
    payload: str


@dataclass(frozen=True)
class EventDraft:
    """An event to publish to every subscription that matches it (API publishes)."""

    tenant_id: str
    event_type: str
    data: Any
    source: EventSource
    occurred_at: datetime | None = None


def _new_event(
    *,
    tenant_id: str,
    event_type: str,
    data: Any,
    source: EventSource,
    occurred_at: datetime | None,
    now: datetime,
    dedupe_key: str | None = None,
    aggregate_key: str | None = None,
    sequence: int | None = None,
    stale: bool | None = None,
) -> NewEvent:
    event_id = new_id("evt")
    envelope = Envelope(
        id=event_id,
        type=event_type,
        tenant_id=tenant_id,
        occurred_at=occurred_at or now,
        received_at=now,
        source=source,
        sequence=sequence,
        stale=stale,
        data=data,
    )
    return NewEvent(
        id=event_id,
        tenant_id=tenant_id,
        type=event_type,
        source_id=source.source_id,
        provider=source.provider,
        occurred_at=envelope.occurred_at,
        received_at=now,
        payload=_encoder.encode(envelope).decode("utf-8"),
        dedupe_key=dedupe_key,
        aggregate_key=aggregate_key,
        sequence=sequence,
    )


def _published(event: NewEvent, delivery_ids: list[str]) -> Published:
    return Published(
        event_id=event.id,
        event_type=event.type,
        provider=event.provider,
        delivery_ids=delivery_ids,
        payload=event.payload,
    )


async def write_event(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    event_type: str,
    data: Any,
    source: EventSource,
    occurred_at: datetime | None = None,
    only_subscription_ids: Sequence[str] | None = None,
    dedupe_key: str | None = None,
    aggregate_key: str | None = None,
    sequence: int | None = None,
    stale: bool | None = None,
) -> Published:
    """Inside the caller's transaction: the event row and one delivery row per target."""
    event = _new_event(
        tenant_id=tenant_id,
        event_type=event_type,
        data=data,
        source=source,
        occurred_at=occurred_at,
        now=utcnow(),
        dedupe_key=dedupe_key,
        aggregate_key=aggregate_key,
        sequence=sequence,
        stale=stale,
    )
    if only_subscription_ids is None:
        targets = await matching_subscription_ids(conn, tenant_id, event_type, source.source_id)
    else:
        targets = await enabled_subscription_ids(conn, tenant_id, list(only_subscription_ids))
    return _published(event, await insert_event_with_deliveries(conn, event, targets))


def _drafted(drafts: Sequence[EventDraft], now: datetime) -> list[NewEvent]:
    return [
        _new_event(
            tenant_id=d.tenant_id,
            event_type=d.event_type,
            data=d.data,
            source=d.source,
            occurred_at=d.occurred_at,
            now=now,
        )
        for d in drafts
    ]


async def write_events(conn: AsyncConnection, drafts: Sequence[EventDraft]) -> list[Published]:
    """Inside the caller's transaction: several events and their deliveries in two INSERTs.

    Matching runs once per distinct (tenant, type, source) in the batch.
    """
    new_events = _drafted(drafts, utcnow())
    targets: dict[tuple[str, str, str | None], list[str]] = {}
    for event in new_events:
        key = (event.tenant_id, event.type, event.source_id)
        if key not in targets:
            targets[key] = await matching_subscription_ids(conn, *key)
    delivery_ids = await insert_events_with_deliveries(
        conn, [(e, targets[(e.tenant_id, e.type, e.source_id)]) for e in new_events]
    )
    return [_published(e, ids) for e, ids in zip(new_events, delivery_ids, strict=True)]


async def write_events_held(held: HeldConnections, drafts: Sequence[EventDraft]) -> list[Published]:
    """PostgreSQL: what write_events does, as one statement that stands alone (committed
    when it returns)."""
    now = utcnow()
    new_events = _drafted(drafts, now)
    blocks = [new_id_block("dlv") for _ in new_events]
    delivery_ids = await write_batch(held, new_events, blocks, now)
    return [_published(e, ids) for e, ids in zip(new_events, delivery_ids, strict=True)]


async def enqueue_published(
    queue: ArqRedis, published: Published, *, count_as_new: bool = True
) -> None:
    """After commit. If Redis is unreachable the rows are safe; the sweeper enqueues them."""
    if count_as_new:
        count_published([published])
    await enqueue_published_batch(queue, [published])


def count_published(batch: Sequence[Published]) -> None:
    """At commit: the events are published from then on, whenever their jobs are queued."""
    for published in batch:
        EVENTS_PUBLISHED.labels(
            type=published.event_type, provider=published.provider or "api"
        ).inc()
        FANOUT_SIZE.observe(len(published.delivery_ids))


async def enqueue_published_batch(queue: ArqRedis, batch: Sequence[Published]) -> None:
    """After commit: the first attempts of several events in as few jobs as possible."""
    delivery_ids = [d for published in batch for d in published.delivery_ids]
    if not delivery_ids:
        return
    try:
        await enqueue_first_attempts(queue, delivery_ids)
    except (RedisError, OSError) as exc:
        logger.warning(
            "enqueue failed; the sweeper will pick the deliveries up",
            extra={"events": len(batch), "error": type(exc).__name__},
        )
