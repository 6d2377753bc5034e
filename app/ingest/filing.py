"""Filing normalized provider events: dedupe, per-order sequence and staleness, outbox."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.clock import utcnow
from app.delivery.fanout import Published, write_event
from app.store.events import find_event_by_dedupe_key
from app.store.sources import IngestSource
from app.store.tables import order_progress
from contracts.canonical import EventSource, SourceMethod
from contracts.providers.base import ORDER_STATUS_RANK, NormalizedEvent


@dataclass
class Filed:
    published: list[Published] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)


async def _next_position(
    conn: AsyncConnection, source: IngestSource, order_key: str, rank: int | None
) -> tuple[int, bool]:
    """(sequence, stale) for the order's next event, updating its progress row.

    Keyed by source: an order id names one order only within the account that numbered it.
    """
    now = utcnow()
    row = (
        await conn.execute(
            sa.select(order_progress.c.last_sequence, order_progress.c.max_rank)
            .where(order_progress.c.source_id == source.id, order_progress.c.order_key == order_key)
            .with_for_update()
        )
    ).first()
    if row is None:
        await conn.execute(
            order_progress.insert().values(
                source_id=source.id,
                order_key=order_key,
                tenant_id=source.tenant_id,
                last_sequence=1,
                max_rank=rank,
                updated_at=now,
            )
        )
        return 1, False
    sequence = row.last_sequence + 1
    stale = rank is not None and row.max_rank is not None and rank < row.max_rank
    known = [r for r in (rank, row.max_rank) if r is not None]
    furthest = max(known) if known else None
    await conn.execute(
        order_progress.update()
        .where(order_progress.c.source_id == source.id, order_progress.c.order_key == order_key)
        .values(last_sequence=sequence, max_rank=furthest, updated_at=now)
    )
    return sequence, stale


async def _file_once(
    engine: AsyncEngine, source: IngestSource, events: list[NormalizedEvent], method: SourceMethod
) -> Filed:
    filed = Filed()
    async with engine.begin() as conn:
        for event in events:
            existing = await find_event_by_dedupe_key(conn, source.id, event.dedupe_key)
            if existing is not None:
                filed.duplicate_ids.append(existing)
                continue
            sequence: int | None = None
            stale = False
            if event.order_key is not None:
                rank = ORDER_STATUS_RANK.get(event.order_status) if event.order_status else None
                sequence, stale = await _next_position(conn, source, event.order_key, rank)
            filed.published.append(
                await write_event(
                    conn,
                    tenant_id=source.tenant_id,
                    event_type=event.type,
                    data=event.data,
                    source=EventSource(
                        source_id=source.id,
                        provider=source.provider,
                        method=method,
                        provider_event_id=event.provider_event_id,
                        provider_event_name=event.provider_event_name,
                    ),
                    occurred_at=event.occurred_at,
                    dedupe_key=event.dedupe_key,
                    aggregate_key=event.order_key,
                    sequence=sequence,
                    stale=True if stale else None,
                )
            )
    return filed


async def file_events(
    engine: AsyncEngine,
    source: IngestSource,
    events: list[NormalizedEvent],
    method: SourceMethod = "webhook",
) -> Filed:
    """All of a payload's events commit together or not at all.

    A concurrent redelivery of the same payload can collide on the dedupe key (or on a new
    order's progress row); the retry then sees the other request's rows and answers as a
    duplicate, which is what the provider needs to hear.
    """
    try:
        return await _file_once(engine, source, events, method)
    except IntegrityError:
        return await _file_once(engine, source, events, method)
