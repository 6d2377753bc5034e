"""Idempotency-Key records: the first response to a key is replayed for 24 hours."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.tables import idempotency_keys

KEEP_FOR = timedelta(hours=24)


@dataclass(frozen=True)
class RememberedResponse:
    request_hash: str
    status: int
    body: str


async def find_response(
    conn: AsyncConnection, tenant_id: str, key: str, now: datetime
) -> RememberedResponse | None:
    query = sa.select(
        idempotency_keys.c.request_hash,
        idempotency_keys.c.response_status,
        idempotency_keys.c.response_body,
    ).where(
        idempotency_keys.c.tenant_id == tenant_id,
        idempotency_keys.c.key == key,
        idempotency_keys.c.expires_at > now,
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return RememberedResponse(
        request_hash=row.request_hash, status=row.response_status, body=row.response_body
    )


async def remember_response(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    key: str,
    request_hash: str,
    status: int,
    body: str,
    now: datetime,
) -> None:
    """Insert in the same transaction as the event; a concurrent twin fails on the key."""
    # An expired record for the same key may still be there (purge runs in batches).
    await conn.execute(
        idempotency_keys.delete().where(
            idempotency_keys.c.tenant_id == tenant_id,
            idempotency_keys.c.key == key,
            idempotency_keys.c.expires_at <= now,
        )
    )
    await conn.execute(
        idempotency_keys.insert().values(
            tenant_id=tenant_id,
            key=key,
            request_hash=request_hash,
            response_status=status,
            response_body=body,
            created_at=now,
            expires_at=now + KEEP_FOR,
        )
    )


async def purge_expired_keys(conn: AsyncConnection, now: datetime, *, batch: int = 1000) -> int:
    expired = (
        sa.select(idempotency_keys.c.tenant_id, idempotency_keys.c.key)
        .where(idempotency_keys.c.expires_at <= now)
        .limit(batch)
    )
    rows = (await conn.execute(expired)).all()
    for row in rows:
        await conn.execute(
            idempotency_keys.delete().where(
                idempotency_keys.c.tenant_id == row.tenant_id, idempotency_keys.c.key == row.key
            )
        )
    return len(rows)
